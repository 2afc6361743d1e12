// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// benchAgent is a minimal agent in the test process: it registers and
// emits unit signals; Subscribe calls from the controller are accepted.
type benchAgent struct {
	daemonapi.UnimplementedInternalAgentServer
}

func (benchAgent) Subscribe(context.Context, string) error   { return nil }
func (benchAgent) Unsubscribe(context.Context, string) error { return nil }

// systemdUnitProps is what systemd sends in a PropertiesChanged of
// org.freedesktop.systemd1.Unit (22 values, two of them structs).
func systemdUnitProps(active string) map[string]dbus.Variant {
	type job struct {
		ID   uint32
		Path dbus.ObjectPath
	}
	type detail struct{ K, V string }
	p := map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant(active), "SubState": dbus.MakeVariant("running"), "FreezerState": dbus.MakeVariant("running"),
		"Job": dbus.MakeVariant(job{0, "/"}), "InvocationID": dbus.MakeVariant(make([]byte, 16)),
		"ActivationDetails": dbus.MakeVariant([]detail{}), "ConditionResult": dbus.MakeVariant(true), "AssertResult": dbus.MakeVariant(true),
	}
	for _, k := range []string{"InactiveEnter", "InactiveExit", "ActiveEnter", "ActiveExit", "Condition", "Assert", "StateChange"} {
		p[k+"Timestamp"] = dbus.MakeVariant(uint64(1795000000000000))
		p[k+"TimestampMonotonic"] = dbus.MakeVariant(uint64(3140000000))
	}
	return p
}

// BenchmarkControllerEventCost measures the CPU the controller process
// (built without the race detector) spends per event on the monitor path:
// an agent signal in, one unicast monitor signal out to a "*"/"*"
// subscriber. The agent and the subscriber run in the test process, so
// the controller's /proc CPU counts only its own work. Run it with
//
//	go test -run XXX -bench ControllerEventCost -benchtime 20000x ./internal/e2e
func BenchmarkControllerEventCost(b *testing.B) {
	bc := startBenchController(b, "HeartbeatInterval=0\n", "n1") // the fake agent sends no heartbeats
	ctx := context.Background()
	srv := dbusrt.NewServer()
	conn, err := dbusrt.DialPeer(fmt.Sprintf("tcp:host=127.0.0.1,port=%d", bc.port), srv.ConnOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	srv.Bind(conn)
	defer conn.Close()
	agentObj, err := daemonapi.ExportInternalAgent(conn, daemonapi.InternalAgentPath, benchAgent{}, daemonapi.InternalAgentProperties{})
	if err != nil {
		b.Fatal(err)
	}
	if err := daemonapi.NewInternalControllerClient(conn, bluechi.ControllerBusName, daemonapi.InternalControllerPath).Register(ctx, "n1"); err != nil {
		b.Fatal(err)
	}
	path, err := bluechi.NewControllerClient(bc.client, bluechi.ControllerBusName, bluechi.ControllerPath).CreateMonitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mon := bluechi.NewMonitorClient(bc.client, bluechi.ControllerBusName, path)
	got := make(chan struct{}, 1<<16)
	count := func() { got <- struct{}{} }
	s1, err := mon.OnUnitStateChanged(ctx, func(*bluechi.MonitorUnitStateChangedSignal) { count() })
	if err != nil {
		b.Fatal(err)
	}
	defer s1.Close()
	s2, err := mon.OnUnitPropertiesChanged(ctx, func(*bluechi.MonitorUnitPropertiesChangedSignal) { count() })
	if err != nil {
		b.Fatal(err)
	}
	defer s2.Close()
	if _, err := mon.Subscribe(ctx, "*", "*"); err != nil {
		b.Fatal(err)
	}
	props := [2]map[string]dbus.Variant{systemdUnitProps("active"), systemdUnitProps("activating")}
	for _, kind := range []string{"state", "props"} {
		b.Run(kind, func(b *testing.B) {
			cpu0, err := procCPU(bc.cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for i := 0; i < b.N; i++ {
					var err error
					if kind == "state" {
						err = agentObj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{
							Unit: "a.service", ActiveState: []string{"active", "activating"}[i%2], SubState: "running", Reason: "real"})
					} else {
						err = agentObj.EmitUnitPropertiesChanged(daemonapi.InternalAgentUnitPropertiesChangedSignal{
							Unit: "a.service", Interface: "org.freedesktop.systemd1.Unit", Props: props[i%2]})
					}
					if err != nil {
						b.Errorf("emit %d: %v", i, err)
						return
					}
				}
			}()
			for i := 0; i < b.N; i++ {
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					b.Fatalf("received %d of %d", i, b.N)
				}
			}
			cpu1, err := procCPU(bc.cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "ctrl-cpu-ns/event")
		})
	}
}
