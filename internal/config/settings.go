// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"sort"
	"strings"
)

// Origins used in Source.Origin for values that do not come from a file.
const (
	OriginDefault     = "built-in default"
	OriginCommandLine = "command line"
)

// Source says where a value came from: a file and line, or a description
// such as "built-in default" or "environment variable BC_LOG_LEVEL".
type Source struct {
	File   string // configuration file, "" if the value did not come from a file
	Line   int    // line in File
	Origin string // description when File is ""
}

// String returns "FILE:LINE" for file values and the origin otherwise.
func (s Source) String() string {
	if s.File != "" {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.Origin
}

// Value is one effective setting together with its source. An empty Text
// means "no value": the key was explicitly unset.
type Value struct {
	Text   string
	Source Source
}

type settingKey struct{ section, key string }

// Settings is the layered, untyped configuration: for every section and key
// the value of the last layer that set it.
type Settings struct {
	values map[settingKey]Value
}

// NewSettings returns an empty Settings.
func NewSettings() *Settings {
	return &Settings{values: map[settingKey]Value{}}
}

// Set stores value for section/key, replacing any earlier value. An empty
// value is stored as "no value", which hides earlier values.
func (s *Settings) Set(section, key, value string, src Source) {
	s.values[settingKey{section, key}] = Value{Text: value, Source: src}
}

// Lookup returns the value of section/key. ok is false when the key is
// absent or has no value (empty), which are treated the same.
func (s *Settings) Lookup(section, key string) (v Value, ok bool) {
	v, ok = s.values[settingKey{section, key}]
	if !ok || v.Text == "" {
		return Value{}, false
	}
	return v, true
}

// Get returns the text of section/key, or "" when it is absent or unset.
func (s *Settings) Get(section, key string) string {
	v, _ := s.Lookup(section, key)
	return v.Text
}

// Merge applies a parsed file on top of s, key by key.
func (s *Settings) Merge(f *File) {
	for _, e := range f.Entries {
		s.Set(e.Section, e.Key, e.Value, Source{File: f.Name, Line: e.Line})
	}
}

// Sections returns the names of all sections that have at least one key
// (set or unset), sorted byte-wise.
func (s *Settings) Sections() []string {
	seen := map[string]bool{}
	var out []string
	for k := range s.values {
		if !seen[k.section] {
			seen[k.section] = true
			out = append(out, k.section)
		}
	}
	sort.Strings(out)
	return out
}

// Keys returns the keys of section (including unset ones), sorted byte-wise.
func (s *Settings) Keys(section string) []string {
	var out []string
	for k := range s.values {
		if k.section == section {
			out = append(out, k.key)
		}
	}
	sort.Strings(out)
	return out
}

// Dump renders all settings as "[section]" headers followed by "key=value"
// lines (unset keys as "key="), sections and keys sorted byte-wise and
// sections separated by a blank line. It mirrors upstream's debug dump.
func (s *Settings) Dump() string {
	var b strings.Builder
	for i, sec := range s.Sections() {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[%s]\n", sec)
		for _, k := range s.Keys(sec) {
			fmt.Fprintf(&b, "%s=%s\n", k, s.values[settingKey{sec, k}].Text)
		}
	}
	return b.String()
}
