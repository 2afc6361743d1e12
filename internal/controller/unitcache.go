package controller

import (
	"context"
	"errors"
	"sync"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Controller.ListUnits is answered from a cache of each node's unit list.
//
// A hidden subscription to "*" on every node (cacheSink) keeps every agent
// sending all its unit signals, and any unit signal from a node's
// connection invalidates that node's entry; so does a new connection. A
// node without a valid entry is asked at call time, as before, and its
// answer is kept only if no unit signal came while it was asked. The agent
// sends a unit change before anything it writes afterwards (a reply
// included), so an answer that raced a change is never kept.
//
// Entries hold the wire encoding of the node's units, ready to be copied
// into a reply that godbus never encodes: with 20 nodes the encoding alone
// costs more than asking systemd directly.

// sigListUnits is the reply signature of Controller.ListUnits.
const sigListUnits = "a{sa(ssssssouso)}"

// unitList is one node's cache entry.
type unitList struct {
	mu    sync.Mutex
	gen   uint64 // bumped by every unit signal and connection change
	valid bool   // elems were listed at gen
	elems []byte // the array's elements, encoded from an 8-aligned offset
}

// invalidate drops the entry: something changed on the node.
func (l *unitList) invalidate() {
	l.mu.Lock()
	l.gen++
	l.valid, l.elems = false, nil
	l.mu.Unlock()
}

// get returns the cached elements, or the generation a fetch must keep.
func (l *unitList) get() (elems []byte, gen uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.elems, l.gen, l.valid
}

// put keeps elems if nothing changed since gen.
func (l *unitList) put(gen uint64, elems []byte) {
	l.mu.Lock()
	if l.gen == gen {
		l.valid, l.elems = true, elems
	}
	l.mu.Unlock()
}

// cacheSink returns the hidden subscription that keeps "*" subscribed on
// every node: its monitor has no recipients and no object.
func (c *Controller) cacheSink() *subscription {
	sink := &monitor{c: c, subs: map[uint32]*subscription{}}
	return &subscription{mon: sink, node: wildcard, units: []string{wildcard}, names: map[string]bool{wildcard: true}}
}

// errBadUnit is why a node's answer is left out of ListUnits.
var errBadUnit = errors.New("agent listed a unit with an invalid string or path")

// encodeUnits encodes units as elements of an a(ssssssouso), from an
// 8-aligned offset, checking every value as the message bus would.
func encodeUnits(units []bluechi.UnitInfo) ([]byte, error) {
	var w wire.Writer
	for _, u := range units {
		for _, s := range [...]string{u.Name, u.Description, u.LoadState, u.ActiveState, u.SubState, u.Followed, u.JobType} {
			if !wire.ValidString(s) {
				return nil, errBadUnit
			}
		}
		if !wire.ValidObjectPath(string(u.Path)) || !wire.ValidObjectPath(string(u.JobPath)) {
			return nil, errBadUnit
		}
		w.Align(8)
		w.String(u.Name)
		w.String(u.Description)
		w.String(u.LoadState)
		w.String(u.ActiveState)
		w.String(u.SubState)
		w.String(u.Followed)
		w.ObjectPath(string(u.Path))
		w.Uint32(u.JobID)
		w.String(u.JobType)
		w.ObjectPath(string(u.JobPath))
	}
	return w.Buf, nil
}

// listUnits serves Controller.ListUnits: every online node's units, from
// the cache or asked in parallel (fanOut's rules: a node that fails or
// does not answer within FanOutTimeout is left out and logged).
func (c *Controller) listUnits(ctx context.Context, _ []any) ([]any, error) {
	type target struct {
		n     *node
		agent *bluechi.InternalAgentClient
		elems []byte
		ok    bool
	}
	c.mu.Lock()
	var targets []target
	for _, n := range c.nodes {
		if n.agent != nil {
			targets = append(targets, target{n: n, agent: n.agent})
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for i := range targets {
		t := &targets[i]
		elems, gen, ok := t.n.units.get()
		if ok {
			t.elems, t.ok = elems, true
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, FanOutTimeout)
			defer cancel()
			units, err := t.agent.ListUnits(cctx)
			if err == nil {
				t.elems, err = encodeUnits(units)
			}
			if err != nil {
				c.logger().Warn("node left out of fan-out answer", "node", t.n.name, "error", err)
				return
			}
			t.ok = true
			t.n.units.put(gen, t.elems)
		})
	}
	wg.Wait()
	size := 8
	for _, t := range targets {
		size += 16 + len(t.n.name) + len(t.elems)
	}
	w := wire.Writer{Buf: make([]byte, 0, size)}
	dict := w.BeginArray(8)
	for _, t := range targets {
		if !t.ok {
			continue
		}
		w.Align(8)
		w.String(t.n.name)
		arr := w.BeginArray(8)
		w.Buf = append(w.Buf, t.elems...)
		w.EndArray(arr)
	}
	w.EndArray(dict)
	return []any{dbusrt.RawReply{Signature: sigListUnits, Body: w.Buf}}, nil
}
