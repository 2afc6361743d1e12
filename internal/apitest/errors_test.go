// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// refusingNode answers every call it implements with a fixed error.
type refusingNode struct {
	daemonapi.UnimplementedNodeServer
	mu  sync.Mutex
	err error // guarded by mu
}

func (n *refusingNode) StartUnit(context.Context, string, string) (dbus.ObjectPath, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "", n.err
}

// TestClientErrors proves the public client's error replies match the
// exported sentinels with errors.Is, come apart with errors.As, keep name
// and message, and still read through dbusrt; errors that are not replies
// pass unchanged.
func TestClientErrors(t *testing.T) {
	for _, env := range newRoundTripEnvs(t) {
		t.Run(env.name, func(t *testing.T) {
			ctx := context.Background()
			srv := &refusingNode{}
			path := bluechi.NodePath("refusing")
			obj, err := daemonapi.ExportNode(env.server, path, srv, bluechi.NodeProperties{Name: "refusing"})
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Unexport()
			c := bluechi.NewNodeClient(env.client, env.dest, path)
			for _, tc := range []struct {
				reply    error
				sentinel error
				other    error
			}{
				{dbusrt.NewError(bluechi.ErrorNameOffline, "Node is offline"), bluechi.ErrOffline, bluechi.ErrFailed},
				{dbusrt.NewError(dbusrt.ErrInvalidArgs, "bad mode"), bluechi.ErrInvalidArgs, bluechi.ErrOffline},
				{&bluechi.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Message: "no such unit"}, &bluechi.Error{Name: "org.freedesktop.systemd1.NoSuchUnit"}, bluechi.ErrFailed},
				{errors.New("plain"), bluechi.ErrFailed, bluechi.ErrOffline},
			} {
				srv.mu.Lock()
				srv.err = tc.reply
				srv.mu.Unlock()
				_, err := c.StartUnit(ctx, "x.service", "replace")
				if !errors.Is(err, tc.sentinel) || errors.Is(err, tc.other) {
					t.Errorf("%v: errors.Is %v %v, %v %v", tc.reply, tc.sentinel, errors.Is(err, tc.sentinel), tc.other, errors.Is(err, tc.other))
				}
				var e *bluechi.Error
				if !errors.As(err, &e) {
					t.Fatalf("%v: got %T %v, not a *bluechi.Error", tc.reply, err, err)
				}
				want := dbusrt.AsDBusError(tc.reply)
				if e.Name != want.Name || e.Message != want.Body[0] || dbusrt.ErrorName(err) != want.Name || dbusrt.ErrorMessage(err) != want.Body[0] {
					t.Errorf("%v: got %q %q (dbusrt %q %q)", tc.reply, e.Name, e.Message, dbusrt.ErrorName(err), dbusrt.ErrorMessage(err))
				}
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := c.GetStatus(cancelled); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "org.freedesktop.DBus.Properties.Get: ") {
				t.Errorf("cancelled property read: %v", err)
			}
			if _, err := c.StartUnit(cancelled, "x.service", "replace"); !errors.Is(err, context.Canceled) || err.Error() != "org.eclipse.bluechi.Node.StartUnit: context canceled" {
				t.Errorf("cancelled call: %v", err)
			}
			if _, err := bluechi.NewNodeClient(env.client, env.dest, "/no/such").GetStatus(ctx); !errors.Is(err, bluechi.ErrUnknownObject) {
				t.Errorf("unknown object: %v", err)
			}
		})
	}
}

// wrongReplyNode answers StartUnit with a reply of another signature (u, not
// o), as a broken or foreign service would.
type wrongReplyNode struct{}

func (wrongReplyNode) StartUnit(string, string) (uint32, *dbus.Error) { return 7, nil }

// TestClientWrongReply proves a reply of the wrong signature is an error
// that names the method, not a bare decoding error.
func TestClientWrongReply(t *testing.T) {
	bus := testbus.Start(t)
	var conns [2]*dbus.Conn
	for i := range conns {
		c, err := dbus.Connect(bus.Address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	server, client := conns[0], conns[1]
	const path = "/org/eclipse/bluechi/node/wrong"
	if err := server.Export(wrongReplyNode{}, path, bluechi.NodeInterface); err != nil {
		t.Fatal(err)
	}
	_, err := bluechi.NewNodeClient(client, server.Names()[0], path).StartUnit(context.Background(), "x.service", "replace")
	if err == nil || !strings.HasPrefix(err.Error(), "org.eclipse.bluechi.Node.StartUnit: reply: ") {
		t.Fatalf("got %v, want an error naming the method", err)
	}
	var e *bluechi.Error
	if errors.As(err, &e) {
		t.Errorf("a decoding failure came back as the error reply %v", e)
	}
}
