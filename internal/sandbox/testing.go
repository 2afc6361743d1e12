// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// StartTimeout bounds StartT and StartAllT (start plus readiness).
var StartTimeout = 60 * time.Second

// StartT starts a node, waits until it is ready and stops it when the test
// ends (a failing Stop fails the test). Any error fails the test at once.
func StartT(tb testing.TB, opts Options) *Node {
	tb.Helper()
	return StartAllT(tb, opts)[0]
}

// StartAllT starts several nodes in parallel, waits until all are ready and
// stops them when the test ends.
func StartAllT(tb testing.TB, opts ...Options) []*Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	nodes := make([]*Node, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := Start(ctx, o)
			if err != nil {
				errs[i] = err
				return
			}
			nodes[i] = n
			errs[i] = n.WaitReady(ctx)
		}()
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			tb.Cleanup(func() {
				if err := n.Stop(); err != nil {
					tb.Errorf("%v", err)
				}
			})
		}
	}
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("sandbox: node %d (%s): %v", i, opts[i].Name, err)
		}
	}
	return nodes
}

// Names builds Options for nodes named prefix1..prefixN sharing base and units.
func Names(base, prefix string, count int, units map[string]string) []Options {
	opts := make([]Options, count)
	for i := range opts {
		opts[i] = Options{BaseDir: base, Name: fmt.Sprintf("%s%d", prefix, i+1), Units: units}
	}
	return opts
}
