// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse parses arbitrary files. Parsing must never panic; an error is
// a *ParseError naming the file and a line the input has; a parsed file
// keeps one entry per section and key, with values and names free of
// newlines and NULs and section names within their limit, and writing the
// entries back out as a plain file parses to the same entries. The parsed
// file then goes through both daemons' validation on top of their
// defaults, where every error is a *ValueError naming the file and line.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"[bluechi-controller]\nAllowedNodeNames=a,\n   b,\n   c\nControllerPort=842\n",
		"\xef\xbb\xbf[bluechi-agent]\nNodeName=n1 ; comment\nControllerHost:10.0.0.1\nHeartbeatInterval=\n",
		"[bluechi-controller]\nLogLevel=INFO\nLogLevel=INFO\n[node a]\nAllowed=yes\nRequiredSelinuxContext=x:y:z:s0\nAllowDependenciesOn=b, c\n",
		"key=before section\n[bluechi-agent]\n# comment\n; comment\nControllerPort=842O\nTCPKeepAliveCount=128\n",
		"[missing bracket\n",
		"[bluechi-agent]\nno equals sign\n",
		"[" + strings.Repeat("s", 60) + "]\nk=v\n",
		"[bluechi-agent]\nNodeName=" + strings.Repeat("x", 520) + "\n",
		"[bluechi-controller]\nUseTCP=true\nUseUDS=off\nIPReceiveErrors=T\nLogTarget=STDERR-full\nLogIsQuiet=on\n",
		"[bluechi-agent]\nKey=a\x00b\nother=\t v \t\n  continued\n\n  again\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.conf", bytes.NewReader(data))
		lines := bytes.Count(data, []byte{'\n'}) + 1
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "fuzz.conf" || pe.Line < 1 || pe.Line > lines {
				t.Fatalf("error %v (%T) for a %d-line input", err, err, lines)
			}
			return
		}
		seen := map[[2]string]bool{}
		for _, e := range file.Entries {
			k := [2]string{e.Section, e.Key}
			if seen[k] {
				t.Fatalf("section %q key %q twice", e.Section, e.Key)
			}
			seen[k] = true
			if strings.ContainsAny(e.Section+e.Key+e.Value, "\n\x00") || len(e.Section) > MaxSectionNameLength {
				t.Fatalf("bad entry %+v", e)
			}
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("entry %+v on a line the %d-line input does not have", e, lines)
			}
		}
		checkRoundTrip(t, file)
		checkLoad(t, file)
	})
}

// checkRoundTrip writes file's entries as "[section]" and "key=value"
// lines and parses them again: the entries must come back unchanged
// (lines apart). Files whose lines would be too long are skipped.
func checkRoundTrip(t *testing.T, file *File) {
	var b strings.Builder
	section := ""
	for _, e := range file.Entries {
		if e.Section != section {
			b.WriteString("[" + e.Section + "]\n")
			section = e.Section
		}
		line := e.Key + "=" + e.Value + "\n"
		if len(line) > MaxLineLength {
			return
		}
		b.WriteString(line)
	}
	again, err := Parse("again.conf", strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("written entries do not parse: %v\n%s", err, b.String())
	}
	if len(again.Entries) != len(file.Entries) {
		t.Fatalf("round trip: %d entries, then %d\n%s", len(file.Entries), len(again.Entries), b.String())
	}
	for i, e := range again.Entries {
		o := file.Entries[i]
		if e.Section != o.Section || e.Key != o.Key || e.Value != o.Value {
			t.Fatalf("round trip: %+v became %+v", o, e)
		}
	}
}

// checkLoad validates file as the only layer above both daemons'
// defaults: errors must be ValueErrors from the file.
func checkLoad(t *testing.T, file *File) {
	for _, d := range []struct {
		main     string
		defaults [][2]string
		build    func(*Settings) error
	}{
		{SectionController, ControllerDefaults(), func(s *Settings) error { _, err := NewController(s); return err }},
		{SectionAgent, AgentDefaults("host"), func(s *Settings) error { _, err := NewAgent(s); return err }},
	} {
		s := NewSettings()
		for _, kv := range d.defaults {
			s.Set(d.main, kv[0], kv[1], Source{Origin: OriginDefault})
		}
		s.Merge(file)
		_ = s.Dump()
		err := d.build(s)
		if err == nil {
			continue
		}
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			var ve *ValueError
			if !errors.As(e, &ve) || ve.Source.File != "fuzz.conf" || !strings.HasPrefix(e.Error(), "fuzz.conf:") {
				t.Fatalf("%s: error %v (%T) does not name the file", d.main, e, e)
			}
		}
	}
}

// FuzzValues checks the value parsers: ParseLong accepts exactly what
// strconv does after leading C whitespace, ParseRange and ParsePort stay in
// their ranges, ParseBool and ParseLogTarget ignore ASCII case, and
// SplitList returns trimmed, distinct, non-empty items without commas.
func FuzzValues(f *testing.F) {
	for _, s := range []string{"842", " -12", "842O", "99999999999999999999", "+7", "0x10", "", "yes", "TRUE", "On", "1",
		"journald", "STDERR", "stderr-full", "a, b,,c , a", " ,\t,", "DEBUG", "info"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseLong(s)
		if err == nil {
			if m, e := strconv.ParseInt(lskip(s), 10, 64); e != nil || m != n {
				t.Fatalf("ParseLong(%q) = %d, strconv says %d, %v", s, n, m, e)
			}
		} else if !errors.Is(err, ErrNotANumber) && !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("ParseLong(%q): %v", s, err)
		}
		if r, err := ParseRange(s, -5, 1000); err == nil && (r < -5 || r > 1000 || r != n) {
			t.Fatalf("ParseRange(%q) = %d", s, r)
		}
		if p, err := ParsePort(s); err == nil && int64(p) != n {
			t.Fatalf("ParsePort(%q) = %d, ParseLong %d", s, p, n)
		}
		if ParseBool(s) != ParseBool(strings.ToUpper(s)) && isASCII(s) {
			t.Fatalf("ParseBool(%q) depends on case", s)
		}
		if tg, ok := ParseLogTarget(s); ok && !equalFoldASCII(tg, s) {
			t.Fatalf("ParseLogTarget(%q) = %q", s, tg)
		}
		if IsValidLogLevel(s) && s != strings.ToUpper(s) {
			t.Fatalf("IsValidLogLevel(%q)", s)
		}
		seen := map[string]bool{}
		for _, item := range SplitList(s) {
			if item == "" || seen[item] || strings.Contains(item, ",") || item != trimSpace(item) {
				t.Fatalf("SplitList(%q) has item %q", s, item)
			}
			seen[item] = true
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
