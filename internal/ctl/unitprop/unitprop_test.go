// SPDX-License-Identifier: Apache-2.0

package unitprop

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string
		want any
	}{
		{"CPUWeight=200", "CPUWeight", uint64(200)},
		{"CPUWeight=idle", "CPUWeight", uint64(0)},
		{"CPUWeight=", "CPUWeight", uint64(math.MaxUint64)},
		{"IOWeight=10000", "IOWeight", uint64(10000)},
		{"MemoryMax=512M", "MemoryMax", uint64(512 << 20)},
		{"MemoryMax=1.5G", "MemoryMax", uint64(3 << 29)},
		{"MemoryHigh=4096", "MemoryHigh", uint64(4096)},
		{"MemoryHigh=10K", "MemoryHigh", uint64(10240)},
		{"MemoryMax=infinity", "MemoryMax", uint64(math.MaxUint64)},
		{"MemoryMax=50%", "MemoryMaxScale", uint32(math.MaxUint32 / 2)},
		{"MemoryLow=100%", "MemoryLowScale", uint32(math.MaxUint32)},
		{"TasksMax=100", "TasksMax", uint64(100)},
		{"TasksMax=infinity", "TasksMax", uint64(math.MaxUint64)},
		{"TasksMax=10%", "TasksMaxScale", uint32(uint64(1000) * math.MaxUint32 / 10000)},
		{"CPUQuota=20%", "CPUQuotaPerSecUSec", uint64(200000)},
		{"CPUQuota=150%", "CPUQuotaPerSecUSec", uint64(1500000)},
		{"CPUQuota=12.5%", "CPUQuotaPerSecUSec", uint64(125000)},
		{"CPUQuota=", "CPUQuotaPerSecUSec", uint64(math.MaxUint64)},
		{"CPUQuotaPeriodSec=10ms", "CPUQuotaPeriodUSec", uint64(10000)},
		{"CPUQuotaPeriodSec=1s 500ms", "CPUQuotaPeriodUSec", uint64(1500000)},
		{"AllowedCPUs=0-3,9", "AllowedCPUs", []byte{0x0f, 0x02}},
		{"AllowedCPUs=1 2", "AllowedCPUs", []byte{0x06}},
		{"AllowedMemoryNodes=", "AllowedMemoryNodes", []byte{}},
		{"CPUAccounting=yes", "CPUAccounting", true},
		{"MemoryAccounting=off", "MemoryAccounting", false},
		{"Description=a b=c", "Description", "a b=c"},
		{"DevicePolicy=closed", "DevicePolicy", "closed"},
	} {
		props, err := Parse([]string{c.in})
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if len(props) != 1 || props[0].Name != c.name || !reflect.DeepEqual(props[0].Value.Value(), c.want) {
			t.Errorf("%s: got %s=%#v, want %s=%#v", c.in, props[0].Name, props[0].Value.Value(), c.name, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"CPUWeight":                   "expected PROPERTY=VALUE",
		"=5":                          "expected PROPERTY=VALUE",
		"Bogus=1":                     "unknown or unsupported property 'Bogus'",
		"cpuweight=1":                 "unknown or unsupported property",
		"CPUWeight=0":                 "between 1 and 10000",
		"CPUWeight=10001":             "between 1 and 10000",
		"IOWeight=idle":               "between 1 and 10000",
		"MemoryMax=12Q":               "expected a size",
		"MemoryMax=-1":                "expected a size",
		"MemoryMax=1..5G":             "expected a size",
		"MemoryMax=101%":              "above 100%",
		"MemoryMax=99999999E":         "too large",
		"TasksMax=0":                  "positive integer",
		"TasksMax=x":                  "positive integer",
		"CPUQuota=20":                 "percentage",
		"CPUQuota=0%":                 "positive",
		"CPUQuota=1.234%":             "two decimals",
		"CPUQuotaPeriodSec=5 parsecs": "unknown time unit",
		"AllowedCPUs=3-1":             "reversed",
		"AllowedCPUs=a":               "CPU numbers",
		"AllowedCPUs=99999":           "above",
		"CPUAccounting=maybe":         "boolean",
		"DevicePolicy=open":           "one of auto, closed, strict",
		"Description=caf\xe9":         "not valid UTF-8",
		"Description=a\x00b":          "NUL",
	} {
		_, err := Parse([]string{"CPUWeight=5", in})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", in, err)
		}
	}
	if _, err := Parse([]string{"MemoryMax=12Q"}); err.Error() != "invalid value '12Q' for MemoryMax: expected a size such as 512M, 1.5G or 4096" {
		t.Errorf("message: %v", err)
	}
}

func TestNames(t *testing.T) {
	n := Names()
	if len(n) < 20 || n[0] > n[1] {
		t.Fatalf("%v", n)
	}
}
