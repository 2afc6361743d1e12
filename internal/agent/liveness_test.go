// SPDX-License-Identifier: Apache-2.0

package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/agent"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// TestLivenessWhileWritesBlock: a controller that stops reading (a frozen
// process: its kernel still acknowledges, its socket buffers fill) must
// still be dropped once its heartbeats stop, even when the agent's writes
// to it block; the agent then connects again.
func TestLivenessWhileWritesBlock(t *testing.T) {
	gate := make(chan struct{})
	var first *ctlConn
	addr, fc := startFakeControllerHook(t, func(c *ctlConn) {
		if first != nil {
			return
		}
		first = c
		// Arms the agent's liveness check; no other heartbeat follows.
		if err := daemonapi.EmitInternalControllerHeartbeatWire(c.Conn, string(daemonapi.InternalControllerPath), daemonapi.InternalControllerHeartbeatSignal{}); err != nil {
			t.Error(err)
		}
		// The first unit event stops this connection's reader for good.
		c.onSignal(daemonapi.InternalAgentInterface, daemonapi.InternalAgentSignalUnitPropertiesChanged, func(*wire.Message) { <-gate })
	})
	log, err := logging.New(logging.Options{Target: "stderr", Level: "ERROR"})
	if err != nil {
		t.Fatal(err)
	}
	sd := &fakeSystemd{
		units:  []bluechi.UnitInfo{{Name: "a.service", ActiveState: "active", SubState: "running"}},
		events: make(chan systemd.Event),
	}
	cfg := &config.Agent{NodeName: "n1", ControllerAddress: addr, HeartbeatInterval: 100, ControllerHeartbeatThreshold: 500}
	// No public object (nil): the liveness check needs none.
	a, err := agent.New(cfg, log, sd, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	feed := make(chan struct{})
	t.Cleanup(func() { cancel(); close(gate); <-feed; <-done })
	var conn *ctlConn
	select {
	case conn = <-fc.registered:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not register")
	}
	if err := conn.agentClient().SendSubscribe("*"); err != nil {
		t.Fatal(err)
	}
	// Unit events until the agent's writes block (and on, so that its
	// events loop stays stuck), until the agent has connected again.
	big := strings.Repeat("x", 4000)
	go func() {
		defer close(feed)
		for {
			select {
			case sd.events <- unitChange("a.service", "org.freedesktop.systemd1.Service", "Description", big):
			case <-ctx.Done():
				return
			case <-gate:
				return
			}
		}
	}()
	select {
	case <-fc.registered:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept a controller connection that sent no heartbeat for 10 s (threshold 500 ms)")
	}
}
