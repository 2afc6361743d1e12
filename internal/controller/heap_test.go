// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/leakcheck"
)

// TestNoHeapGrowthOverJobs: the controller keeps no memory per finished
// job (Job objects, job table, waiting calls). The live heap of the whole
// test process after a full collection is exact where RSS is noisy; the
// bound is the bound for RSS growth over 1000 start/stop cycles.
func TestNoHeapGrowthOverJobs(t *testing.T) {
	c := startCluster(t, "n1")
	if _, err := c.agent("n1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	removed := make(chan dbus.ObjectPath, 4)
	s, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) { removed <- s.Job })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	node := c.node("n1")
	jobs := func(n int) {
		for range n {
			job, err := node.StartUnit(ctx, "a.service", "replace")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-removed:
				if p != job {
					t.Fatalf("JobRemoved for %s, want %s", p, job)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no JobRemoved")
			}
		}
	}
	leakcheck.Heap(t, "2000 jobs (1000 start/stop cycles)", 100<<10, func() { jobs(200) }, func() { jobs(2000) })
}
