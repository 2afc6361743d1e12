// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// peerServer accepts one peer-to-peer connection on a unix socket and
// serves iface at /rep on it, ordered and with a tap (as the controller
// serves agents) or plain; it returns the address to dial.
func peerServer(t *testing.T, tapped bool, iface *dbusrt.Interface) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peer.sock")
	l, err := transport.Listen("unix", path, transport.DefaultSocketOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		// Exported before the connection starts reading: the client's
		// first call may come at once.
		srv := dbusrt.NewServer()
		if _, err := srv.Export("/rep", iface, nil); err != nil {
			t.Error(err)
			return
		}
		opts := srv.ConnOptions()
		if tapped {
			srv.SetOrdered()
			tap := &transport.Tap{}
			srv.TapCalls(tap)
			opts = append(opts, tap.Options(context.Background())...)
		}
		conn, err := transport.ServerConfig{}.Accept(ctx, nc, opts...)
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { conn.Close() })
		srv.Bind(conn)
	}()
	return "unix:path=" + path
}

// replyRecorder keeps the replies and errors a client connection gets.
type replyRecorder struct {
	mu      sync.Mutex
	replies []*dbus.Message
}

func (r *replyRecorder) record(m *dbus.Message) {
	if m.Type == dbus.TypeMethodReply || m.Type == dbus.TypeError {
		r.mu.Lock()
		r.replies = append(r.replies, m)
		r.mu.Unlock()
	}
}

// to returns the replies to the call with serial.
func (r *replyRecorder) to(serial uint32) []*dbus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*dbus.Message
	for _, m := range r.replies {
		if s, _ := m.Headers[dbus.FieldReplySerial].Value().(uint32); s == serial {
			out = append(out, m)
		}
	}
	return out
}

// TestPeerRepliesMatchGodbus: on a peer-to-peer connection (no bus, no
// sender), a tapped server's replies of simple types carry the same header
// fields and flags as godbus's, with the same body; a call flagged
// NO_REPLY_EXPECTED runs and gets no reply.
func TestPeerRepliesMatchGodbus(t *testing.T) {
	// newIface returns the interface served, counting its calls of Echo
	// by first argument in ran.
	newIface := func(ran *sync.Map) *dbusrt.Interface {
		return &dbusrt.Interface{Name: "org.example.Peer", XML: `<interface name="org.example.Peer"/>`, Methods: []dbusrt.Method{
			{Name: "Echo", InSig: "su", Call: func(_ context.Context, body []any) ([]any, error) {
				ran.Store(body[0].(string), true)
				return body, nil
			}},
			{Name: "Path", InSig: "", Call: func(context.Context, []any) ([]any, error) { return []any{dbus.ObjectPath("/job/1")}, nil }},
			{Name: "None", InSig: "", Call: func(context.Context, []any) ([]any, error) { return nil, nil }},
		}}
	}
	ctx := context.Background()
	// reply is what a client sees of one reply: its header fields other
	// than REPLY_SERIAL (checked against the call), flags and body.
	type reply struct {
		Fields map[dbus.HeaderField]string
		Flags  dbus.Flags
		Body   []any
	}
	got := map[bool][]reply{}
	for _, tapped := range []bool{false, true} {
		var ran sync.Map
		rec := &replyRecorder{}
		var (
			smu    sync.Mutex
			serial uint32 // of the client's last call
		)
		conn, err := transport.Dial(ctx, peerServer(t, tapped, newIface(&ran)), dbus.WithIncomingInterceptor(rec.record),
			dbus.WithOutgoingInterceptor(func(m *dbus.Message) {
				smu.Lock()
				serial = m.Serial()
				smu.Unlock()
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		last := func() uint32 {
			smu.Lock()
			defer smu.Unlock()
			return serial
		}
		obj := conn.Object("", "/rep")
		simple := dbusrt.SimpleReplies.Load()
		// No reply wanted: the handler runs and nothing comes back. The
		// server handles calls in order, so a reply to this call would
		// come before the answer to the next one.
		obj.Go("org.example.Peer.Echo", dbus.FlagNoReplyExpected, nil, "quiet", uint32(1))
		quiet := last()
		for _, c := range []struct {
			member string
			args   []any
		}{
			{"Echo", []any{"x", uint32(7)}},
			{"Path", nil},
			{"None", nil},
		} {
			if call := obj.CallWithContext(ctx, "org.example.Peer."+c.member, 0, c.args...); call.Err != nil {
				t.Fatalf("tapped %v: %s: %v", tapped, c.member, call.Err)
			}
			rs := rec.to(last())
			if len(rs) != 1 {
				t.Fatalf("tapped %v: %s: %d replies", tapped, c.member, len(rs))
			}
			r := reply{Fields: map[dbus.HeaderField]string{}, Flags: rs[0].Flags, Body: rs[0].Body}
			for f, v := range rs[0].Headers {
				if f != dbus.FieldReplySerial {
					r.Fields[f] = v.String()
				}
			}
			if _, ok := r.Fields[dbus.FieldSignature]; !ok {
				// Absent means empty (D-Bus specification): godbus
				// writes an empty SIGNATURE, internal/wire leaves it
				// out as libdbus does.
				r.Fields[dbus.FieldSignature] = dbus.MakeVariant(dbus.Signature{}).String()
			}
			got[tapped] = append(got[tapped], r)
		}
		if !tapped {
			continue // godbus runs calls concurrently: no order to rely on
		}
		if n := dbusrt.SimpleReplies.Load() - simple; n != 3 {
			t.Errorf("%d replies encoded by internal/wire, want 3", n)
		}
		if _, ok := ran.Load("quiet"); !ok {
			t.Error("the call flagged NO_REPLY_EXPECTED did not run before the next one")
		}
		if rs := rec.to(quiet); len(rs) != 0 {
			t.Errorf("%d replies to a call flagged NO_REPLY_EXPECTED", len(rs))
		}
	}
	if diff := cmp.Diff(got[false], got[true]); diff != "" {
		t.Errorf("replies differ (-godbus +tapped):\n%s", diff)
	}
}
