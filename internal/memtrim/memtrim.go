// SPDX-License-Identifier: Apache-2.0

// Package memtrim lowers a long-running daemon's resident memory after
// start-up. Most of a Go daemon's RSS is its own executable mapped from
// disk: start-up code, and neighbours the kernel faults in around every
// touched page. Turning the neighbours off (NoFaultAround) and dropping
// those mappings once the daemon is idle lets only the pages used from then
// on come back (they are still in the page cache, so nothing is read from
// disk again).
package memtrim

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExecutableMappings drops the resident pages of the running executable's
// file mappings (text and read-only data). It returns the bytes advised.
// A mapping holding private copies of pages is left alone: in a
// position-independent executable the read-only data after relocation
// (RELRO) is such a copy, and so is a page where a debugger or uprobe set
// a breakpoint; dropping them would bring back the file's bytes.
func ExecutableMappings() (int, error) {
	ranges, err := executableRanges()
	total := 0
	for _, r := range ranges {
		if err := madvise(r[0], r[1]-r[0]); err != nil {
			return total, err
		}
		total += int(r[1] - r[0])
	}
	return total, err
}

// executableRanges returns the start and end of the running executable's
// read-only file mappings without private (anonymous) pages, from
// /proc/self/smaps.
func executableRanges() ([][2]uintptr, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ranges [][2]uintptr
	var cur [2]uintptr // the executable's mapping being read; zero otherwise
	keep := func() {
		if cur[1] != 0 {
			ranges = append(ranges, cur)
		}
		cur = [2]uintptr{}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if field, value, ok := strings.Cut(line, ":"); ok && !strings.Contains(field, " ") {
			// A field of the current mapping ("Rss:      12 kB"). Private
			// copies show as Anonymous while in memory, as Swap once
			// swapped out. (Private_Dirty would also count file pages not
			// yet written back, as those of a freshly built executable.)
			switch field {
			case "Anonymous", "Swap":
				if strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")) != "0" {
					cur = [2]uintptr{}
				}
			}
			continue
		}
		keep()
		fields, path := mapsLine(line)
		if len(fields) < 5 || path != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		cur = [2]uintptr{uintptr(start), uintptr(end)}
	}
	keep()
	return ranges, sc.Err()
}

// mapsLine splits a mapping's line of /proc/self/maps or smaps into its
// five fields (range, permissions, offset, device, inode) and the path,
// which may contain spaces.
func mapsLine(line string) (fields []string, path string) {
	rest := line
	for len(fields) < 5 {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return append(fields, rest), ""
		}
		fields, rest = append(fields, rest[:i]), rest[i:]
	}
	return fields, strings.TrimLeft(rest, " ")
}

func madvise(addr, length uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}

// SmallHeap makes the garbage collector keep the heap close to the live data
// (GOGC=25 unless GOGC is set): a daemon's live heap is a few hundred kB,
// and Go's default lets the heap grow to 4 MB before the first collection.
func SmallHeap() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}

// OneProcessor runs the daemon's goroutines on one processor (GOMAXPROCS=1
// unless GOMAXPROCS is set). A daemon's work is relaying messages: with
// two processors, every hand-over between goroutines (socket reader,
// decoder, handler) wakes a second thread, and on a small virtual machine
// those wake-ups cost more than the work itself. On one processor the
// hand-overs are plain goroutine switches: measured on 2 vCPUs, the agent
// and controller spend about 40 % less CPU per job, a start through the
// API comes back sooner, and the idle agent is about 0.5 MB smaller (fewer
// threads and per-processor caches).
func OneProcessor() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// Disabled reports whether the environment asks to leave the daemon's
// memory to the kernel and the Go runtime (BLUECHI_MEMTRIM=off): then Start
// does nothing. It is for the rare system whose seccomp filter kills a
// process that calls userfaultfd, and for comparing figures.
func Disabled() bool { return os.Getenv("BLUECHI_MEMTRIM") == "off" }

// Start is what a daemon calls once it is up, unless Disabled: it runs the
// trimming below until ctx ends, in a goroutine of its own, so that nothing of it delays
// the daemon's first connections. Fault-around is turned off (NoFaultAround)
// only after the start-up delay: until then the kernel's neighbours save
// faults on the start-up path (each one costs tens of microseconds on a
// small virtual machine), and the first trim drops them anyway. If
// fault-around cannot be turned off, it calls unsupported with the reason
// (when it is not nil) and trims regardless.
func Start(ctx context.Context, unsupported func(error)) {
	if Disabled() {
		return
	}
	go run(ctx, unsupported)
}

// Idle trimming: every idleCheck the daemon looks at what it allocated;
// once a period with at least trimAfter bytes of allocations is followed by
// a quiet one (under quietBytes), the heap is collected and its free pages
// go back to the system. A burst of work so leaves no high-water mark in
// the resident memory, at the price of one collection per burst. After any
// collection, the next quiet check also drops the executable's pages: the
// collector's stack scans read function tables all over the file.
const (
	startupDelay = 2 * time.Second
	idleCheck    = 2 * time.Second
	quietBytes   = 64 << 10
	trimAfter    = 256 << 10
)

// run lowers the daemon's memory until ctx ends: after start-up it turns
// fault-around off where the kernel allows (NoFaultAround) and drops the
// executable's start-up pages (ExecutableMappings), then returns heap pages
// to the system whenever the daemon falls idle after work.
func run(ctx context.Context, unsupported func(error)) {
	t := time.NewTimer(startupDelay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	if err := NoFaultAround(); err != nil && unsupported != nil {
		unsupported(err)
	}
	_, _ = ExecutableMappings()
	// runtime.ReadMemStats stops the world for a few microseconds, once per
	// idle check. (runtime/metrics would not, but its package set-up costs
	// every daemon half a millisecond and 15 kB of heap at exec.)
	var ms runtime.MemStats
	read := func() (allocs, cycles uint64) {
		runtime.ReadMemStats(&ms)
		return ms.TotalAlloc, uint64(ms.NumGC)
	}
	last, dropped := read()
	sinceTrim := uint64(0)
	tick := time.NewTicker(idleCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now, cycles := read()
		delta := now - last
		last = now
		sinceTrim += delta
		if delta >= quietBytes {
			continue
		}
		if sinceTrim >= trimAfter {
			debug.FreeOSMemory()
			sinceTrim = 0
			cycles = dropped + 1 // the collection FreeOSMemory ran
		}
		if cycles != dropped {
			// A collection ran since the last drop: its stack scans
			// faulted in the executable's tables (and the kernel's
			// neighbours of every page touched). Drop them again now
			// that the daemon is quiet.
			_, _ = ExecutableMappings()
			_, dropped = read()
		}
	}
}
