// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"net"
	"testing"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// batchConn holds back unit events and sends them, in order, in front of
// the next other message or on Flush.
func TestBatchConnHoldsUnitEvents(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	got := make(chan []byte, 16)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := b.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}
	}()
	bc := &batchConn{Conn: a, armed: true}
	sig := func(serial uint32, member string) []byte {
		var w wire.Writer
		w.String("x.service")
		w.String("real")
		return wire.AppendSignal(nil, serial, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentInterface, member, "", "ss", w.Buf)
	}
	ev1 := sig(1, daemonapi.InternalAgentSignalUnitNew)
	ev2 := sig(2, daemonapi.InternalAgentSignalUnitStateChanged)
	done := sig(3, daemonapi.InternalAgentSignalJobDone)
	for _, m := range [][]byte{ev1, ev2} {
		if n, err := bc.Write(m); err != nil || n != len(m) {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if !bc.Pending() {
		t.Fatal("unit events not held")
	}
	if _, err := bc.Write(done); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte(nil), ev1...), ev2...), done...)
	var all []byte
	for len(all) < len(want) {
		p, ok := <-got
		if !ok {
			t.Fatal("pipe closed")
		}
		all = append(all, p...)
	}
	if !bytes.Equal(all, want) {
		t.Fatal("held events did not leave in order in front of JobDone")
	}
	if bc.Pending() {
		t.Fatal("events still held after another write")
	}
	ev3 := sig(4, daemonapi.InternalAgentSignalUnitRemoved)
	bc.Write(ev3)
	go bc.Flush()
	if p := <-got; !bytes.Equal(p, ev3) {
		t.Fatal("Flush did not send the held event")
	}
	a.Close()
	if _, ok := <-got; ok {
		t.Fatal("unexpected bytes")
	}
}

// Bytes before the handshake ends, and messages that are not signals,
// pass straight through.
func TestBatchConnPassesOthers(t *testing.T) {
	if held([]byte("\x00AUTH ANONYMOUS\r\n")) {
		t.Error("a SASL line is held")
	}
	var w wire.Writer
	w.String("x")
	call := wire.AppendCall(nil, 1, "", string(daemonapi.InternalAgentPath), daemonapi.InternalAgentInterface, daemonapi.InternalAgentSignalUnitNew, "s", w.Buf)
	if held(call) {
		t.Error("a method call is held")
	}
}
