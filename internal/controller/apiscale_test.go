// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"testing"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/leakcheck"
)

// configuredNodes returns a config with n configured nodes sim1..simN.
func configuredNodes(n int) *config.Controller {
	cfg := &config.Controller{}
	for i := range n {
		cfg.Nodes = append(cfg.Nodes, config.Node{Name: fmt.Sprintf("sim%d", i+1)})
	}
	return cfg
}

// BenchmarkListNodes1000 times Controller.ListNodes with 1000 configured
// (absent) nodes, client and controller in this process on a real
// dbus-daemon (ns/op is the round trip, both ends' godbus encoding and
// decoding included): go test -bench ListNodes1000 -cpuprofile.
func BenchmarkListNodes1000(b *testing.B) {
	c := startClusterConfig(b, configuredNodes(1000))
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		nodes, err := ctrl.ListNodes(ctx)
		if err != nil || len(nodes) != 1000 {
			b.Fatal(len(nodes), err)
		}
	}
}

// BenchmarkGetNode1000 times Controller.GetNode with 1000 configured nodes.
func BenchmarkGetNode1000(b *testing.B) {
	c := startClusterConfig(b, configuredNodes(1000))
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := ctrl.GetNode(ctx, fmt.Sprintf("sim%d", i%1000+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConfiguredNodeHeap reports the live heap each configured (never
// connected) node costs the controller: the heap of a controller with 2000
// nodes less that of one with 100, over 1900. It measures once, whatever
// b.N.
func BenchmarkConfiguredNodeHeap(b *testing.B) {
	heapOf := func(n int) uint64 {
		base := leakcheck.LiveHeap()
		tb := &cleanupTB{TB: b}
		defer tb.run()
		startClusterConfig(tb, configuredNodes(n))
		return leakcheck.LiveHeap() - base
	}
	h1 := heapOf(100)
	h2 := heapOf(2000)
	for b.Loop() {
	}
	b.ReportMetric(float64(int64(h2)-int64(h1))/1900, "B/configured-node")
}

// cleanupTB collects cleanups so that one benchmark iteration can stop
// the controllers it started.
type cleanupTB struct {
	testing.TB
	fns []func()
}

func (t *cleanupTB) Cleanup(f func()) { t.fns = append(t.fns, f) }

func (t *cleanupTB) TempDir() string { return t.TB.TempDir() }

func (t *cleanupTB) run() {
	for i := len(t.fns) - 1; i >= 0; i-- {
		t.fns[i]()
	}
	t.fns = nil
}
