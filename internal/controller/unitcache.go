// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
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
const sigListUnits = daemonapi.ControllerListUnitsOutSig

// unitList is one node's cache entry.
type unitList struct {
	mu    sync.Mutex // guards gen, valid and elems
	gen   uint64     // bumped by every unit signal and connection change
	valid bool       // elems were listed at gen
	elems []byte     // the array's elements, encoded from an 8-aligned offset
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
	// The sinks share their (never changed) unit list and set.
	units, names := []string{wildcard}, map[string]bool{wildcard: true}
	for i, n := range c.nodes {
		n.sink = &subscription{id: uint32(i + 1), mon: sink, node: n.name, units: units, names: names}
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

// startListAgentUnits sends an agent a ListUnits call and returns the
// function that waits for the answer: the elements of the
// a(ssssssouso), checked as the message bus checks and encoded from an
// 8-aligned offset, copied out of the reply as it is read (never decoded
// into Go values).
func startListAgentUnits(conn *wireconn.Conn) (func(context.Context) ([]byte, error), error) {
	type result struct {
		elems []byte
		err   error
	}
	ch := make(chan result, 1)
	// The call is dropped when its waiter gives up (cancel).
	ctx, cancel := context.WithCancel(context.Background())
	conn.Go(ctx, &wireconn.Request{Destination: agentBusName, Path: string(daemonapi.InternalAgentPath),
		Interface: daemonapi.InternalAgentInterface, Member: daemonapi.InternalAgentMethodListUnits}, func(m *wire.Message, err error) {
		if err == nil {
			var elems []byte
			elems, err = listUnitsElems(m)
			ch <- result{elems, err}
			return
		}
		ch <- result{nil, err}
	})
	return func(wctx context.Context) ([]byte, error) {
		defer cancel()
		select {
		case r := <-ch:
			return r.elems, r.err
		case <-wctx.Done():
			return nil, wctx.Err()
		}
	}, nil
}

// listUnitsElems checks a ListUnits reply and returns a little-endian copy
// of its array's elements.
func listUnitsElems(m *wire.Message) ([]byte, error) {
	const sig = daemonapi.InternalAgentListUnitsOutSig
	if m.Signature != sig {
		return nil, fmt.Errorf("ListUnits reply of signature %q, want %q", m.Signature, sig)
	}
	r := wire.NewReader(m.Body, m.BigEndian)
	var w wire.Writer
	if err := wire.Copy(&w, &r, sig); err != nil {
		return nil, fmt.Errorf("ListUnits reply: %w", err)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("ListUnits reply: %w", err)
	}
	return w.Buf[8:], nil // after the length and the padding to the first element
}

// startNodeUnits starts getting n's unit list (the array's elements, see
// unitList): from the cache, or by asking n's agent on conn, whose
// answer is kept if nothing changed meanwhile. The request is on the wire
// when it returns; the function it returns waits for the answer, at most
// timeout. Ordered handlers release their turn in between, so that a node
// slow to answer holds up no other call.
func (c *Controller) startNodeUnits(n *node, conn *wireconn.Conn, timeout time.Duration) (func(context.Context) ([]byte, error), error) {
	if elems, _, ok := n.units.get(); ok {
		return func(context.Context) ([]byte, error) { return elems, nil }, nil
	}
	// The generation is read in the same critical section that subscribes:
	// every invalidation by a signal happens under c.emu, so a signal
	// handled after this point is sure to move past gen (read later, it
	// could take in a signal that also dropped the sink again, and a list
	// nobody watches would be kept).
	c.emu.Lock()
	c.watchUnitsLocked(n)
	_, gen, _ := n.units.get()
	c.emu.Unlock()
	wait, err := startListAgentUnits(conn)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		elems, err := wait(ctx)
		if err != nil {
			return nil, err
		}
		n.units.put(gen, elems)
		return elems, nil
	}, nil
}

// listUnits serves Controller.ListUnits: every online node's units, from
// the cache or asked in parallel (fanOut's rules: a node that fails or
// does not answer within FanOutTimeout is left out and logged).
func (c *Controller) listUnits(ctx context.Context, _ []any) ([]any, error) {
	type target struct {
		n     *node
		conn  *wireconn.Conn
		elems []byte
		ok    bool
	}
	c.mu.Lock()
	var targets []target
	for _, n := range c.nodes {
		if n.agent != nil && n.peer != nil {
			targets = append(targets, target{n: n, conn: n.peer.conn})
		}
	}
	c.mu.Unlock()
	leftOut := func(t *target, err error) {
		c.logger().Warn("node left out of fan-out answer", "node", t.n.name, "error", err)
	}
	waits := make([]func(context.Context) ([]byte, error), len(targets))
	for i := range targets {
		t := &targets[i]
		if elems, _, ok := t.n.units.get(); ok {
			t.elems, t.ok = elems, true
			continue
		}
		var err error
		if waits[i], err = c.startNodeUnits(t.n, t.conn, FanOutTimeout); err != nil {
			leftOut(t, err)
		}
	}
	dbusrt.Release(ctx) // every request is on the wire
	var wg sync.WaitGroup
	for i := range targets {
		t, wait := &targets[i], waits[i]
		if wait == nil {
			continue
		}
		wg.Go(func() {
			elems, err := wait(ctx)
			if err != nil {
				leftOut(t, err)
				return
			}
			t.elems, t.ok = elems, true
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

// nodeListUnits serves Node.ListUnits of n from the same cache.
func (c *Controller) nodeListUnits(n *node) dbusrt.MethodFunc {
	return func(ctx context.Context, _ []any) ([]any, error) {
		if _, err := n.agentFor(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		var conn *wireconn.Conn
		if n.peer != nil {
			conn = n.peer.conn
		}
		c.mu.Unlock()
		if conn == nil {
			return nil, dbusrt.NewError(bluechi.ErrorNameOffline, "Node is offline")
		}
		wait, err := c.startNodeUnits(n, conn, AgentCallTimeout)
		dbusrt.Release(ctx) // the request is on the wire
		var elems []byte
		if err == nil {
			elems, err = wait(ctx)
		}
		if err != nil {
			var re *wireconn.Error
			if errors.As(err, &re) {
				return nil, dbusrt.NewError(re.Name, "%s", re.Message)
			}
			return nil, failed("list units of %s: %v", n.name, err)
		}
		var w wire.Writer
		arr := w.BeginArray(8)
		w.Buf = append(w.Buf, elems...)
		w.EndArray(arr)
		return []any{dbusrt.RawReply{Signature: systemd.SigListUnits, Body: w.Buf}}, nil
	}
}
