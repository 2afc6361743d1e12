// SPDX-License-Identifier: Apache-2.0

// Package exporter is bluechi-exporter: it follows a BlueChi controller
// through its public API (a Monitor watching every unit, the controller's
// job and metrics signals, node PropertiesChanged) and serves what it saw as
// Prometheus metrics. A scrape only reads the state kept here; it never
// calls the controller. The controller going away sets bluechi_up to 0 and
// keeps every counter; the exporter reconnects with backoff and opens a new
// session when the controller is back.
package exporter

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure an Exporter.
type Options struct {
	// Units are path.Match patterns; matching units get per-unit series.
	Units []string
	// EnableMetrics makes the exporter switch the controller's metrics
	// signals on at every connect (for bluechi_agent_job_seconds).
	EnableMetrics bool
	// LastSeenInterval is how often the last-seen time of online nodes is
	// read (the controller does not signal its changes); 0 reads it only
	// when a node's status changes.
	LastSeenInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts (defaults 250 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// CallTimeout bounds every call to the controller (default 30 s).
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// defaultCallTimeout is the default of Options.CallTimeout.
const defaultCallTimeout = 30 * time.Second

// maxTrackedJobs bounds the jobs waiting for their JobRemoved.
const maxTrackedJobs = 1 << 16

type nodeState struct {
	online   bool
	lastSeen time.Time
}

type unitKey struct{ node, unit string }

type unitState struct{ active, sub string }

type jobState struct {
	start   time.Time
	known   bool // the lookup of node and type is over
	node    string
	typ     string
	removed bool
	end     time.Time
	result  string
}

// Exporter keeps the controller's state and its metrics.
type Exporter struct {
	opts Options
	dial Dialer
	log  *slog.Logger
	m    *metrics
	wg   sync.WaitGroup  // lookups started by events
	ctx  context.Context // Run's, for those lookups; set before any session

	mu         sync.Mutex // guards the fields below
	gen        uint64     // session generation; events of older sessions are dropped
	sess       Session    // the open session, nil while down
	up         bool
	ctrlStatus string
	ctrlTouch  bool            // ctrlStatus was set by a signal in this session
	touched    map[string]bool // nodes whose status a signal set in this session
	nodes      map[string]*nodeState
	units      map[unitKey]unitState
	jobs       map[uint32]*jobState
}

// New returns an Exporter that connects with dial. Register its
// Collectors on a registry and call Run.
func New(dial Dialer, opts Options) *Exporter {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = defaultCallTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{opts: opts, dial: dial, log: opts.Logger,
		touched: map[string]bool{}, nodes: map[string]*nodeState{},
		units: map[unitKey]unitState{}, jobs: map[uint32]*jobState{}}
	e.m = newMetrics(e)
	return e
}

// Collectors returns the exporter's collectors for a registry.
func (e *Exporter) Collectors() []prometheus.Collector { return e.m.collectors() }

// Run follows the controller until ctx ends; it returns only then. A
// controller that stops answering (seen by the periodic last-seen reads)
// ends the session as one that leaves the bus does.
func (e *Exporter) Run(ctx context.Context) {
	e.ctx = ctx
	defer e.wg.Wait()
	backoff := e.opts.MinBackoff
	var lastErr string // the last dial failure logged
	failed := 0        // dials failed in a row
	for ctx.Err() == nil {
		bus, err := e.dial(ctx)
		if err != nil {
			// The first failure is a warning, the same failure again,
			// every MaxBackoff while the bus is gone, only a debug line.
			failed++
			level := slog.LevelWarn
			if err.Error() == lastErr {
				level = slog.LevelDebug
			}
			lastErr = err.Error()
			e.log.Log(ctx, level, "cannot connect to the bus", "error", err, "retry_in", backoff, "attempt", failed)
			if !sleep(ctx, &backoff, e.opts.MaxBackoff) {
				return
			}
			continue
		}
		if failed > 0 {
			e.log.Info("connected to the bus", "failed_attempts", failed)
			failed, lastErr = 0, ""
		}
		e.runBus(ctx, bus, &backoff)
		bus.Close()
		e.setDown()
		if ctx.Err() == nil {
			e.log.Warn("bus connection lost", "retry_in", backoff)
			if !sleep(ctx, &backoff, e.opts.MaxBackoff) {
				return
			}
		}
	}
}

// sleep waits *backoff, then doubles it up to limit; false when ctx ended.
func sleep(ctx context.Context, backoff *time.Duration, limit time.Duration) bool {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	*backoff = min(2**backoff, limit)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runBus runs sessions on one bus connection until it is lost or ctx ends.
func (e *Exporter) runBus(ctx context.Context, bus Bus, backoff *time.Duration) {
	owners := make(chan string, 1) // the latest owner reported; one sender
	owner, err := bus.WatchOwner(ctx, func(o string) {
		select {
		case <-owners:
		default:
		}
		owners <- o
	})
	if err != nil {
		e.log.Warn("cannot watch the controller's bus name", "error", err)
		return
	}
	var tick <-chan time.Time
	if e.opts.LastSeenInterval > 0 {
		t := time.NewTicker(e.opts.LastSeenInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if owner == "" {
			e.setDown()
			e.log.Info("waiting for the controller")
			select {
			case owner = <-owners:
				continue
			case <-bus.Done():
				return
			case <-ctx.Done():
				return
			}
		}
		sess, err := e.open(ctx, bus)
		if err != nil {
			e.setDown()
			e.log.Warn("cannot follow the controller", "error", err, "retry_in", *backoff)
			t := time.NewTimer(*backoff)
			*backoff = min(2**backoff, e.opts.MaxBackoff)
			select {
			case <-t.C:
			case owner = <-owners:
				t.Stop()
			case <-bus.Done():
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		*backoff = e.opts.MinBackoff
		e.log.Info("following the controller", "owner", owner)
	session:
		for {
			select {
			case o := <-owners:
				if o != owner {
					owner = o
					e.log.Warn("controller left the bus or was replaced", "owner", o)
					break session
				}
			case <-tick:
				if err := e.refreshLastSeen(ctx); err != nil {
					e.log.Warn("controller stopped answering", "error", err)
					break session
				}
			case <-bus.Done():
				e.closeSession(sess)
				return
			case <-ctx.Done():
				e.closeSession(sess)
				return
			}
		}
		e.closeSession(sess)
	}
}

// open starts a session and applies the controller's current state.
func (e *Exporter) open(ctx context.Context, bus Bus) (Session, error) {
	e.mu.Lock()
	e.gen++
	gen := e.gen
	e.touched = map[string]bool{}
	e.ctrlTouch = false
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	sess, err := bus.Open(ctx, &handler{e: e, gen: gen})
	if err != nil {
		return nil, err
	}
	if e.opts.EnableMetrics {
		if err := sess.EnableMetrics(ctx); err != nil {
			e.log.Warn("cannot enable the controller's metrics", "error", err)
		}
	}
	status, err := sess.ControllerStatus(ctx)
	if err == nil {
		var nodes []Node
		if nodes, err = sess.Nodes(ctx); err == nil {
			e.m.sessions.Inc()
			e.applySnapshot(gen, sess, status, nodes)
			return sess, nil
		}
	}
	sess.Close()
	return nil, err
}

func (e *Exporter) applySnapshot(gen uint64, sess Session, status string, nodes []Node) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if gen != e.gen {
		return
	}
	e.sess, e.up = sess, true
	if !e.ctrlTouch {
		e.ctrlStatus = status
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.Name] = true
		st := e.nodes[n.Name]
		if st == nil {
			st = &nodeState{}
			e.nodes[n.Name] = st
		}
		if !e.touched[n.Name] {
			st.online = n.Status == "online"
		}
		if n.LastSeen.After(st.lastSeen) {
			st.lastSeen = n.LastSeen
		}
	}
	for name := range e.nodes {
		if !seen[name] && !e.touched[name] {
			// No longer configured: its counters and histograms go
			// with its gauges, or they would be served unchanged until
			// the exporter restarts.
			delete(e.nodes, name)
			e.m.forgetNode(name)
		}
	}
	if len(e.opts.Units) > 0 {
		for name, st := range e.nodes {
			if st.online {
				e.seedUnitsLocked(gen, name)
			}
		}
	}
}

func (e *Exporter) closeSession(sess Session) {
	e.setDown()
	sess.Close()
}

// setDown records that no session is open: bluechi_up 0, every node
// offline, per-unit series and pending jobs dropped. Counters stay.
func (e *Exporter) setDown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.sess, e.up, e.ctrlStatus = nil, false, ""
	for _, n := range e.nodes {
		n.online = false
	}
	clear(e.units)
	clear(e.jobs)
}

// refreshLastSeen reads the last-seen time of every online node; an error
// wrapping ErrNoAnswer means the controller does not answer.
func (e *Exporter) refreshLastSeen(ctx context.Context) error {
	e.mu.Lock()
	sess, gen := e.sess, e.gen
	var names []string
	for name, n := range e.nodes {
		if n.online {
			names = append(names, name)
		}
	}
	e.mu.Unlock()
	if sess == nil {
		return nil
	}
	for _, name := range names {
		if err := e.readLastSeen(ctx, gen, sess, name); errors.Is(err, ErrNoAnswer) {
			return err
		}
	}
	return nil
}

func (e *Exporter) readLastSeen(ctx context.Context, gen uint64, sess Session, name string) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	t, err := sess.LastSeen(ctx, name)
	if err != nil {
		e.log.Debug("cannot read last-seen time", "node", name, "error", err)
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := e.nodes[name]; n != nil && gen == e.gen && t.After(n.lastSeen) {
		n.lastSeen = t
	}
	return nil
}

// wantUnit reports whether unit gets per-unit series.
func (e *Exporter) wantUnit(unit string) bool {
	for _, p := range e.opts.Units {
		if ok, _ := path.Match(p, unit); ok {
			return true
		}
	}
	return false
}

// seedUnitsLocked reads the units of a node that just came online, for
// the states of matching units no signal has told yet. e.mu is held.
func (e *Exporter) seedUnitsLocked(gen uint64, node string) {
	sess := e.sess
	if sess == nil {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, e.opts.CallTimeout)
		defer cancel()
		units, err := sess.Units(ctx, node)
		if err != nil {
			e.log.Debug("cannot list units", "node", node, "error", err)
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if gen != e.gen || e.nodes[node] == nil || !e.nodes[node].online {
			return
		}
		for _, u := range units {
			k := unitKey{node, u.Name}
			if _, ok := e.units[k]; !ok && e.wantUnit(u.Name) {
				e.units[k] = unitState{u.ActiveState, u.SubState}
			}
		}
	}()
}

// handler receives the signals of one session.
type handler struct {
	e   *Exporter
	gen uint64
}

// lock takes e.mu and reports whether the session is still current; the
// caller unlocks either way.
func (h *handler) lock() bool {
	h.e.mu.Lock()
	return h.gen == h.e.gen
}

func (h *handler) ControllerStatusChanged(status string) {
	e := h.e
	defer e.mu.Unlock()
	if h.lock() {
		e.ctrlStatus, e.ctrlTouch = status, true
	}
}

func (h *handler) NodeStatusChanged(node, status string) {
	e := h.e
	defer e.mu.Unlock()
	if !h.lock() {
		return
	}
	e.touched[node] = true
	n := e.nodes[node]
	if n == nil {
		n = &nodeState{}
		e.nodes[node] = n
	}
	was := n.online
	n.online = status == "online"
	if was == n.online {
		return
	}
	if !n.online {
		e.dropNodeLocked(node)
	}
	if sess := e.sess; sess != nil {
		gen := h.gen
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.readLastSeen(e.ctx, gen, sess, node)
		}()
		if n.online && len(e.opts.Units) > 0 {
			e.seedUnitsLocked(gen, node)
		}
	}
}

// dropNodeLocked forgets the unit states and the finished-lookup jobs of a
// node that went offline (its jobs vanish without JobRemoved).
func (e *Exporter) dropNodeLocked(node string) {
	for k := range e.units {
		if k.node == node {
			delete(e.units, k)
		}
	}
	for id, j := range e.jobs {
		if j.known && j.node == node {
			delete(e.jobs, id)
		}
	}
}

func (h *handler) JobNew(id uint32, job string) {
	e := h.e
	defer e.mu.Unlock()
	if !h.lock() || len(e.jobs) >= maxTrackedJobs {
		return
	}
	j := &jobState{start: time.Now()}
	e.jobs[id] = j
	sess := e.sess
	if sess == nil { // before the session's snapshot: type unknown
		j.known, j.typ = true, "unknown"
		return
	}
	gen := h.gen
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, e.opts.CallTimeout)
		defer cancel()
		node, typ, err := sess.Job(ctx, job)
		if err != nil {
			typ = "unknown" // the job ended before we could read it
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if gen != e.gen || e.jobs[id] != j {
			return
		}
		j.known, j.typ = true, typ
		if j.node == "" {
			j.node = node
		}
		if j.removed {
			delete(e.jobs, id)
			e.m.jobDone(j)
		}
	}()
}

func (h *handler) JobRemoved(id uint32, job, node, unit, result string) {
	e := h.e
	defer e.mu.Unlock()
	if !h.lock() {
		return
	}
	j := e.jobs[id]
	if j == nil { // its JobNew came before this session
		e.m.jobsTotal.WithLabelValues(node, "unknown", result).Inc()
		return
	}
	j.removed, j.end, j.node, j.result = true, time.Now(), node, result
	if j.known {
		delete(e.jobs, id)
		e.m.jobDone(j)
	}
}

func (h *handler) UnitStateChanged(node, unit, active, sub string, virtual bool) {
	e := h.e
	if !virtual && unit != "*" {
		e.m.stateChanges.WithLabelValues(node).Inc()
	}
	if unit == "*" || !e.wantUnit(unit) {
		return
	}
	defer e.mu.Unlock()
	if h.lock() {
		e.units[unitKey{node, unit}] = unitState{active, sub}
	}
}

func (h *handler) UnitRemoved(node, unit string, virtual bool) {
	e := h.e
	if unit != "*" && !e.wantUnit(unit) {
		return
	}
	defer e.mu.Unlock()
	if !h.lock() {
		return
	}
	if unit == "*" {
		for k := range e.units {
			if k.node == node {
				delete(e.units, k)
			}
		}
		return
	}
	delete(e.units, unitKey{node, unit})
}

func (h *handler) AgentJob(node, unit, method string, d time.Duration) {
	h.e.m.agentJob.WithLabelValues(node, method).Observe(d.Seconds())
}

func (h *handler) StartUnitJob(node, unit string, d time.Duration) {
	h.e.m.startUnitJob.WithLabelValues(node).Observe(d.Seconds())
}
