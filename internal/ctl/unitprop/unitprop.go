// SPDX-License-Identifier: Apache-2.0

// Package unitprop turns `systemctl set-property`-style assignments
// (KEY=VALUE) into typed unit properties for Node.SetUnitProperties, with
// systemd's value syntax for the common resource-control properties.
// Nothing is sent for input it cannot parse: every error names the
// assignment and the problem.
package unitprop

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
)

// Infinity is systemd's "no limit" value for 64-bit limits and weights.
const Infinity = math.MaxUint64

type parser func(name, value string) (bluechi.UnitProperty, error)

var parsers = map[string]parser{
	"CPUWeight":                     weight(true),
	"StartupCPUWeight":              weight(true),
	"IOWeight":                      weight(false),
	"StartupIOWeight":               weight(false),
	"MemoryMin":                     memory,
	"MemoryLow":                     memory,
	"MemoryHigh":                    memory,
	"MemoryMax":                     memory,
	"MemorySwapMax":                 memory,
	"MemoryZSwapMax":                memory,
	"TasksMax":                      tasks,
	"CPUQuota":                      cpuQuota,
	"CPUQuotaPeriodSec":             cpuQuotaPeriod,
	"AllowedCPUs":                   cpuSet,
	"StartupAllowedCPUs":            cpuSet,
	"AllowedMemoryNodes":            cpuSet,
	"StartupAllowedMemoryNodes":     cpuSet,
	"CPUAccounting":                 boolean,
	"MemoryAccounting":              boolean,
	"IOAccounting":                  boolean,
	"TasksAccounting":               boolean,
	"IPAccounting":                  boolean,
	"MemoryOOMGroup":                boolean,
	"Description":                   str(nil),
	"DevicePolicy":                  str([]string{"auto", "closed", "strict"}),
	"ManagedOOMSwap":                str([]string{"auto", "kill"}),
	"ManagedOOMMemoryPressure":      str([]string{"auto", "kill"}),
	"ManagedOOMPreference":          str([]string{"none", "avoid", "omit"}),
	"MemoryPressureWatch":           str([]string{"auto", "off", "on", "skip"}),
	"ManagedOOMMemoryPressureLimit": percentLimit,
}

// Names lists the supported property names, sorted.
func Names() []string {
	out := make([]string, 0, len(parsers))
	for n := range parsers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Parse converts assignments such as "MemoryMax=512M" into properties, in
// order. The first bad assignment ends parsing with an error.
func Parse(assignments []string) ([]bluechi.UnitProperty, error) {
	out := make([]bluechi.UnitProperty, 0, len(assignments))
	for _, a := range assignments {
		name, value, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("invalid assignment '%s': expected PROPERTY=VALUE", a)
		}
		p := parsers[name]
		if p == nil {
			return nil, fmt.Errorf("unknown or unsupported property '%s'", name)
		}
		prop, err := p(name, value)
		if err != nil {
			return nil, fmt.Errorf("invalid value '%s' for %s: %w", value, name, err)
		}
		out = append(out, prop)
	}
	return out, nil
}

func prop(name string, v any) bluechi.UnitProperty {
	return bluechi.UnitProperty{Name: name, Value: dbus.MakeVariant(v)}
}

// weight parses CPUWeight-style values: 1..10000, "" (reset) and, for CPU
// weights, "idle" (0).
func weight(idle bool) parser {
	return func(name, value string) (bluechi.UnitProperty, error) {
		switch {
		case value == "":
			return prop(name, uint64(Infinity)), nil
		case idle && value == "idle":
			return prop(name, uint64(0)), nil
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil || n < 1 || n > 10000 {
			return bluechi.UnitProperty{}, fmt.Errorf("expected an integer between 1 and 10000")
		}
		return prop(name, n), nil
	}
}

// memory parses byte sizes with K/M/G/T/P/E suffixes (base 1024),
// "infinity", "" and percentages of the physical memory (sent as <Name>Scale).
func memory(name, value string) (bluechi.UnitProperty, error) {
	if value == "" || value == "infinity" {
		return prop(name, uint64(Infinity)), nil
	}
	if strings.HasSuffix(value, "%") {
		p, err := permyriad(value, false)
		if err != nil {
			return bluechi.UnitProperty{}, err
		}
		return prop(name+"Scale", scaleUint32(p)), nil
	}
	n, err := ParseSize(value)
	if err != nil {
		return bluechi.UnitProperty{}, err
	}
	return prop(name, n), nil
}

// tasks parses TasksMax: a count, "infinity", "" or a percentage of the
// system's limit (sent as TasksMaxScale).
func tasks(name, value string) (bluechi.UnitProperty, error) {
	if value == "" || value == "infinity" {
		return prop(name, uint64(Infinity)), nil
	}
	if strings.HasSuffix(value, "%") {
		p, err := permyriad(value, false)
		if err != nil {
			return bluechi.UnitProperty{}, err
		}
		return prop(name+"Scale", scaleUint32(p)), nil
	}
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil || n == 0 {
		return bluechi.UnitProperty{}, fmt.Errorf("expected a positive integer, a percentage or 'infinity'")
	}
	return prop(name, n), nil
}

// cpuQuota parses "N%" (may exceed 100%) into CPUQuotaPerSecUSec; "" removes the quota.
func cpuQuota(_, value string) (bluechi.UnitProperty, error) {
	if value == "" {
		return prop("CPUQuotaPerSecUSec", uint64(Infinity)), nil
	}
	if !strings.HasSuffix(value, "%") {
		return bluechi.UnitProperty{}, fmt.Errorf("expected a percentage such as 20%%")
	}
	p, err := permyriad(value, true)
	if err != nil {
		return bluechi.UnitProperty{}, err
	}
	if p == 0 {
		return bluechi.UnitProperty{}, fmt.Errorf("quota must be positive")
	}
	return prop("CPUQuotaPerSecUSec", p*1000000/10000), nil
}

// cpuQuotaPeriod parses a time span into CPUQuotaPeriodUSec; "" resets it.
func cpuQuotaPeriod(_, value string) (bluechi.UnitProperty, error) {
	if value == "" {
		return prop("CPUQuotaPeriodUSec", uint64(Infinity)), nil
	}
	us, err := ParseTimespan(value)
	if err != nil {
		return bluechi.UnitProperty{}, err
	}
	return prop("CPUQuotaPeriodUSec", us), nil
}

// percentLimit parses a percentage into a uint32 scale (0% .. 100%).
func percentLimit(name, value string) (bluechi.UnitProperty, error) {
	if value == "" {
		return prop(name, uint32(0)), nil
	}
	p, err := permyriad(value, false)
	if err != nil {
		return bluechi.UnitProperty{}, err
	}
	return prop(name, scaleUint32(p)), nil
}

func cpuSet(name, value string) (bluechi.UnitProperty, error) {
	mask, err := ParseCPUSet(value)
	if err != nil {
		return bluechi.UnitProperty{}, err
	}
	return prop(name, mask), nil
}

func boolean(name, value string) (bluechi.UnitProperty, error) {
	switch strings.ToLower(value) {
	case "1", "yes", "y", "true", "t", "on":
		return prop(name, true), nil
	case "0", "no", "n", "false", "f", "off":
		return prop(name, false), nil
	}
	return bluechi.UnitProperty{}, fmt.Errorf("expected a boolean (yes/no, true/false, on/off, 1/0)")
}

func str(allowed []string) parser {
	return func(name, value string) (bluechi.UnitProperty, error) {
		// A D-Bus string is UTF-8 without NUL (found by FuzzParse).
		if !utf8.ValidString(value) {
			return bluechi.UnitProperty{}, fmt.Errorf("not valid UTF-8")
		}
		if strings.IndexByte(value, 0) >= 0 {
			return bluechi.UnitProperty{}, fmt.Errorf("contains a NUL byte")
		}
		if allowed != nil {
			ok := false
			for _, a := range allowed {
				ok = ok || a == value
			}
			if !ok {
				return bluechi.UnitProperty{}, fmt.Errorf("expected one of %s", strings.Join(allowed, ", "))
			}
		}
		return prop(name, value), nil
	}
}

// scaleUint32 maps a permyriad (0..10000) onto 0..UINT32_MAX as systemd does.
func scaleUint32(p uint64) uint32 {
	return uint32(p * math.MaxUint32 / 10000)
}

// permyriad parses "N%", "N.N%" or "N.NN%" into hundredths of a percent.
// Unless unbounded, values above 100% are refused.
func permyriad(value string, unbounded bool) (uint64, error) {
	num, ok := strings.CutSuffix(value, "%")
	if !ok {
		return 0, fmt.Errorf("expected a percentage")
	}
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || (hasFrac && (frac == "" || len(frac) > 2)) || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("expected a percentage with at most two decimals")
	}
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("percentage out of range")
	}
	f := uint64(0)
	if hasFrac {
		frac += strings.Repeat("0", 2-len(frac))
		f, _ = strconv.ParseUint(frac, 10, 64)
	}
	p := w*100 + f
	if !unbounded && p > 10000 {
		return 0, fmt.Errorf("percentage above 100%%")
	}
	return p, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var sizeSuffixes = map[string]uint{"": 0, "B": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}

// ParseSize parses a byte size such as "512M", "1.5G" or "4096" (base 1024
// suffixes K, M, G, T, P, E; B or none for bytes).
func ParseSize(s string) (uint64, error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, suffix := s[:i], strings.TrimSpace(s[i:])
	shift, ok := sizeSuffixes[suffix]
	if num == "" || !ok || strings.Count(num, ".") > 1 || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("expected a size such as 512M, 1.5G or 4096")
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("expected a size such as 512M, 1.5G or 4096")
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), shift)))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsUint64() || n.Uint64() == Infinity {
		return 0, fmt.Errorf("size too large")
	}
	return n.Uint64(), nil
}

var timeUnits = []struct {
	name string
	us   uint64
}{
	{"usec", 1}, {"us", 1}, {"µs", 1},
	{"msec", 1000}, {"ms", 1000},
	{"seconds", 1000000}, {"second", 1000000}, {"sec", 1000000}, {"s", 1000000},
	{"minutes", 60000000}, {"minute", 60000000}, {"min", 60000000}, {"m", 60000000},
	{"hours", 3600000000}, {"hour", 3600000000}, {"hr", 3600000000}, {"h", 3600000000},
}

// ParseTimespan parses a systemd time span such as "100ms", "1s 500ms",
// "5 min" or "2" (seconds) into microseconds.
func ParseTimespan(s string) (uint64, error) {
	var total uint64
	i, parts := 0, 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	for skip(); i < len(s); skip() {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return 0, fmt.Errorf("expected a time span such as 100ms or 1s")
		}
		n, err := strconv.ParseUint(s[start:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("time span out of range")
		}
		skip()
		start = i
		for i < len(s) && !(s[i] >= '0' && s[i] <= '9') && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		unit, mult := s[start:i], uint64(0)
		if unit == "" {
			mult = 1000000
		}
		for _, u := range timeUnits {
			if u.name == unit {
				mult = u.us
				break
			}
		}
		if mult == 0 {
			return 0, fmt.Errorf("unknown time unit '%s'", unit)
		}
		if n > (math.MaxUint64-1-total)/mult {
			return 0, fmt.Errorf("time span out of range")
		}
		total += n * mult
		parts++
	}
	if parts == 0 {
		return 0, fmt.Errorf("empty time span")
	}
	return total, nil
}

// MaxCPU bounds the CPU and memory node numbers ParseCPUSet accepts.
const MaxCPU = 8191

// ParseCPUSet parses a list such as "0-3,6 8" into systemd's bitmask
// (byte i, bit j stands for CPU 8i+j). The empty string gives an empty mask.
func ParseCPUSet(s string) ([]byte, error) {
	mask := []byte{}
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		lo, hi, isRange := strings.Cut(item, "-")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil || !digits(lo) || (isRange && !digits(hi)) {
			return nil, fmt.Errorf("expected CPU numbers or ranges such as 0-3,6")
		}
		if a > b {
			return nil, fmt.Errorf("range %s is reversed", item)
		}
		if b > MaxCPU {
			return nil, fmt.Errorf("CPU %d above %d", b, MaxCPU)
		}
		for c := a; c <= b; c++ {
			for uint64(len(mask)) <= c/8 {
				mask = append(mask, 0)
			}
			mask[c/8] |= 1 << (c % 8)
		}
	}
	return mask, nil
}
