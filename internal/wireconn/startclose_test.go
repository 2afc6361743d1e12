// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"net"
	"sync"
	"testing"
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
