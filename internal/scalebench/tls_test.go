// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/testcerts"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
	"github.com/bluechi-go/bluechi/internal/tlslink"
)

// tlsFleet is the mutual-TLS material of one benchmark: a CA, the
// controller's certificate (localhost, 127.0.0.1) and a certificate per
// node sim1..simN with the node name as DNS SAN and CN, each loaded once
// into the Dialer its simulated agent uses (as the real agent's).
type tlsFleet struct {
	certs   *testcerts.Set
	dialers map[string]*tlslink.Dialer // by node name; read only once made
}

// newTLSFleet makes the certificates of nodes sim1..simN in a temporary
// folder.
func newTLSFleet(tb testing.TB, n int) *tlsFleet {
	tb.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("sim%d", i+1)
	}
	certs, err := testcerts.New(tb.TempDir(), nil, names...)
	if err != nil {
		tb.Fatal(err)
	}
	f := &tlsFleet{certs: certs, dialers: map[string]*tlslink.Dialer{}}
	for name, files := range certs.Nodes {
		h, _, err := tlsconfig.NewHolder(files)
		if err != nil {
			tb.Fatal(err)
		}
		f.dialers[name] = &tlslink.Dialer{Holder: h}
	}
	return f
}

// controllerKeys are the controller's configuration lines for UseTLS=yes.
func (f *tlsFleet) controllerKeys() string {
	c := f.certs.Controller
	return fmt.Sprintf("%s=yes\n%s=%s\n%s=%s\n%s=%s\n", config.KeyUseTLS, config.KeyTLSCertificate, c.Certificate,
		config.KeyTLSPrivateKey, c.PrivateKey, config.KeyTLSCA, c.CA)
}

// dialer returns the Dialer of node name; nil (plain TCP) on a nil fleet.
func (f *tlsFleet) dialer(name string) *tlslink.Dialer {
	if f == nil {
		return nil
	}
	return f.dialers[name]
}

// stormParallel is how many simulated agents are between their dial and
// their Register reply at once during a storm, as in connect: below the
// controller's MaxUnregisteredPeers (64), which also bounds its TLS
// handshakes in progress, so that no agent is turned away.
const stormParallel = 32

// stormResult is one registration storm's figures.
type stormResult struct {
	all      time.Duration   // first dial until every node was reported online and every Register answered
	register []time.Duration // per agent: its dial until its Register reply
	cpu      time.Duration   // the controller's CPU time over all
}

// storm registers simulated agents for the first n configured nodes,
// stormParallel at a time, timing it from the first dial until the API bus
// has carried a Status "online" PropertiesChanged of every node.
func (e *env) storm(n int) stormResult {
	e.tb.Helper()
	ch, done := e.nodeChanges(4*n + 64)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := map[dbus.ObjectPath]bool{}
	for _, name := range e.names[:n] {
		want[bluechi.NodePath(name)] = true
	}

	addr := fmt.Sprintf("127.0.0.1:%d", e.port)
	agents := make([]*simAgent, n)
	res := stormResult{register: make([]time.Duration, n)}
	errs := make(chan error, n)
	sem := make(chan struct{}, stormParallel)
	dialed := make(chan struct{})
	var wg sync.WaitGroup
	pid := e.cmd.Process.Pid
	cpu0 := cpuTime(e.tb, pid)
	t0 := time.Now()
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t := time.Now()
			a, err := dialAgent(ctx, addr, e.names[i], e.fleet.dialer(e.names[i]))
			if err != nil {
				errs <- err
				return
			}
			res.register[i] = time.Since(t)
			agents[i] = a
		})
	}
	go func() { wg.Wait(); close(dialed) }()
	for waiting := true; waiting || len(want) > 0; {
		select {
		case s := <-ch:
			if len(s.Body) < 2 {
				continue
			}
			changed, _ := s.Body[1].(map[string]dbus.Variant)
			if v, ok := changed["Status"]; ok && v.Value() == "online" {
				delete(want, s.Path)
			}
		case <-dialed:
			waiting, dialed = false, nil
			for _, a := range agents {
				if a != nil {
					e.agents = append(e.agents, a) // closed by the cleanup
				}
			}
			select {
			case err := <-errs:
				e.tb.Fatal(err)
			default:
			}
		case <-ctx.Done():
			e.tb.Fatalf("%d of %d nodes not reported online within 2 minutes", len(want), n)
		}
	}
	res.all = time.Since(t0)
	res.cpu = cpuTime(e.tb, pid) - cpu0
	nodes, err := e.ctrl.ListNodes(ctx)
	if err != nil {
		e.tb.Fatal(err)
	}
	online := 0
	for _, nd := range nodes {
		if nd.Status == "online" {
			online++
		}
	}
	if online != n {
		e.tb.Fatalf("ListNodes after the storm: %d of %d nodes online", online, n)
	}
	return res
}

// cpuTime is a process's CPU time so far: the sum of its threads' run
// times in /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts
// 10 ms ticks, too coarse for a storm of 100 registrations). Go's threads
// do not exit, so none is lost in between.
func cpuTime(tb testing.TB, pid int) time.Duration {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no schedstat for %d: %v", pid, err)
	}
	var sum time.Duration
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has just exited
		}
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			tb.Fatalf("%s: empty", f)
		}
		ns, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// tlsSizes are the storms' Ns (BLUECHI_TLS_SIZES, e.g. "100,1000"); the
// first two give the RssAnon slope per node.
var tlsSizes = envInts("BLUECHI_TLS_SIZES", []int{100, 1000})

// tlsRounds is the number of rounds (BLUECHI_TLS_ROUNDS).
var tlsRounds = envInts("BLUECHI_TLS_ROUNDS", []int{3})[0]

func envInts(name string, def []int) []int {
	env := os.Getenv(name)
	if env == "" {
		return def
	}
	var v []int
	for f := range strings.SplitSeq(env, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			v = append(v, n)
		}
	}
	if len(v) == 0 {
		return def
	}
	return v
}

// tlsModes are the two link kinds measured.
var tlsModes = []string{"plain", "tls"}

// BenchmarkTLSRegistration measures what mutual TLS costs the controller
// when nodes register: per round, for N = 100 and 1000 (BLUECHI_TLS_SIZES),
// a fresh controller of this tree with N configured nodes, plain or with
// UseTLS=yes (alternating, the order swapped every round), takes a storm
// of N simulated agents (32 in flight; over TLS each with its own
// certificate, as the real agent dials). Each sub-benchmark reports
// all-online-ms (first dial until the API bus reported all N online),
// register-med-ms and register-p99-ms (per agent: dial, TLS handshake,
// SASL, Register reply), storm-cpu-ms and cpu-per-node-us (the
// controller's CPU over the storm) and rss-anon-kB (the controller's
// settled RssAnon with all N registered). TestMain prints the medians over
// the rounds (BLUECHI_TLS_ROUNDS, 3) side by side with the RssAnon slope
// per registered node. The agents run in this process, on the same cores
// as the controller. Run with -benchtime 1x (make bench-tls).
func BenchmarkTLSRegistration(b *testing.B) {
	bin := thisBinary(b)
	fleet := newTLSFleet(b, slices.Max(tlsSizes))
	for r := range tlsRounds {
		modes := slices.Clone(tlsModes)
		if r%2 == 1 {
			slices.Reverse(modes)
		}
		for _, n := range tlsSizes {
			for _, mode := range modes {
				b.Run(fmt.Sprintf("round%d/%s-%d", r+1, mode, n), func(b *testing.B) {
					benchStorm(b, bin, mode, n, r, fleet)
				})
			}
		}
	}
}

func benchStorm(b *testing.B, bin, mode string, n, round int, fleet *tlsFleet) {
	var f *tlsFleet
	if mode == "tls" {
		f = fleet
	}
	e := startEnvWith(b, bin, n, f)
	s := e.storm(n)
	anon := e.settledAnonKB()
	rec := func(name string, v float64) {
		b.ReportMetric(v, name)
		tlsResults.add(mode, n, round, name, v)
	}
	rec("all-online-ms", msOf(s.all))
	rec("register-med-ms", msOf(quantile(s.register, 0.5)))
	rec("register-p99-ms", msOf(quantile(s.register, 0.99)))
	rec("storm-cpu-ms", msOf(s.cpu))
	rec("cpu-per-node-us", float64(s.cpu.Microseconds())/float64(n))
	rec("rss-anon-kB", anon)
}

// tlsResults keeps BenchmarkTLSRegistration's figures for the table:
// mode -> N -> metric -> round -> value.
var tlsResults = tlsStore{m: map[string]map[int]map[string]map[int]float64{}}

type tlsStore struct {
	sync.Mutex // guards m
	m          map[string]map[int]map[string]map[int]float64
}

func (s *tlsStore) add(mode string, n, round int, metric string, v float64) {
	s.Lock()
	defer s.Unlock()
	if s.m[mode] == nil {
		s.m[mode] = map[int]map[string]map[int]float64{}
	}
	if s.m[mode][n] == nil {
		s.m[mode][n] = map[string]map[int]float64{}
	}
	if s.m[mode][n][metric] == nil {
		s.m[mode][n][metric] = map[int]float64{}
	}
	s.m[mode][n][metric][round] = v
}

// tlsRows are the table's rows per N: heading and metric.
var tlsRows = []struct{ head, metric string }{
	{"all online, ms", "all-online-ms"},
	{"Register latency median, ms", "register-med-ms"},
	{"Register latency p99, ms", "register-p99-ms"},
	{"controller CPU for the storm, ms", "storm-cpu-ms"},
	{"controller CPU per registration, µs", "cpu-per-node-us"},
	{"controller RssAnon, all registered, kB", "rss-anon-kB"},
}

// cell is "median [min-max]" of the rounds' values, and the median.
func cell(byRound map[int]float64) (string, float64, bool) {
	if len(byRound) == 0 {
		return "-", 0, false
	}
	v := slices.Collect(maps.Values(byRound))
	med := quantile(v, 0.5)
	if len(v) == 1 {
		return fmtFigure(med), med, true
	}
	return fmt.Sprintf("%s [%s-%s]", fmtFigure(med), fmtFigure(slices.Min(v)), fmtFigure(slices.Max(v))), med, true
}

// printTLSTable writes BenchmarkTLSRegistration's figures as a Markdown
// table: per N and figure the median over the rounds [min-max], plain and
// TLS, and their ratio; then the RssAnon slope per registered node between
// the first two Ns, per round and as the median.
func printTLSTable(w io.Writer) {
	tlsResults.Lock()
	defer tlsResults.Unlock()
	if len(tlsResults.m) == 0 {
		return
	}
	fmt.Fprintf(w, "\nregistration storms, plain vs mutual TLS (this tree's controller; median [min-max] of the rounds, alternating; %d agents in flight):\n\n", stormParallel)
	fmt.Fprintln(w, "| N | figure | plain | TLS | TLS/plain |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	plain, secure := tlsResults.m["plain"], tlsResults.m["tls"]
	ns := slices.Sorted(maps.Keys(plain))
	for _, n := range ns {
		for _, r := range tlsRows {
			pc, pm, ok1 := cell(plain[n][r.metric])
			tc, tm, ok2 := cell(secure[n][r.metric])
			ratio := "-"
			if ok1 && ok2 && pm > 0 {
				ratio = fmt.Sprintf("%.2f", tm/pm)
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", n, r.head, pc, tc, ratio)
		}
	}
	if len(tlsSizes) >= 2 {
		lo, hi := tlsSizes[0], tlsSizes[1]
		slopes := func(byN map[int]map[string]map[int]float64) map[int]float64 {
			out := map[int]float64{}
			for round, a := range byN[lo]["rss-anon-kB"] {
				if z, ok := byN[hi]["rss-anon-kB"][round]; ok {
					out[round] = (z - a) / float64(hi-lo)
				}
			}
			return out
		}
		pc, pm, ok1 := cell(slopes(plain))
		tc, tm, ok2 := cell(slopes(secure))
		ratio := "-"
		if ok1 && ok2 && pm > 0 {
			ratio = fmt.Sprintf("%.2f", tm/pm)
		}
		fmt.Fprintf(w, "| %d->%d | RssAnon per registered node (slope), kB | %s | %s | %s |\n", lo, hi, pc, tc, ratio)
	}
	fmt.Fprintln(w)
}

// TestSimulatedAgentsTLS is the smoke check of the TLS storm (run by make
// test): simulated agents register over mutual TLS with the real
// controller and answer ListUnits through it.
func TestSimulatedAgentsTLS(t *testing.T) {
	e := startEnvWith(t, thisBinary(t), 6, newTLSFleet(t, 6))
	s := e.storm(5) // one configured node stays absent
	if s.all <= 0 || s.cpu <= 0 || slices.Contains(s.register, 0) {
		t.Fatalf("storm figures: %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The port speaks TLS only: a plain agent gets nowhere.
	if a, err := dialAgent(ctx, fmt.Sprintf("127.0.0.1:%d", e.port), "sim6", nil); err == nil {
		a.Close()
		t.Fatal("a plain agent registered with a UseTLS=yes controller")
	}
	units, err := e.ctrl.ListUnits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 5 || len(units["sim2"]) != 20 {
		t.Fatalf("ListUnits: %d nodes, %d units on sim2; want 5 and 20", len(units), len(units["sim2"]))
	}
}
