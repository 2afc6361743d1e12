// SPDX-License-Identifier: Apache-2.0

package unitprop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse parses arbitrary assignments (separated by NUL bytes) and
// their values with each value parser. It must never panic; what Parse
// accepts is one property per assignment, named after it (or its Scale,
// USec form), of a D-Bus type systemd takes, with strings D-Bus can carry.
// A CPU set written back as a list parses to the same mask; plain digits
// are the same size in bytes as strconv reads them.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"CPUWeight=50", "CPUWeight=idle\x00IOWeight=", "MemoryMax=1.5G\x00MemoryHigh=80%\x00MemoryLow=infinity",
		"TasksMax=33.33%", "CPUQuota=250%", "CPUQuotaPeriodSec=1s 500ms", "AllowedCPUs=0-3,6 8", "AllowedMemoryNodes=",
		"CPUAccounting=yes\x00MemoryOOMGroup=0", "Description=a unit\x00DevicePolicy=closed", "ManagedOOMMemoryPressureLimit=50.5%",
		"MemoryMax=18446744073709551615", "CPUQuotaPeriodSec=5 min", "Nope=1", "=x", "CPUWeight", "TasksMax=0", "MemorySwapMax=16E",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		assignments := strings.Split(line, "\x00")
		props, err := Parse(assignments)
		if err == nil {
			if len(props) != len(assignments) {
				t.Fatalf("%d properties for %d assignments", len(props), len(assignments))
			}
			for i, p := range props {
				name, _, _ := strings.Cut(assignments[i], "=")
				if p.Name != name && p.Name != name+"Scale" && !(name == "CPUQuota" && p.Name == "CPUQuotaPerSecUSec") &&
					!(name == "CPUQuotaPeriodSec" && p.Name == "CPUQuotaPeriodUSec") {
					t.Fatalf("%q became property %q", assignments[i], p.Name)
				}
				switch sig := p.Value.Signature().String(); sig {
				case "t", "u", "b", "ay":
				case "s":
					if s := p.Value.Value().(string); !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
						t.Fatalf("%q gives a string D-Bus cannot carry: %q", assignments[i], s)
					}
				default:
					t.Fatalf("%q gives a value of type %s", assignments[i], sig)
				}
			}
		}
		for _, a := range assignments {
			_, v, _ := strings.Cut(a, "=")
			checkValue(t, v)
		}
	})
}

func checkValue(t *testing.T, v string) {
	if n, err := ParseSize(v); err == nil && digits(v) {
		if m, err := strconv.ParseUint(v, 10, 64); err != nil || m != n {
			t.Fatalf("ParseSize(%q) = %d, strconv %d, %v", v, n, m, err)
		}
	}
	if us, err := ParseTimespan(v); err == nil && us == Infinity {
		t.Fatalf("ParseTimespan(%q) is infinity", v)
	}
	mask, err := ParseCPUSet(v)
	if err != nil {
		return
	}
	if len(mask) > 0 && mask[len(mask)-1] == 0 {
		t.Fatalf("ParseCPUSet(%q) = %x ends in a zero byte", v, mask)
	}
	var cpus []string
	for i, b := range mask {
		for j := 0; j < 8; j++ {
			if b&(1<<j) != 0 {
				cpus = append(cpus, fmt.Sprint(8*i+j))
			}
		}
	}
	again, err := ParseCPUSet(strings.Join(cpus, ","))
	if err != nil || string(again) != string(mask) {
		t.Fatalf("ParseCPUSet(%q) = %x, written back %q gives %x, %v", v, mask, cpus, again, err)
	}
}
