// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseBool(t *testing.T) {
	tests := map[string]bool{
		"true": true, "TRUE": true, "True": true, "t": true, "T": true,
		"yes": true, "YeS": true, "y": true, "Y": true, "on": true, "ON": true,
		"": false, "1": false, "0": false, "false": false, "no": false, "off": false,
		"tru": false, "yes ": false, "enabled": false, "yeſ": false, // U+017F folds to s in Unicode only
	}
	for in, want := range tests {
		if got := ParseBool(in); got != want {
			t.Errorf("ParseBool(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseLong(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{"0", 0, nil},
		{"2000", 2000, nil},
		{"-1", -1, nil},
		{"+5", 5, nil},
		{" 7", 7, nil}, // strtol skips leading whitespace
		{"9223372036854775807", 9223372036854775807, nil},
		{"-9223372036854775808", -9223372036854775808, nil},
		{"9223372036854775808", 0, ErrOutOfRange},
		{"", 0, ErrNotANumber},
		{"842O", 0, ErrNotANumber},
		{"7 ", 0, ErrNotANumber},
		{"0x10", 0, ErrNotANumber},
		{"1_000", 0, ErrNotANumber},
		{"1e3", 0, ErrNotANumber},
		{"-", 0, ErrNotANumber},
	}
	for _, tt := range tests {
		got, err := ParseLong(tt.in)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) || got != tt.want {
			t.Errorf("ParseLong(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
		err  string
	}{
		{"0", 0, ""},
		{"842", 842, ""},
		{"65535", 65535, ""},
		{"65536", 0, "out of range (0..65535)"},
		{"65538", 0, "out of range (0..65535)"},
		{"-1", 0, "out of range (0..65535)"},
		{"542O", 0, "not a number"},
		{"", 0, "not a number"},
	}
	for _, tt := range tests {
		got, err := ParsePort(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.err {
			t.Errorf("ParsePort(%q) = %d, %q; want %d, %q", tt.in, got, gotErr, tt.want, tt.err)
		}
	}
}

func TestLogLevelsAndTargets(t *testing.T) {
	for _, l := range []string{"DEBUG", "INFO", "WARN", "ERROR"} {
		if !IsValidLogLevel(l) {
			t.Errorf("IsValidLogLevel(%q) = false", l)
		}
	}
	for _, l := range []string{"", "debug", "Info", "WARNING", "5"} {
		if IsValidLogLevel(l) {
			t.Errorf("IsValidLogLevel(%q) = true", l)
		}
	}
	targets := map[string]string{
		"journald": "journald", "JOURNALD": "journald", "stderr": "stderr",
		"StdErr": "stderr", "stderr-full": "stderr-full", "STDERR-FULL": "stderr-full",
	}
	for in, want := range targets {
		if got, ok := ParseLogTarget(in); !ok || got != want {
			t.Errorf("ParseLogTarget(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "syslog", "stderr_full", "1"} {
		if _, ok := ParseLogTarget(in); ok {
			t.Errorf("ParseLogTarget(%q) accepted", in)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a,b,c", []string{"a", "b", "c"}},
		{",a,,b,", []string{"a", "b"}},
		{"a, b ,\tc", []string{"a", "b", "c"}},
		{"a,b,a", []string{"a", "b"}},
		{" , ", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, SplitList(tt.in)); diff != "" {
			t.Errorf("SplitList(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestValueErrorFormat(t *testing.T) {
	tests := []struct {
		err  *ValueError
		want string
	}{
		{&ValueError{Key: "ControllerPort", Value: "842O", Source: Source{File: "/etc/bluechi/agent.conf", Line: 3}, Err: ErrNotANumber},
			`/etc/bluechi/agent.conf:3: invalid ControllerPort "842O": not a number`},
		{&ValueError{Key: "ControllerPort", Value: "x", Source: Source{Origin: OriginCommandLine}, Err: ErrNotANumber},
			`command line: invalid ControllerPort "x": not a number`},
		{&ValueError{Key: "K", Value: "x", Err: ErrOutOfRange}, `invalid K "x": out of range`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
