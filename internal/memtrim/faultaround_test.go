// SPDX-License-Identifier: Apache-2.0

//go:build linux

package memtrim

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
	"unsafe"
)

// residentPages counts the pages of ranges mapped in this process, from
// /proc/self/pagemap (bit 63 of each page's entry).
func residentPages(t *testing.T, ranges [][2]uintptr) int {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := uintptr(os.Getpagesize())
	n := 0
	for _, r := range ranges {
		buf := make([]byte, (r[1]-r[0])/page*8)
		if _, err := f.ReadAt(buf, int64(r[0]/page*8)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(buf); i += 8 {
			if binary.LittleEndian.Uint64(buf[i:])&(1<<63) != 0 {
				n++
			}
		}
	}
	return n
}

// touched drops the executable's pages, reads one byte of every 16th page
// and returns how many pages became resident beyond those the test itself
// brings back (measured by the same steps without the reads). Of five
// tries it keeps the smallest: the runtime and the test framework touch
// pages of their own in between.
func touched(t *testing.T, ranges [][2]uintptr) (pages, extra int) {
	t.Helper()
	page := uintptr(os.Getpagesize())
	// Any address in the executable, as a pointer: a string constant is
	// in its read-only data.
	anchor := unsafe.Pointer(unsafe.StringData(anchorText))
	measure := func(read bool) int {
		if _, err := ExecutableMappings(); err != nil {
			t.Fatal(err)
		}
		sum := byte(0)
		if read {
			pages = 0
			for _, r := range ranges {
				for a := r[0]; a < r[1]; a += 16 * page {
					sum += *(*byte)(unsafe.Add(anchor, a-uintptr(anchor)))
					pages++
				}
			}
		}
		sink = sum
		return residentPages(t, ranges)
	}
	extra = math.MaxInt
	for range 5 {
		base := measure(false)
		extra = min(extra, measure(true)-base)
	}
	return pages, extra
}

var sink byte

const anchorText = "memtrim test"

func TestNoFaultAround(t *testing.T) {
	ranges, err := executableRanges()
	if err != nil || len(ranges) == 0 {
		t.Fatalf("executable mappings: %v %v", ranges, err)
	}
	// With the kernel's fault-around, each read maps up to 16 pages.
	pages, before := touched(t, ranges)
	t.Logf("before: %d reads made %d pages resident", pages, before)
	if err := NoFaultAround(); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("this kernel or its sandbox refuses it: %v", err)
		}
		t.Fatal(err)
	}
	pages, after := touched(t, ranges)
	t.Logf("after NoFaultAround: %d reads made %d pages resident", pages, after)
	if after > pages+pages/2 || after*3 > before {
		t.Errorf("fault-around still on: %d reads made %d pages resident (before: %d)", pages, after, before)
	}
}
