// SPDX-License-Identifier: Apache-2.0

package exporter_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the commands once per test binary (without -race, as
// they ship).
func binaries(tb testing.TB) string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "bluechi-exporter-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/bluechi-go/bluechi/cmd/...")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func startCluster(tb testing.TB, names ...string) *cluster.Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{BinDir: binaries(tb), Names: names})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, n := range append([]string{"controller"}, names...) {
				if n != "controller" {
					n = "agent-" + n
				}
				tb.Logf("--- %s ---\n%s", n, c.Tail(n, 3000))
			}
		}
		c.Stop()
	})
	return c
}

// exporterProc is a running bluechi-exporter binary.
type exporterProc struct {
	cmd *exec.Cmd
	url string
	log *bytes.Buffer
	mu  *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startExporter runs bluechi-exporter on the cluster bus as the session bus.
func startExporter(tb testing.TB, busAddress string, args ...string) *exporterProc {
	tb.Helper()
	return startExporterAs(tb, nil, busAddress, args...)
}

// startExporterAs runs bluechi-exporter through a wrapper command (such as
// setpriv), nil for none.
func startExporterAs(tb testing.TB, wrapper []string, busAddress string, args ...string) *exporterProc {
	tb.Helper()
	port, err := cluster.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	argv := append(append(wrapper, filepath.Join(binaries(tb), "bluechi-exporter"), "-u", "--web.listen-address", addr), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+busAddress)
	p := &exporterProc{cmd: cmd, url: "http://" + addr + "/metrics", log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stdout, cmd.Stderr = lockedWriter{p.mu, p.log}, lockedWriter{p.mu, p.log}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if tb.Failed() {
			tb.Logf("--- exporter ---\n%s", p.logText())
		}
	})
	return p
}

func (p *exporterProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// scrapeAccept is the Accept header of a Prometheus 2 scrape: it asks for
// OpenMetrics first.
const scrapeAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// body fetches the exposition as a Prometheus server does; it must come in
// the text format, the one bluechi-exporter(1) documents.
func (p *exporterProc) body() (string, error) {
	req, err := http.NewRequest(http.MethodGet, p.url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", scrapeAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		return "", fmt.Errorf("Content-Type %q, want the text format", ct)
	}
	return string(b), err
}

// parseText reads "name{labels} value" lines of the text format into a map
// (client_golang writes labels sorted by name).
func parseText(body string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// wait polls the metrics until check accepts them, for up to limit.
func (p *exporterProc) wait(tb testing.TB, limit time.Duration, what string, check func(m map[string]float64) bool) map[string]float64 {
	tb.Helper()
	deadline := time.Now().Add(limit)
	var last map[string]float64
	for {
		if b, err := p.body(); err == nil {
			last = parseText(b)
			if check(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			var keys []string
			for k, v := range last {
				if strings.HasPrefix(k, "bluechi_") {
					keys = append(keys, fmt.Sprintf("%s %v", k, v))
				}
			}
			sort.Strings(keys)
			tb.Fatalf("%s: not within %v; last bluechi_ series:\n%s", what, limit, strings.Join(keys, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// has returns a check that every series has its value.
func has(want map[string]float64) func(map[string]float64) bool {
	return func(m map[string]float64) bool {
		for k, v := range want {
			if g, ok := m[k]; !ok || g != v {
				return false
			}
		}
		return true
	}
}

// promtool runs the real promtool check metrics on an exposition.
func promtool(tb testing.TB, body string) {
	tb.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		tb.Fatalf("promtool (Debian package prometheus) is needed: %v", err)
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		tb.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// startUnit starts a unit and waits for its JobRemoved result.
func startUnit(tb testing.TB, conn *dbus.Conn, node, unit string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make(chan *bluechi.ControllerJobRemovedSignal, 16)
	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	sub, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) { results <- s })
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Close()
	job, err := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(node)).StartUnit(ctx, unit, "replace")
	if err != nil {
		tb.Fatalf("start %s on %s: %v", unit, node, err)
	}
	for {
		select {
		case s := <-results:
			if s.Job == job {
				return s.Result
			}
		case <-ctx.Done():
			tb.Fatalf("no JobRemoved for %s on %s", unit, node)
		}
	}
}

// TestExporterOnCluster runs the real exporter binary against a real
// cluster of three nodes (controller, agents, systemd --user each).
func TestExporterOnCluster(t *testing.T) {
	c := startCluster(t, cluster.DefaultNames(3)...)
	p := startExporter(t, c.BusAddress, "--units", "sb-*.service", "--enable-metrics", "--last-seen-interval", "1s")
	conn, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Node gauges for every node.
	nodes := map[string]float64{`bluechi_up`: 1, `bluechi_nodes{status="online"}`: 3, `bluechi_nodes{status="offline"}`: 0,
		`bluechi_controller_status{status="up"}`: 1, `bluechi_exporter_controller_sessions_total`: 1}
	for _, n := range cluster.DefaultNames(3) {
		nodes[`bluechi_node_online{node="`+n+`"}`] = 1
	}
	m := p.wait(t, 20*time.Second, "node gauges", has(nodes))
	for _, n := range cluster.DefaultNames(3) {
		ts := m[`bluechi_node_last_seen_timestamp_seconds{node="`+n+`"}`]
		if age := time.Since(time.Unix(int64(ts), 0)); age < 0 || age > time.Minute {
			t.Errorf("last seen of %s: %v (%v ago)", n, ts, age)
		}
	}

	// A done and a failed start: counted by result, timed by the histogram.
	if r := startUnit(t, conn, "node2", sandbox.OneshotServiceName); r != "done" {
		t.Fatalf("oneshot start: %s", r)
	}
	if r := startUnit(t, conn, "node2", sandbox.FailingServiceName); r != "failed" {
		t.Fatalf("failing start: %s", r)
	}
	jobs := map[string]float64{
		`bluechi_jobs_total{job_type="start",node="node2",result="done"}`:               1,
		`bluechi_agent_job_seconds_count{method="StartUnit",node="node2"}`:              2,
		`bluechi_start_unit_job_seconds_count{node="node2"}`:                            2,
		`bluechi_unit_active{node="node2",state="failed",unit="sb-failing.service"}`:    1,
		`bluechi_unit_sub_state{node="node2",state="failed",unit="sb-failing.service"}`: 1,
	}
	// The failing unit fails within milliseconds: when its job is gone
	// before the exporter has read its type, the exporter counts it as
	// "unknown" (its documented behaviour), so either label is right.
	eitherType := func(m map[string]float64, format string, want float64) bool {
		return m[fmt.Sprintf(format, "start")]+m[fmt.Sprintf(format, "unknown")] == want
	}
	m = p.wait(t, 20*time.Second, "job metrics", func(m map[string]float64) bool {
		return has(jobs)(m) &&
			eitherType(m, `bluechi_jobs_total{job_type="%s",node="node2",result="failed"}`, 1) &&
			eitherType(m, `bluechi_job_duration_seconds_count{job_type="%s",node="node2"}`, 2) &&
			eitherType(m, `bluechi_job_duration_seconds_bucket{job_type="%s",node="node2",le="+Inf"}`, 2)
	})
	if m[`bluechi_unit_state_changes_total{node="node2"}`] < 2 {
		t.Errorf("unit state changes on node2: %v", m[`bluechi_unit_state_changes_total{node="node2"}`])
	}
	if d := m[`bluechi_job_duration_seconds_sum{job_type="start",node="node2"}`]; d <= 0 || d > 20 {
		t.Errorf("job duration sum %v", d)
	}
	body, err := p.body()
	if err != nil {
		t.Fatal(err)
	}
	promtool(t, body)

	// node3 offline within 4 s of its agent being killed.
	if err := c.Agent("node3").Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	p.wait(t, 4*time.Second, "node3 offline", has(map[string]float64{`bluechi_node_online{node="node3"}`: 0,
		`bluechi_nodes{status="offline"}`: 1, `bluechi_controller_status{status="degraded"}`: 1}))
	t.Logf("node3 offline in the metrics %v after its agent was killed", time.Since(killed).Round(time.Millisecond))

	// Controller restart: bluechi_up 0 then 1, counters intact.
	counters := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "bluechi_jobs_total") || strings.HasPrefix(k, "bluechi_job_duration_seconds_count") {
			counters[k] = v
		}
	}
	c.StopController()
	down := map[string]float64{`bluechi_up`: 0, `bluechi_controller_status{status="down"}`: 1, `bluechi_node_online{node="node1"}`: 0}
	for k, v := range counters {
		down[k] = v
	}
	p.wait(t, 10*time.Second, "bluechi_up 0 after the controller stopped", has(down))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitOnline(ctx, "node1", "node2"); err != nil {
		t.Fatal(err)
	}
	up := map[string]float64{`bluechi_up`: 1, `bluechi_node_online{node="node1"}`: 1, `bluechi_node_online{node="node2"}`: 1,
		`bluechi_node_online{node="node3"}`: 0, `bluechi_exporter_controller_sessions_total`: 2}
	for k, v := range counters {
		up[k] = v
	}
	p.wait(t, 20*time.Second, "bluechi_up 1 after the controller restarted", has(up))

	// The new session has a new monitor: jobs are counted again.
	if r := startUnit(t, conn, "node1", sandbox.OneshotServiceName); r != "done" {
		t.Fatalf("oneshot start after restart: %s", r)
	}
	p.wait(t, 20*time.Second, "a job after the restart", has(map[string]float64{
		`bluechi_jobs_total{job_type="start",node="node1",result="done"}`: 1,
		`bluechi_jobs_total{job_type="start",node="node2",result="done"}`: 1,
	}))
	body, err = p.body()
	if err != nil {
		t.Fatal(err)
	}
	promtool(t, body)
	if p.cmd.ProcessState != nil {
		t.Fatal("exporter exited")
	}
}
