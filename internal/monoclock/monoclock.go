// SPDX-License-Identifier: Apache-2.0

// Package monoclock reads CLOCK_MONOTONIC, the clock BlueChi's
// *TimestampMonotonic properties are in.
package monoclock

import (
	"time"

	"golang.org/x/sys/unix"
)

// Now returns the time since boot on CLOCK_MONOTONIC.
func Now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Micros returns CLOCK_MONOTONIC in microseconds.
func Micros() uint64 { return uint64(Now() / time.Microsecond) }

// RealtimeMicros returns CLOCK_REALTIME in microseconds since the epoch.
func RealtimeMicros() uint64 { return uint64(time.Now().UnixMicro()) }
