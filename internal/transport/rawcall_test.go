// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

type rawEcho struct{ block chan struct{} }

func (e rawEcho) Echo(s string) (string, *dbus.Error) { return s + s, nil }
func (e rawEcho) Fail() *dbus.Error {
	return dbus.NewError("org.test.Failed", []any{"it failed"})
}
func (e rawEcho) Block() *dbus.Error { <-e.block; return nil }

// Raw calls get their reply as bytes, errors by name and message, give up
// with their context, and fail when the connection closes; godbus's own
// calls on the same connection are untouched.
func TestTapCall(t *testing.T) {
	checkGoroutines(t)
	tap := &Tap{Signal: func(*wire.Message) bool { return false }}
	client, server := tapPair(t, tap)
	e := rawEcho{block: make(chan struct{})}
	defer close(e.block)
	if err := client.Export(e, "/t", "org.test.Echo"); err != nil {
		t.Fatal(err)
	}
	call := func(ctx context.Context, member, sig string, body []byte) (*RawResult, error) {
		serial := tap.GetSerial()
		return tap.Call(ctx, serial, wire.AppendCall(nil, serial, "", "/t", "org.test.Echo", member, sig, body))
	}
	ctx := context.Background()
	var w wire.Writer
	w.String("ab")
	for i := 0; i < 3; i++ {
		r, err := call(ctx, "Echo", "s", w.Buf)
		if err != nil || r.Err() != nil || r.Signature != "s" {
			t.Fatalf("Echo: %+v, %v", r, err)
		}
		rd := wire.NewReader(r.Body, r.BigEndian)
		if s, err := rd.String(); err != nil || s != "abab" {
			t.Fatalf("Echo returned %q, %v", s, err)
		}
		var s string
		if err := server.Object("", "/t").Call("org.test.Echo.Echo", 0, "x").Store(&s); err != nil || s != "xx" {
			t.Fatalf("godbus call next to raw ones: %q, %v", s, err)
		}
	}
	r, err := call(ctx, "Fail", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *RawError
	if !errors.As(r.Err(), &re) || re.Name != "org.test.Failed" || re.Message != "it failed" {
		t.Fatalf("Fail: %v", r.Err())
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := call(short, "Block", "", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Block with a deadline: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := call(ctx, "Block", "", nil); done <- err }()
	waitUntil(t, "the call to be pending", func() bool { return tap.ncalls.Load() == 1 })
	client.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTapDetached) {
			t.Fatalf("call on a closed connection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a raw call outlived its connection")
	}
}
