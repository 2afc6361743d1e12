// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// RawResult is the reply to a raw call: a method return (ErrorName empty)
// or an error. Body belongs to the caller and is in the sender's byte order.
type RawResult struct {
	ErrorName string
	Signature string
	Body      []byte
	BigEndian bool
}

// Err returns the reply's error (ErrorName and the message from its body,
// if any) as a *RawError, or nil for a method return.
func (r *RawResult) Err() error {
	if r.ErrorName == "" {
		return nil
	}
	e := &RawError{Name: r.ErrorName}
	if len(r.Signature) > 0 && r.Signature[0] == 's' {
		rd := wire.NewReader(r.Body, r.BigEndian)
		e.Message, _ = rd.String()
	}
	return e
}

// GodbusError returns an error reply as godbus would have returned it: a
// dbus.Error value named name whose body holds the message, the first
// string of body, if there is one.
func GodbusError(name, sig string, body []byte, bigEndian bool) dbus.Error {
	e := dbus.Error{Name: name}
	if len(sig) > 0 && sig[0] == 's' {
		rd := wire.NewReader(body, bigEndian)
		if msg, err := rd.String(); err == nil {
			e.Body = []any{msg}
		}
	}
	return e
}

// Value returns the reply's body, which must be one value of signature
// sig, checked as the message bus checks and re-encoded in little endian
// from an 8-aligned start (wire.Copy). An error reply gives its *RawError.
func (r *RawResult) Value(sig string) ([]byte, error) {
	if err := r.Err(); err != nil {
		return nil, err
	}
	if r.Signature != sig {
		return nil, fmt.Errorf("transport: reply of signature %q, want %q", r.Signature, sig)
	}
	rd := wire.NewReader(r.Body, r.BigEndian)
	var w wire.Writer
	if err := wire.Copy(&w, &rd, sig); err != nil {
		return nil, fmt.Errorf("transport: reply: %w", err)
	}
	if err := rd.Done(); err != nil {
		return nil, fmt.Errorf("transport: reply: %w", err)
	}
	return w.Buf, nil
}

// RawError is an error reply to a raw call.
type RawError struct {
	Name    string
	Message string
}

func (e *RawError) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// Call sends a method call (made with wire.AppendCall and the serial from
// GetSerial) and waits for its reply, which the connection's reader hands
// over as bytes instead of to godbus. It fails when ctx ends first or the
// connection closes.
func (t *Tap) Call(ctx context.Context, serial uint32, msg []byte) (*RawResult, error) {
	wait, err := t.Start(serial, msg)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// Start sends a method call like Call and returns at once with the
// function that waits for its reply (to be called once).
func (t *Tap) Start(serial uint32, msg []byte) (wait func(context.Context) (*RawResult, error), err error) {
	ch := make(chan *RawResult, 1)
	t.mu.Lock()
	if t.pc == nil {
		t.mu.Unlock()
		return nil, ErrTapDetached
	}
	if t.pc.pump == nil {
		t.mu.Unlock()
		return nil, errNoPump
	}
	if t.calls == nil {
		t.calls = map[uint32]chan *RawResult{}
	}
	t.calls[serial] = ch
	t.ncalls.Add(1)
	t.mu.Unlock()
	forget := func() {
		t.mu.Lock()
		if _, ok := t.calls[serial]; ok {
			delete(t.calls, serial)
			t.ncalls.Add(-1)
		}
		t.mu.Unlock()
	}
	if err := t.Send(msg); err != nil {
		forget()
		return nil, err
	}
	return func(ctx context.Context) (*RawResult, error) {
		select {
		case r, ok := <-ch:
			if !ok {
				return nil, ErrTapDetached
			}
			return r, nil
		case <-ctx.Done():
			forget()
			return nil, ctx.Err()
		}
	}, nil
}

// CanCall reports whether raw calls can be made: the tap is attached to
// an open connection whose reader hands replies over.
func (t *Tap) CanCall() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pc != nil && t.pc.pump != nil
}

// takeReply hands a reply to its raw caller; false if it answers no raw call.
func (t *Tap) takeReply(m *wire.Message) bool {
	if t.ncalls.Load() == 0 {
		return false
	}
	t.mu.Lock()
	ch, ok := t.calls[m.ReplySerial]
	if ok {
		delete(t.calls, m.ReplySerial)
		t.ncalls.Add(-1)
	}
	t.mu.Unlock()
	if !ok {
		return false
	}
	ch <- &RawResult{ErrorName: m.ErrorName, Signature: m.Signature, Body: append([]byte(nil), m.Body...), BigEndian: m.BigEndian}
	return true
}

// failCalls ends every waiting raw call; the tap's lock is held.
func (t *Tap) failCallsLocked() {
	for s, ch := range t.calls {
		close(ch)
		delete(t.calls, s)
	}
	t.ncalls.Store(0)
}

// errNoPump is returned by Call on a tap without Signal or Reply: nothing
// reads its connection's replies.
var errNoPump = errors.New("transport: raw calls need a tap with Signal or Reply")
