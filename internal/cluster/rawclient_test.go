// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// rawJobs is a state manager's bus connection for timing job starts,
// built the same way whether it talks to the controller or to a node's
// systemd: our own connection (busconn on wireconn), the start call and
// its reply encoded and read by internal/wire, one match rule for the
// JobRemoved signal of the service it starts jobs on, and that signal
// read from the wire. So a start through the controller and a direct one
// pay the same client costs.
type rawJobs struct {
	jobWaiter
	path, iface, sig string
	resultArg        int // index of the result among the signal's strings after the id
}

// signal is the connection's Signal: it takes JobRemoved(u id, o job,
// s..., s result).
func (w *rawJobs) signal(_ *wireconn.Conn, m *wire.Message) {
	w.jobRemoved(m)
}

func (w *rawJobs) jobRemoved(m *wire.Message) bool {
	if m.Path != w.path || m.Interface != w.iface || m.Member != "JobRemoved" || m.Signature != w.sig {
		return false
	}
	r := wire.NewReader(m.Body, m.BigEndian)
	if _, err := r.Uint32(); err != nil {
		return false
	}
	var args []string
	for r.Rest() > 0 {
		s, err := r.String()
		if err != nil {
			return false
		}
		args = append(args, s)
	}
	if len(args) <= w.resultArg {
		return false
	}
	w.ch(dbus.ObjectPath(args[0])) <- args[w.resultArg]
	return true
}

// starter connects w to the bus at addr (matching signals from sender)
// and returns a timed start of the oneshot service through start, until
// its JobRemoved.
func (w *rawJobs) starter(b *testing.B, addr, sender string, start func(context.Context, *busconn.Conn) (dbus.ObjectPath, error)) func() time.Duration {
	ctx := context.Background()
	w.results = map[dbus.ObjectPath]chan string{}
	conn, err := busconn.Dial(ctx, addr, wireconn.Options{Signal: w.signal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	rule := busconn.MatchRule{Sender: sender, Path: w.path, Interface: w.iface, Member: "JobRemoved"}
	if err := conn.AddMatch(ctx, rule.String()); err != nil {
		b.Fatal(err)
	}
	return func() time.Duration {
		t0 := time.Now()
		job, err := start(ctx, conn)
		if err != nil {
			b.Fatal(err)
		}
		if r := w.wait(b, job); r != "done" {
			b.Fatal(r)
		}
		return time.Since(t0)
	}
}

// rawStartThrough returns a timed start of the oneshot service on node
// through the controller on the bus at addr (see rawJobs).
func rawStartThrough(b *testing.B, addr, node string) func() time.Duration {
	w := &rawJobs{path: string(bluechi.ControllerPath), iface: bluechi.ControllerInterface, sig: "uosss", resultArg: 3}
	return w.starter(b, addr, bluechi.ControllerBusName, func(ctx context.Context, conn *busconn.Conn) (dbus.ObjectPath, error) {
		return cluster.StartUnitRaw(ctx, conn, node, sandbox.OneshotServiceName)
	})
}

// rawStartDirect returns a timed start of the oneshot service made
// directly on the systemd of the bus at addr (see rawJobs).
func rawStartDirect(b *testing.B, addr string) func() time.Duration {
	w := &rawJobs{path: string(systemd.ManagerPath), iface: systemd.ManagerInterface, sig: "uoss", resultArg: 2}
	subscribed := false
	return w.starter(b, addr, systemd.BusName, func(ctx context.Context, conn *busconn.Conn) (dbus.ObjectPath, error) {
		manager := daemonapi.NewSystemd1ManagerWireClient(conn.Wire(), systemd.BusName, string(systemd.ManagerPath))
		if !subscribed {
			// systemd sends its signals to the bus only while someone
			// is subscribed.
			if err := manager.Subscribe(ctx); err != nil {
				return "", err
			}
			subscribed = true
		}
		return manager.StartUnit(ctx, sandbox.OneshotServiceName, "replace")
	})
}
