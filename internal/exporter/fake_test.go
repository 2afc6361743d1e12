// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeBus is a Bus whose controller the test drives: it sets the owner,
// the nodes and units, and sends signals through the handler of the open
// session.
type fakeBus struct {
	mu       sync.Mutex
	owner    string
	ownerFn  func(string)
	done     chan struct{}
	closed   bool
	nodes    []Node
	units    map[string][]Unit
	jobs     map[string][2]string // job path -> node, type
	jobGate  chan struct{}        // when set, Job waits for it
	openErr  error
	opens    int
	calls    int // calls on sessions
	sess     *fakeSession
	metricOn bool
	hung     bool // LastSeen fails with ErrNoAnswer
}

func newFakeBus(nodes ...Node) *fakeBus {
	return &fakeBus{owner: ":1.1", done: make(chan struct{}), nodes: nodes, units: map[string][]Unit{}, jobs: map[string][2]string{}}
}

func (b *fakeBus) WatchOwner(ctx context.Context, fn func(string)) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ownerFn = fn
	return b.owner, nil
}

// setOwner changes the controller's owner and tells the watcher.
func (b *fakeBus) setOwner(o string) {
	b.mu.Lock()
	b.owner = o
	fn := b.ownerFn
	b.mu.Unlock()
	if fn != nil {
		fn(o)
	}
}

func (b *fakeBus) Open(ctx context.Context, h Handler) (Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens++
	if b.openErr != nil {
		return nil, b.openErr
	}
	b.sess = &fakeSession{b: b, h: h}
	return b.sess, nil
}

func (b *fakeBus) Done() <-chan struct{} { return b.done }

func (b *fakeBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	return nil
}

// handler returns the handler of the open session.
func (b *fakeBus) handler(t *testing.T) Handler {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess == nil {
		t.Fatal("no session")
	}
	return b.sess.h
}

func (b *fakeBus) openCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opens
}

func (b *fakeBus) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

type fakeSession struct {
	b      *fakeBus
	h      Handler
	closed bool
}

func (s *fakeSession) call() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.calls++
	if s.closed {
		return errors.New("session closed")
	}
	return nil
}

func (s *fakeSession) ControllerStatus(ctx context.Context) (string, error) {
	if err := s.call(); err != nil {
		return "", err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	online := 0
	for _, n := range s.b.nodes {
		if n.Status == "online" {
			online++
		}
	}
	switch online {
	case len(s.b.nodes):
		return "up", nil
	case 0:
		return "down", nil
	}
	return "degraded", nil
}

func (s *fakeSession) Nodes(ctx context.Context) ([]Node, error) {
	if err := s.call(); err != nil {
		return nil, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return append([]Node(nil), s.b.nodes...), nil
}

func (s *fakeSession) LastSeen(ctx context.Context, node string) (time.Time, error) {
	if err := s.call(); err != nil {
		return time.Time{}, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.hung {
		return time.Time{}, fmt.Errorf("%w: no reply", ErrNoAnswer)
	}
	for _, n := range s.b.nodes {
		if n.Name == node {
			return n.LastSeen, nil
		}
	}
	return time.Time{}, fmt.Errorf("no node %s", node)
}

func (s *fakeSession) Job(ctx context.Context, job string) (string, string, error) {
	if err := s.call(); err != nil {
		return "", "", err
	}
	s.b.mu.Lock()
	gate := s.b.jobGate
	s.b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	j, ok := s.b.jobs[job]
	if !ok {
		return "", "", errors.New("org.freedesktop.DBus.Error.UnknownObject")
	}
	return j[0], j[1], nil
}

func (s *fakeSession) Units(ctx context.Context, node string) ([]Unit, error) {
	if err := s.call(); err != nil {
		return nil, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return append([]Unit(nil), s.b.units[node]...), nil
}

func (s *fakeSession) EnableMetrics(ctx context.Context) error {
	if err := s.call(); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.metricOn = true
	return nil
}

func (s *fakeSession) Close() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.closed = true
	return nil
}

// run starts an exporter on dialer results taken from buses in turn (the
// last one repeats) and returns it with its registry.
func run(t *testing.T, opts Options, buses ...*fakeBus) (*Exporter, *prometheus.Registry) {
	t.Helper()
	var mu sync.Mutex
	i := 0
	dial := func(ctx context.Context) (Bus, error) {
		mu.Lock()
		defer mu.Unlock()
		b := buses[min(i, len(buses)-1)]
		i++
		return b, nil
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = time.Millisecond
		opts.MaxBackoff = 10 * time.Millisecond
	}
	e := New(dial, opts)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collectors()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e, reg
}

// scrape gathers reg into "name{label="value",...}" -> value; histograms
// give name_count and name_sum.
func scrape(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := func(suffix string) string {
				if len(ls) == 0 {
					return mf.GetName() + suffix
				}
				return mf.GetName() + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[key("")] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[key("")] = m.Counter.GetValue()
			case m.Histogram != nil:
				out[key("_count")] = float64(m.Histogram.GetSampleCount())
				out[key("_sum")] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

// waitMetrics polls until every wanted series has its value (a missing
// wanted value of -1 means "absent").
func waitMetrics(t *testing.T, reg prometheus.Gatherer, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrape(t, reg)
		var bad []string
		for k, v := range want {
			g, ok := got[k]
			if v == -1 && ok || v != -1 && (!ok || g != v) {
				bad = append(bad, fmt.Sprintf("%s: got %v (present %v), want %v", k, g, ok, v))
			}
		}
		if len(bad) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			sort.Strings(bad)
			t.Fatalf("metrics not as wanted:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
