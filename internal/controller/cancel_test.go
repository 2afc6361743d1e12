// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"sync/atomic"
	"testing"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// slowCancelAgent is a fake agent whose JobCancel waits for release.
type slowCancelAgent struct {
	fakeAgent
	cancels atomic.Int32
	release chan struct{}
}

func (f *slowCancelAgent) JobCancel(ctx context.Context, id uint32) error {
	f.cancels.Add(1)
	dbusrt.Release(ctx) // the next call on the link may start meanwhile
	select {
	case <-f.release:
	case <-ctx.Done():
	}
	return nil
}

// TestJobCancelOneInFlight: Cancel calls of one job while the agent has
// not answered the first send nothing more to the agent (each would hold
// a goroutine for up to 30 s); once it answered, the next Cancel is sent.
func TestJobCancelOneInFlight(t *testing.T) {
	c := startCluster(t, "n1")
	f := &slowCancelAgent{release: make(chan struct{})}
	c.dialAgent("n1", func(p *peerAgent) error {
		f.conn = p.Conn
		_, err := daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, f, daemonapi.InternalAgentProperties{})
		return err
	})
	ctx := context.Background()
	node := bluechi.NewNodeClient(c.client, bluechi.NodeBusName, bluechi.NodePath("n1"))
	path, err := node.StopUnit(ctx, "a.service", "replace") // never finishes
	if err != nil {
		t.Fatal(err)
	}
	job := bluechi.NewJobClient(c.client, bluechi.JobBusName, path)
	for range 50 {
		if err := job.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the agent's JobCancel", func() bool { return f.cancels.Load() >= 1 })
	if n := f.cancels.Load(); n != 1 {
		t.Fatalf("%d JobCancel calls reached the agent for 50 Cancel, want 1", n)
	}
	close(f.release)
	// The answered cancel no longer holds the job: the next one goes out.
	waitFor(t, "a second JobCancel", func() bool {
		if err := job.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		return f.cancels.Load() >= 2
	})
}
