// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDialFallsBackAndFails: of several addresses the first that answers
// wins; a missing socket and an address without port are errors naming
// what failed.
func TestDialFallsBackAndFails(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "ok.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := acceptOne(t, l, Options{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	missing := "unix:path=" + filepath.Join(dir, "nothing.sock")

	c, err := Dial(ctx, missing+";unix:path="+sock, Options{})
	if err != nil {
		t.Fatalf("Dial with a dead first address: %v", err)
	}
	c.Start()
	s := <-srv
	if s == nil {
		t.Fatal("server handshake failed")
	}
	c.Close()
	<-c.Done()
	s.Close()
	<-s.Done()

	if _, err := Dial(ctx, missing, Options{}); err == nil || !strings.Contains(err.Error(), "nothing.sock") {
		t.Errorf("Dial of a missing socket: %v", err)
	}
	if _, err := Dial(ctx, "tcp:host=127.0.0.1", Options{}); err == nil {
		t.Errorf("Dial without port succeeded")
	}
}

// TestDialHandshakeHonoursContext dials a server that never answers.
func TestDialHandshakeHonoursContext(t *testing.T) {
	noLeaks(t)
	l := listen(t)
	held := make(chan net.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err == nil {
			held <- nc
		}
		close(held)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_, err := Dial(ctx, "tcp:host=127.0.0.1,port="+port, Options{})
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Dial to a mute server: %v, want a deadline error", err)
	}
	for nc := range held {
		nc.Close()
	}
}
