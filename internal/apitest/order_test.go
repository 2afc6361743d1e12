// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

type orderRecorder struct {
	daemonapi.UnimplementedInternalAgentServer
	mu    sync.Mutex
	seen  []string
	block chan struct{}
}

func (o *orderRecorder) Subscribe(ctx context.Context, unit string) error {
	o.mu.Lock()
	o.seen = append(o.seen, unit)
	o.mu.Unlock()
	return nil
}

// Unsubscribe blocks until released, after letting the next call start.
func (o *orderRecorder) Unsubscribe(ctx context.Context, unit string) error {
	dbusrt.Release(ctx)
	<-o.block
	return nil
}

// Reload blocks without releasing its turn.
func (o *orderRecorder) Reload(ctx context.Context) error {
	<-o.block
	return nil
}

// TestOrderedDispatch proves pipelined calls reach handlers in wire order
// on an ordered server (godbus alone reorders them), that Release lets the
// queue go on, and that a flood is refused with LimitsExceeded.
func TestOrderedDispatch(t *testing.T) {
	server, client := peerPair(t, func(s *dbusrt.Server) { s.SetOrdered() })
	rec := &orderRecorder{block: make(chan struct{})}
	if _, err := daemonapi.ExportInternalAgent(server, daemonapi.InternalAgentPath, rec, daemonapi.InternalAgentProperties{}); err != nil {
		t.Fatal(err)
	}
	obj := client.Object(testName, daemonapi.InternalAgentPath)
	const n = 2000
	calls := make([]*dbus.Call, n)
	for i := range calls {
		calls[i] = obj.Go(daemonapi.InternalAgentInterface+".Subscribe", 0, nil, fmt.Sprintf("u%04d.service", i))
	}
	for _, c := range calls {
		if err := (<-c.Done).Err; err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range rec.seen {
		if want := fmt.Sprintf("u%04d.service", i); u != want {
			t.Fatalf("call %d handled as %s: order lost", i, u)
		}
	}

	// A released handler does not hold the queue.
	slow := obj.Go(daemonapi.InternalAgentInterface+".Unsubscribe", 0, nil, "slow.service")
	if err := obj.Call(daemonapi.InternalAgentInterface+".Subscribe", 0, "after.service").Err; err != nil {
		t.Fatal(err)
	}
	// A handler that keeps its turn holds the queue; calls pile up and the
	// ones past the limit are refused.
	hold := obj.Go(daemonapi.InternalAgentInterface+".Reload", 0, nil)
	var queued []*dbus.Call
	for i := 0; i < dbusrt.MaxQueuedCalls+50; i++ {
		queued = append(queued, obj.Go(daemonapi.InternalAgentInterface+".Subscribe", 0, nil, "flood.service"))
	}
	// The calls past the limit are answered at once, while the queue is held.
	last := queued[len(queued)-1]
	select {
	case <-last.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("flood beyond the queue limit got no answer")
	}
	if dbusrt.ErrorName(last.Err) != dbusrt.ErrLimitsExceeded {
		t.Fatalf("call past the limit: %v, want LimitsExceeded", last.Err)
	}
	close(rec.block)
	for _, c := range append(queued[:len(queued)-1], slow, hold) {
		<-c.Done // last was received above
	}
	refused := 0
	for _, c := range queued {
		if dbusrt.ErrorName(c.Err) == dbusrt.ErrLimitsExceeded {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("flood was not refused")
	}
}

type badReply struct {
	daemonapi.UnimplementedNodeServer
}

func (badReply) StartUnit(context.Context, string, string) (dbus.ObjectPath, error) {
	return "not a path", nil
}

// TestUnencodableReply: a handler answering a value godbus cannot encode
// gets a Failed reply instead of crashing the process (peer connection,
// ordered dispatch: replies there carry no destination).
func TestUnencodableReply(t *testing.T) {
	server, client := peerPair(t, func(s *dbusrt.Server) { s.SetOrdered() })
	if _, err := daemonapi.ExportNode(server, bluechi.NodePath("n"), badReply{}, bluechi.NodeProperties{}); err != nil {
		t.Fatal(err)
	}
	_, err := bluechi.NewNodeClient(client, testName, bluechi.NodePath("n")).StartUnit(context.Background(), "a.service", "replace")
	if dbusrt.ErrorName(err) != dbusrt.ErrFailed {
		t.Fatalf("unencodable reply: %v, want Failed", err)
	}
}
