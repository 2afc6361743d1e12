// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/leakcheck"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
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

// BenchmarkListNodes1000Server is BenchmarkListNodes1000 with a client
// that does not decode the reply (it reads whole frames and parses their
// headers), so that a CPU profile shows the controller's side: go test
// -bench ListNodes1000Server -cpuprofile.
func BenchmarkListNodes1000Server(b *testing.B) {
	c := startClusterConfig(b, configuredNodes(1000))
	path := strings.TrimPrefix(c.busAddr, "unix:path=")
	path, _, _ = strings.Cut(path, ",")
	nc, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReaderSize(nc, 64<<10)
	if _, err := transport.ClientHandshake(r, nc, transport.MechanismExternal, strconv.Itoa(os.Getuid())); err != nil {
		b.Fatal(err)
	}
	var serial uint32
	call := func(dest, path, iface, member string) int {
		serial++
		if _, err := nc.Write(wire.AppendCall(nil, serial, dest, path, iface, member, "", nil)); err != nil {
			b.Fatal(err)
		}
		var m wire.Message
		for {
			hdr, err := r.Peek(wire.HeaderSize)
			if err != nil {
				b.Fatal(err)
			}
			size, _, err := wire.FrameSize(hdr)
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, size)
			if _, err := io.ReadFull(r, frame); err != nil {
				b.Fatal(err)
			}
			if err := wire.Parse(frame, &m); err != nil {
				b.Fatal(err)
			}
			if m.ReplySerial == serial && m.Type == wire.TypeMethodReturn {
				return size
			}
			if m.ReplySerial == serial {
				b.Fatalf("%s: %s", member, m.ErrorName)
			}
		}
	}
	call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
	for b.Loop() {
		if n := call(bluechi.ControllerBusName, string(bluechi.ControllerPath), bluechi.ControllerInterface, bluechi.ControllerMethodListNodes); n < 1000*60 {
			b.Fatalf("reply of %d bytes", n)
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
