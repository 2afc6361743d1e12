package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// rawJobs is a state manager's connection to the cluster bus built like
// the systemd client the direct starts use: internal/transport reads and
// writes, the generated Node client's calls encoded by internal/wire
// (dbusrt.Invoke on a tapped connection), and the controller's JobRemoved
// read from the wire. So a start through the controller and a direct one
// pay the same client costs.
type rawJobs struct {
	mu      sync.Mutex
	results map[dbus.ObjectPath]chan string
}

// ch returns the channel job's result arrives on.
func (w *rawJobs) ch(job dbus.ObjectPath) chan string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.results[job]
	if c == nil {
		c = make(chan string, 1)
		w.results[job] = c
	}
	return c
}

// signal is the tap's Signal: it takes the controller's JobRemoved.
func (w *rawJobs) signal(m *wire.Message) bool {
	if m.Path != string(bluechi.ControllerPath) || m.Interface != bluechi.ControllerInterface ||
		m.Member != bluechi.ControllerSignalJobRemoved || m.Signature != "uosss" {
		return false
	}
	r := wire.NewReader(m.Body, m.BigEndian)
	if _, err := r.Uint32(); err != nil {
		return false
	}
	job, err1 := r.String()
	_, err2 := r.String()
	_, err3 := r.String()
	result, err4 := r.String()
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return false
	}
	w.ch(dbus.ObjectPath(job)) <- result
	return true
}

// rawStartThrough connects a rawJobs client to c's bus and returns a timed
// start of the oneshot service on node through the controller, until its
// JobRemoved.
func rawStartThrough(b *testing.B, c *cluster.Cluster, node string) func() time.Duration {
	ctx := context.Background()
	w := &rawJobs{results: map[dbus.ObjectPath]chan string{}}
	conn, _, err := dbusrt.ConnectBusTap(ctx, c.BusAddress, &transport.Tap{Signal: w.signal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(bluechi.ControllerPath),
		dbus.WithMatchInterface(bluechi.ControllerInterface), dbus.WithMatchMember(bluechi.ControllerSignalJobRemoved)); err != nil {
		b.Fatal(err)
	}
	client := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(node))
	return func() time.Duration {
		t0 := time.Now()
		job, err := client.StartUnit(ctx, sandbox.OneshotServiceName, "replace")
		if err != nil {
			b.Fatal(err)
		}
		select {
		case r := <-w.ch(job):
			if r != "done" {
				b.Fatal(r)
			}
		case <-time.After(30 * time.Second):
			b.Fatalf("no JobRemoved for %s", job)
		}
		d := time.Since(t0)
		w.mu.Lock()
		delete(w.results, job)
		w.mu.Unlock()
		return d
	}
}
