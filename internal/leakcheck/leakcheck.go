// SPDX-License-Identifier: Apache-2.0

// Package leakcheck helps tests prove that repeated work keeps no memory:
// it compares the live heap (after full collections) before and after the
// work, which is exact where a process's RSS moves by hundreds of kB with
// page residency.
package leakcheck

import (
	"runtime"
	"testing"
)

// LiveHeap returns the bytes of live heap objects after a full collection.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC() // finalizers and sweeping of the first one
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Heap runs warm (so that maps and pools reach their working size), then
// work, and fails tb if the live heap grew by more than bound bytes over
// work, naming it what.
func Heap(tb testing.TB, what string, bound uint64, warm, work func()) {
	tb.Helper()
	warm()
	before := LiveHeap()
	work()
	after := LiveHeap()
	tb.Logf("live heap %d -> %d bytes over %s", before, after, what)
	if after > before+bound {
		tb.Fatalf("live heap grew by %d bytes over %s, want <= %d", after-before, what, bound)
	}
}
