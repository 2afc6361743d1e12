// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Close racing Start must end the connection once: either the reader
// starts and ends it, or Close does, never both (a second shutdown would
// close done twice).
func TestCloseRacingStart(t *testing.T) {
	noLeaks(t)
	for range 2000 {
		a, b := net.Pipe()
		c := newConn(a, Options{}, RegisteredLimits)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-gate; c.Close() }()
		go func() { defer wg.Done(); <-gate; c.Start() }()
		close(gate)
		wg.Wait()
		<-c.Done()
		b.Close()
	}
}

// A write that fails before Start ends the connection without its write
// lock held: a Closed callback that writes does not deadlock.
func TestWriteFailureBeforeStart(t *testing.T) {
	noLeaks(t)
	a, b := net.Pipe()
	b.Close()
	closed := make(chan error, 1)
	c := newConn(a, Options{Closed: func(c *Conn, err error) {
		_ = c.Emit(testPath, testIface, "Bye", "", nil) // takes the write lock
		closed <- err
	}}, RegisteredLimits)
	emitted := make(chan error, 1)
	go func() { emitted <- c.Emit(testPath, testIface, "Tick", "", nil) }()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("Closed called without a reason")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Closed did not run (deadlocked on the write lock?)")
	}
	if err := <-emitted; err == nil {
		t.Error("a write to a closed pipe succeeded")
	}
	<-c.Done()
}
