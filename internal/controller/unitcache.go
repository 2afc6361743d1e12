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
// A node's entry is valid from a fetch until the node's next unit signal or
// connection change. To hear of changes, the fetch first subscribes the
// cache's hidden "*" subscription on that node (the node's sink): the
// agent then sends every unit signal. The first one that is not the
// virtual UnitNew("*") answering the subscription invalidates the entry
// and drops the sink again, so a node sends no more than one burst of
// signals per fetch, and none while nobody lists units. The Subscribe goes
// out before the ListUnits call on the same connection, and the agent
// writes a unit change before any later reply, so the answer is kept only
// if no change came in between.
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

// addCacheSinks prepares every node's sink: a "*" subscription of a
// monitor that has no recipients and no object.
func (c *Controller) addCacheSinks() {
	sink := &monitor{c: c, subs: map[uint32]*subscription{}}
	for i, n := range c.nodes {
		n.sink = &subscription{id: uint32(i + 1), mon: sink, node: n.name, units: []string{wildcard}, names: map[string]bool{wildcard: true}}
	}
}

// watchUnitsLocked subscribes n's sink, if it is not yet; c.emu is held.
func (c *Controller) watchUnitsLocked(n *node) {
	if !n.sinkOn {
		n.sinkOn = true
		c.addSubLocked(n.sink)
	}
}

// dropSinkLocked unsubscribes n's sink (telling the agent, if notify and
// nothing else wants "*"); c.emu is held.
func (c *Controller) dropSinkLocked(n *node, notify bool) {
	if n.sinkOn {
		n.sinkOn = false
		c.removeSubLocked(n.sink, notify)
	}
}

// unitsChangedLocked handles a unit signal from n: its entry is no longer
// valid and needs no more signals; c.emu is held.
func (c *Controller) unitsChangedLocked(n *node) {
	n.units.invalidate()
	c.dropSinkLocked(n, true)
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
		elems, _, ok := t.n.units.get()
		if ok {
			t.elems, t.ok = elems, true
			continue
		}
		// The generation is read in the same critical section that
		// subscribes: every invalidation by a signal happens under c.emu,
		// so a signal handled after this point is sure to move past gen
		// (read later, it could take in a signal that also dropped the
		// sink again, and a list nobody watches would be kept).
		c.emu.Lock()
		c.watchUnitsLocked(t.n)
		_, gen, _ := t.n.units.get()
		c.emu.Unlock()
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
