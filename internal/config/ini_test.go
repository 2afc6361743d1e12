// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSyntax(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Entry
	}{
		{
			name:  "section and key",
			input: "[bluechi-agent]\nNodeName=foo\n",
			want:  []Entry{{"bluechi-agent", "NodeName", "foo", 2}},
		},
		{
			name:  "colon separator",
			input: "[s]\nNodeName:foo\n",
			want:  []Entry{{"s", "NodeName", "foo", 2}},
		},
		{
			name:  "first of = or : splits",
			input: "[s]\na:b=c\nd=e:f\n",
			want:  []Entry{{"s", "a", "b=c", 2}, {"s", "d", "e:f", 3}},
		},
		{
			name:  "whitespace around name and value stripped",
			input: "[s]\n  Key \t=  some value \t\n",
			want:  []Entry{{"s", "Key", "some value", 2}},
		},
		{
			name:  "start-of-line comments",
			input: "; comment\n# comment\n[s]\n   ; indented comment\n\t# indented\nK=v\n",
			want:  []Entry{{"s", "K", "v", 6}},
		},
		{
			name:  "inline semicolon comment after whitespace",
			input: "[s]\nK=val ;comment\nL=val\t; tab comment\n",
			want:  []Entry{{"s", "K", "val", 2}, {"s", "L", "val", 3}},
		},
		{
			name:  "semicolon without preceding whitespace is data",
			input: "[s]\nK=val;notcomment\nL=;x\n",
			want:  []Entry{{"s", "K", "val;notcomment", 2}, {"s", "L", ";x", 3}},
		},
		{
			name:  "hash is not an inline comment",
			input: "[s]\nK=val #x\n",
			want:  []Entry{{"s", "K", "val #x", 2}},
		},
		{
			name:  "value that is only an inline comment is empty",
			input: "[s]\nK= ;c\n",
			want:  []Entry{{"s", "K", "", 2}},
		},
		{
			name:  "empty value",
			input: "[s]\nControllerHost=\n",
			want:  []Entry{{"s", "ControllerHost", "", 2}},
		},
		{
			name:  "continuation lines appended without separator",
			input: "[s]\nAllowedNodeNames=a,\n   b,\n   c\n",
			want:  []Entry{{"s", "AllowedNodeNames", "a,b,c", 2}},
		},
		{
			name:  "blank and comment lines do not break a continuation",
			input: "[s]\nK=a,\n\n; comment\n   # comment\n   b\n",
			want:  []Entry{{"s", "K", "a,b", 2}},
		},
		{
			name:  "inline comment in continuation line",
			input: "[s]\nK=a\n\tb ;c\n",
			want:  []Entry{{"s", "K", "ab", 2}},
		},
		{
			name:  "indented section header after key is a continuation",
			input: "[s]\nK=a\n  [other]\nL=b\n",
			want:  []Entry{{"s", "K", "a[other]", 2}, {"s", "L", "b", 4}},
		},
		{
			name:  "indented key=value after key is a continuation",
			input: "[s]\nK=a\n  L=b\n",
			want:  []Entry{{"s", "K", "aL=b", 2}},
		},
		{
			name:  "indented line directly after section header is a normal line",
			input: "[s]\n  K=a\n",
			want:  []Entry{{"s", "K", "a", 2}},
		},
		{
			name:  "indented line after a new section is not a continuation",
			input: "[s]\nK=a\n[t]\n  L=b\n",
			want:  []Entry{{"s", "K", "a", 2}, {"t", "L", "b", 4}},
		},
		{
			name:  "continuation after empty value starts the value",
			input: "[s]\nK=\n  a,\n  b\n",
			want:  []Entry{{"s", "K", "a,b", 3}},
		},
		{
			name:  "duplicate key concatenated",
			input: "[s]\nLogLevel=INFO\nLogLevel=INFO\n",
			want:  []Entry{{"s", "LogLevel", "INFOINFO", 2}},
		},
		{
			name:  "duplicate key after empty value replaces it",
			input: "[s]\nK=\nK=x\n",
			want:  []Entry{{"s", "K", "x", 3}},
		},
		{
			name:  "empty duplicate does not unset within a file",
			input: "[s]\nK=x\nK=\n",
			want:  []Entry{{"s", "K", "x", 2}},
		},
		{
			name:  "duplicate key in different sections kept apart",
			input: "[s]\nK=x\n[t]\nK=y\n[s]\nK=z\n",
			want:  []Entry{{"s", "K", "xz", 2}, {"t", "K", "y", 4}},
		},
		{
			name:  "keys and sections are case-sensitive",
			input: "[S]\nkey=a\nKey=b\n[s]\nkey=c\n",
			want:  []Entry{{"S", "key", "a", 2}, {"S", "Key", "b", 3}, {"s", "key", "c", 5}},
		},
		{
			name:  "keys before any section belong to section empty",
			input: "K=v\n[s]\n",
			want:  []Entry{{"", "K", "v", 1}},
		},
		{
			name:  "UTF-8 BOM skipped",
			input: "\xEF\xBB\xBF[s]\nK=v\n",
			want:  []Entry{{"s", "K", "v", 2}},
		},
		{
			name:  "section name truncated to 49 bytes",
			input: "[" + strings.Repeat("x", 60) + "]\nK=v\n",
			want:  []Entry{{strings.Repeat("x", 49), "K", "v", 2}},
		},
		{
			name:  "text after closing bracket ignored, inner spaces kept",
			input: "[node a ]junk\nK=v\n",
			want:  []Entry{{"node a ", "K", "v", 2}},
		},
		{
			name:  "CRLF line endings",
			input: "[s]\r\nK=v\r\nL=a,\r\n  b\r\n",
			want:  []Entry{{"s", "K", "v", 2}, {"s", "L", "a,b", 3}},
		},
		{
			name:  "last line without newline",
			input: "[s]\nK=v",
			want:  []Entry{{"s", "K", "v", 2}},
		},
		{
			name:  "empty name is stored but does not start continuations",
			input: "[s]\n=v\n  K=w\n",
			want:  []Entry{{"s", "", "v", 2}, {"s", "K", "w", 3}},
		},
		{
			name:  "empty input",
			input: "",
			want:  nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("test.conf", strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, f.Entries); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	long := func(n int) string { return "K=" + strings.Repeat("x", n-2) }
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"section without bracket", "[s]\nK=v\n[broken\n", "f.conf:3: missing ']'"},
		{"inline comment hides bracket", "[s ;c]\n", "f.conf:1: missing ']'"},
		{"line without separator", "[s]\nK=v\n\nNoSeparator\n", "f.conf:4: missing '=' or ':'"},
		{"inline comment hides separator", "[s]\na ;b=c\n", "f.conf:2: missing '=' or ':'"},
		{"stops at first error", "[s]\nbad\n[worse\n", "f.conf:2: missing '=' or ':'"},
		{"error on line 7", "[s]\nA=1\nB=2\n# c\n\nC=3\noops\n", "f.conf:7: missing '=' or ':'"},
		{"overlong line with newline", "[s]\n" + long(519) + "\n", "f.conf:2: line too long (more than 519 bytes including newline)"},
		{"overlong last line", "[s]\n" + long(520), "f.conf:2: line too long (more than 519 bytes including newline)"},
		{"very long line", "[s]\n" + long(10000) + "\n", "f.conf:2: line too long (more than 519 bytes including newline)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.conf", strings.NewReader(tt.input))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err.Error(), tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError", err)
			}
		})
	}
}

func TestParseLineLengthLimit(t *testing.T) {
	// 518 bytes + newline = 519 bytes: accepted.
	ok := "K=" + strings.Repeat("x", 516)
	f, err := Parse("f", strings.NewReader("[s]\n"+ok+"\nL=1\n"))
	if err != nil {
		t.Fatalf("519-byte line rejected: %v", err)
	}
	if e, _ := f.Lookup("s", "K"); len(e.Value) != 516 {
		t.Errorf("value length = %d, want 516", len(e.Value))
	}
	// 519 bytes without newline at EOF: accepted (fits upstream's buffer).
	if _, err := Parse("f", strings.NewReader("[s]\n"+ok+"x")); err != nil {
		t.Errorf("519-byte last line rejected: %v", err)
	}
	// 519 bytes + newline: rejected.
	if _, err := Parse("f", strings.NewReader("[s]\n"+ok+"x\n")); err == nil {
		t.Error("520-byte line accepted")
	}
}

func TestParseLongMultilineValue(t *testing.T) {
	var b strings.Builder
	b.WriteString("[bluechi-controller]\nAllowedNodeNames=\n")
	var want []string
	for i := range 150 {
		name := "node-" + strings.Repeat("n", 3) + itoa(int64(i))
		want = append(want, name)
		b.WriteString("  " + name + ",\n")
	}
	f, err := Parse("f", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.Lookup(SectionController, KeyAllowedNodeNames)
	if diff := cmp.Diff(want, SplitList(e.Value)); diff != "" {
		t.Errorf("names mismatch (-want +got):\n%s", diff)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.conf")
	if err := os.WriteFile(p, []byte("[s]\nK=v\nbad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(p)
	if want := p + ":3: missing '=' or ':'"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	_, err = ParseFile(filepath.Join(dir, "missing.conf"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file error = %v, want ErrNotExist", err)
	}
}
