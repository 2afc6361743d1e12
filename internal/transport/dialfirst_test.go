// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestDialFirst: an entry nobody listens on is skipped for the next; a
// setup error tries the next entry too, unless it is final.
func TestDialFirst(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "ok.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			nc.Close()
		}
	}()
	addr := "unix:path=" + filepath.Join(dir, "none.sock") + ";unix:path=" + filepath.Join(dir, "ok.sock")
	got, err := DialFirst(ctx, addr, DefaultSocketOptions(), func(nc net.Conn, network string, a Address) (string, error) {
		nc.Close()
		return network + " " + a.Params["path"], nil
	})
	if err != nil || got != "unix "+filepath.Join(dir, "ok.sock") {
		t.Fatalf("DialFirst = %q, %v", got, err)
	}
	twice := "unix:path=" + filepath.Join(dir, "ok.sock") + ";unix:path=" + filepath.Join(dir, "ok.sock")
	tries := 0
	_, err = DialFirst(ctx, twice, DefaultSocketOptions(), func(nc net.Conn, _ string, _ Address) (string, error) {
		nc.Close()
		tries++
		return "", errors.New("no good")
	})
	if tries != 2 || err == nil || !strings.Contains(err.Error(), "no good") {
		t.Fatalf("a failing setup: %d tries, %v", tries, err)
	}
	tries = 0
	final := errors.New("refused for good")
	_, err = DialFirst(ctx, twice, DefaultSocketOptions(), func(nc net.Conn, _ string, _ Address) (string, error) {
		nc.Close()
		tries++
		return "", &FinalError{Err: final}
	})
	if tries != 1 || !errors.Is(err, final) {
		t.Fatalf("a final setup error: %d tries, %v", tries, err)
	}
}
