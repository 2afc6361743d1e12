// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// TestControllerHeartbeats proves agents receive the controller's heartbeats
// and that a silent agent is disconnected after NodeHeartbeatThreshold.
func TestControllerHeartbeats(t *testing.T) {
	c := startClusterWith(t, 100, 500, "n1")
	conn, err := c.agent("n1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	conn.onSignal(func(m *wire.Message) {
		if m.Interface != daemonapi.InternalControllerInterface || m.Member != daemonapi.InternalControllerSignalHeartbeat {
			return
		}
		if _, err := daemonapi.DecodeInternalControllerHeartbeat(m); err != nil {
			t.Error(err)
		}
		select {
		case got <- struct{}{}:
		default:
		}
	})
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no controller heartbeat")
	}
	// The fake agent sends no heartbeats: it is dropped.
	waitFor(t, "silent node offline", func() bool {
		s, _ := c.node("n1").GetStatus(context.Background())
		return s == "offline"
	})
}
