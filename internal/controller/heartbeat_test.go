// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
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
	reg := daemonapi.NewInternalControllerClient(conn, bluechi.ControllerBusName, daemonapi.InternalControllerPath)
	sub, err := reg.OnHeartbeat(context.Background(), func(*daemonapi.InternalControllerHeartbeatSignal) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
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
