// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"sort"
	"strings"
)

// sigType is a parsed single complete D-Bus type.
type sigType struct {
	code  byte       // basic code, 'a', '(' or '{'
	elem  *sigType   // array element
	key   *sigType   // dict key (code '{': elem is the value)
	field []*sigType // struct fields
	text  string
}

func parseSig(s string) ([]*sigType, error) {
	var out []*sigType
	for len(s) > 0 {
		t, rest, err := parseOne(s, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		s = rest
	}
	return out, nil
}

func parseOne(s string, depth int) (*sigType, string, error) {
	if depth > 32 {
		return nil, "", fmt.Errorf("signature nested too deep")
	}
	if s == "" {
		return nil, "", fmt.Errorf("incomplete signature")
	}
	switch c := s[0]; c {
	case 'y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g', 'h', 'v':
		return &sigType{code: c, text: s[:1]}, s[1:], nil
	case 'a':
		if len(s) > 1 && s[1] == '{' {
			k, rest, err := parseOne(s[2:], depth+1)
			if err != nil {
				return nil, "", err
			}
			if k.code == 'a' || k.code == '(' || k.code == '{' || k.code == 'v' {
				return nil, "", fmt.Errorf("dict key must be a basic type")
			}
			v, rest, err := parseOne(rest, depth+1)
			if err != nil {
				return nil, "", err
			}
			if rest == "" || rest[0] != '}' {
				return nil, "", fmt.Errorf("dict entry not closed")
			}
			rest = rest[1:]
			return &sigType{code: '{', key: k, elem: v, text: s[:len(s)-len(rest)]}, rest, nil
		}
		e, rest, err := parseOne(s[1:], depth+1)
		if err != nil {
			return nil, "", err
		}
		return &sigType{code: 'a', elem: e, text: s[:len(s)-len(rest)]}, rest, nil
	case '(':
		t := &sigType{code: '('}
		rest := s[1:]
		for {
			if rest == "" {
				return nil, "", fmt.Errorf("struct not closed")
			}
			if rest[0] == ')' {
				rest = rest[1:]
				break
			}
			f, r, err := parseOne(rest, depth+1)
			if err != nil {
				return nil, "", err
			}
			t.field = append(t.field, f)
			rest = r
		}
		if len(t.field) == 0 {
			return nil, "", fmt.Errorf("empty struct")
		}
		t.text = s[:len(s)-len(rest)]
		return t, rest, nil
	}
	return nil, "", fmt.Errorf("unknown type code %q", s[0])
}

func checkSig(s string, single bool) error {
	ts, err := parseSig(s)
	if err != nil {
		return fmt.Errorf("bad signature %q: %v", s, err)
	}
	if single && len(ts) != 1 {
		return fmt.Errorf("signature %q is not one complete type", s)
	}
	return nil
}

// structSpec names a struct signature and its fields.
type structSpec struct {
	Name   string
	Doc    string
	Fields []string
	Docs   []string
}

// knownStructs gives BlueChi's struct signatures readable Go names.
var knownStructs = map[string]structSpec{
	"(ssssssouso)": {Name: "UnitInfo", Doc: "describes one loaded unit, as systemd's ListUnits does.",
		Fields: []string{"Name", "Description", "LoadState", "ActiveState", "SubState", "Followed", "Path", "JobID", "JobType", "JobPath"},
		Docs: []string{"unit name", "human readable description", "load state", "active state", "sub state",
			"unit followed by this one, or empty", "unit object path on the node's systemd", "queued job id, 0 if none",
			"queued job type", "queued job object path"}},
	"(soss)": {Name: "NodeInfo", Doc: "describes one configured node.",
		Fields: []string{"Name", "Path", "Status", "PeerIP"},
		Docs:   []string{"node name", "node object path", "online or offline", "peer IP address, empty when unknown"}},
	"(ss)": {Name: "UnitFileInfo", Doc: "describes one unit file and its enablement state.",
		Fields: []string{"Path", "State"}, Docs: []string{"unit file path", "enablement state"}},
	"(sss)": {Name: "UnitFileChange", Doc: "is one change made while enabling or disabling unit files.",
		Fields: []string{"Type", "Filename", "Destination"}, Docs: []string{"symlink or unlink", "file name of the symlink", "symlink destination"}},
	"(sv)": {Name: "UnitProperty", Doc: "is one named unit property value.",
		Fields: []string{"Name", "Value"}, Docs: []string{"property name", "property value"}},
	"(sa(sv))": {Name: "AuxUnit", Doc: "is an auxiliary unit of a transient unit with its properties.",
		Fields: []string{"Name", "Properties"}, Docs: []string{"unit name", "unit properties"}},
}

// typeMapper maps signatures to Go types and records the structs it needs.
type typeMapper struct {
	used map[string]structSpec
	qual string // package qualifier for struct names, e.g. "bluechi."
}

func newTypeMapper() *typeMapper { return &typeMapper{used: map[string]structSpec{}} }

func (m *typeMapper) goType(sig string) string {
	ts, err := parseSig(sig)
	if err != nil || len(ts) != 1 {
		panic(fmt.Sprintf("bad signature %q", sig))
	}
	return m.of(ts[0])
}

func (m *typeMapper) of(t *sigType) string {
	switch t.code {
	case 'y':
		return "byte"
	case 'b':
		return "bool"
	case 'n':
		return "int16"
	case 'q':
		return "uint16"
	case 'i':
		return "int32"
	case 'u':
		return "uint32"
	case 'x':
		return "int64"
	case 't':
		return "uint64"
	case 'd':
		return "float64"
	case 's':
		return "string"
	case 'o':
		return "dbus.ObjectPath"
	case 'g':
		return "dbus.Signature"
	case 'h':
		return "dbus.UnixFD"
	case 'v':
		return "dbus.Variant"
	case 'a':
		return "[]" + m.of(t.elem)
	case '{':
		return "map[" + m.of(t.key) + "]" + m.of(t.elem)
	case '(':
		spec, ok := knownStructs[t.text]
		if !ok {
			spec = structSpec{Name: "Struct" + mangle(t.text), Doc: "is the D-Bus struct " + t.text + "."}
			for i := range t.field {
				spec.Fields = append(spec.Fields, fmt.Sprintf("F%d", i))
				spec.Docs = append(spec.Docs, "")
			}
		}
		if _, seen := m.used[t.text]; !seen {
			m.used[t.text] = spec
			for _, f := range t.field {
				m.of(f) // register nested structs
			}
		}
		return m.qual + spec.Name
	}
	panic("unreachable")
}

func mangle(sig string) string {
	r := strings.NewReplacer("(", "S", ")", "E", "{", "D", "}", "E", "a", "A")
	return r.Replace(sig)
}

// structs returns the used struct signatures sorted by Go name.
func (m *typeMapper) structs() []string {
	var out []string
	for k := range m.used {
		out = append(out, k)
	}
	sort.Slice(out, func(a, b int) bool { return m.used[out[a]].Name < m.used[out[b]].Name })
	return out
}

// structOf returns the spec of a struct signature (registering it).
func (m *typeMapper) structOf(t *sigType) structSpec {
	m.of(t)
	return m.used[t.text]
}

// fieldTypes returns the Go types of a struct signature's fields.
func (m *typeMapper) fieldTypes(sig string) []string {
	ts, _ := parseSig(sig)
	var out []string
	for _, f := range ts[0].field {
		out = append(out, m.of(f))
	}
	return out
}

// newQualified returns a typeMapper that names struct types with qual.
func newQualified(qual string) *typeMapper {
	m := newTypeMapper()
	m.qual = qual
	return m
}
