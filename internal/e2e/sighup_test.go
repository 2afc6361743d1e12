// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"syscall"
	"testing"

	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// TestAgentSIGHUPWithoutTLS: systemctl reload bluechi-agent (ExecReload
// sends SIGHUP) with UseTLS off has nothing to reload and leaves the agent
// running, its node online and serving jobs.
func TestAgentSIGHUPWithoutTLS(t *testing.T) {
	c := newCluster(t, "h1")
	agents := c.startOnline("h1")
	watch := (&tlsCluster{cluster: c}).watchStatus()
	if err := agents["h1"].Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the agent's SIGHUP line", func() bool {
		return logContains(c, "agent-h1", "SIGHUP: nothing to reload (UseTLS is off)")
	})
	jobs := c.jobs()
	job, err := c.node("h1").StartUnit(context.Background(), sandbox.SimpleServiceName, "replace")
	if err != nil {
		t.Fatalf("StartUnit after SIGHUP: %v", err)
	}
	if r := jobs.result(job); r != "done" {
		t.Fatalf("job after SIGHUP: %s", r)
	}
	if off := watch.wentOffline(); len(off) > 0 {
		t.Fatalf("went offline after SIGHUP: %v", off)
	}
}
