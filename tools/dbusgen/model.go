// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Arg is one argument of a method or signal.
type Arg struct {
	Name      string
	Type      string
	Direction string // "in", "out" or "" for signals
	Doc       string
}

// Annotation is a D-Bus annotation on a member.
type Annotation struct {
	Name  string
	Value string
}

// Member is a method, signal or property.
type Member struct {
	Kind        string // "method", "signal" or "property"
	Name        string
	Summary     string
	Doc         string
	Args        []Arg
	Type        string // property type
	Access      string // property access
	Annotations []Annotation
	Line        int
}

// ErrorDoc documents one error name raised by an interface.
type ErrorDoc struct {
	Name string
	Doc  string
}

// Interface is one parsed IDL file.
type Interface struct {
	File    string // path relative to the repository, e.g. idl/org.eclipse.bluechi.Node.xml
	Name    string
	Summary string
	Doc     string
	Path    string
	Bus     string
	Errors  []ErrorDoc
	Members []*Member // in document order
}

// Methods, Signals and Properties return the members of one kind.
func (i *Interface) Methods() []*Member    { return i.kind("method") }
func (i *Interface) Signals() []*Member    { return i.kind("signal") }
func (i *Interface) Properties() []*Member { return i.kind("property") }

// member returns the member named name, nil if there is none.
func (i *Interface) member(name string) *Member {
	for _, m := range i.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (i *Interface) kind(k string) []*Member {
	var out []*Member
	for _, m := range i.Members {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// In and Out return a method's arguments of one direction.
func (m *Member) In() []Arg  { return m.dir("in") }
func (m *Member) Out() []Arg { return m.dir("out") }

func (m *Member) dir(d string) []Arg {
	var out []Arg
	for _, a := range m.Args {
		if a.Direction == d || (d == "in" && a.Direction == "" && m.Kind == "method") {
			out = append(out, a)
		}
	}
	return out
}

// Our own annotations, in the API's namespace, are read by the generator and
// not served by Introspect.
const (
	ownAnnotations = "org.eclipse.bluechi."
	// explicitAnnotation "true" on a property leaves it out of GetAll, as
	// upstream's sd-bus vtable flag SD_BUS_VTABLE_PROPERTY_EXPLICIT does; Get
	// still reads it.
	explicitAnnotation = ownAnnotations + "Explicit"
)

// Explicit reports whether a property is left out of GetAll.
func (m *Member) Explicit() bool { return m.Annotation(explicitAnnotation) == "true" }

// Annotation returns the value of a member annotation, or "".
func (m *Member) Annotation(name string) string {
	for _, a := range m.Annotations {
		if a.Name == name {
			return a.Value
		}
	}
	return ""
}

// Sig concatenates the types of args.
func Sig(args []Arg) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.Type)
	}
	return b.String()
}

// LoadDir parses every *.xml file of dir, sorted by interface name.
func LoadDir(dir string) ([]*Interface, error) { return LoadDirAs(dir, dir) }

// LoadDirAs is LoadDir naming the files as if dir were called display, so
// generated headers do not depend on where the generator runs.
func LoadDirAs(dir, display string) ([]*Interface, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.xml files in %s", dir)
	}
	var out []*Interface
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		ifs, err := Parse(fh, filepath.ToSlash(filepath.Join(display, filepath.Base(f))))
		fh.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, ifs...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, fmt.Errorf("interface %s declared twice (%s, %s)", out[i].Name, out[i-1].File, out[i].File)
		}
	}
	return out, nil
}

type docComment struct {
	name    string
	summary string
	body    []string
	tags    []tag
	line    int
}

type tag struct {
	key, arg, text string
}

// Parse reads introspection XML with our structured doc comments.
func Parse(r io.Reader, file string) ([]*Interface, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	d := xml.NewDecoder(strings.NewReader(string(data)))
	lineOf := func() int {
		off := int(d.InputOffset())
		return strings.Count(string(data[:off]), "\n") + 1
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, lineOf(), fmt.Sprintf(format, args...))
	}
	var (
		out     []*Interface
		iface   *Interface
		member  *Member
		pending *docComment
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errf("%v", err)
		}
		switch t := tok.(type) {
		case xml.Comment:
			if pending != nil {
				return nil, errf("two doc comments in a row")
			}
			c, err := parseComment(string(t))
			if err != nil {
				return nil, errf("%v", err)
			}
			c.line = lineOf()
			pending = c
		case xml.StartElement:
			attr := func(n string) string {
				for _, a := range t.Attr {
					if a.Name.Local == n {
						return a.Value
					}
				}
				return ""
			}
			switch t.Name.Local {
			case "node":
				if pending != nil {
					return nil, errf("doc comment before <node>")
				}
			case "interface":
				if iface != nil {
					return nil, errf("nested <interface>")
				}
				iface = &Interface{File: file, Name: attr("name")}
				if err := checkName(iface.Name, true); err != nil {
					return nil, errf("%v", err)
				}
				if pending == nil {
					return nil, errf("interface %s has no doc comment", iface.Name)
				}
				if err := applyInterfaceDoc(iface, pending); err != nil {
					return nil, errf("%v", err)
				}
				pending = nil
			case "method", "signal", "property":
				if iface == nil || member != nil {
					return nil, errf("<%s> outside an interface", t.Name.Local)
				}
				member = &Member{Kind: t.Name.Local, Name: attr("name"), Type: attr("type"), Access: attr("access"), Line: lineOf()}
				if err := checkName(member.Name, false); err != nil {
					return nil, errf("%v", err)
				}
				if member.Kind == "property" {
					if err := checkSig(member.Type, true); err != nil {
						return nil, errf("property %s: %v", member.Name, err)
					}
					switch member.Access {
					case "read", "write", "readwrite":
					default:
						return nil, errf("property %s: bad access %q", member.Name, member.Access)
					}
				}
				if pending == nil {
					return nil, errf("%s %s has no doc comment", member.Kind, member.Name)
				}
				if pending.name != member.Name {
					return nil, errf("doc comment names %q but precedes %s %s", pending.name, member.Kind, member.Name)
				}
				member.Summary, member.Doc = pending.summary, strings.Join(pending.body, "\n")
				for _, m := range iface.Members {
					if m.Name == member.Name {
						return nil, errf("member %s declared twice", m.Name)
					}
				}
				iface.Members = append(iface.Members, member)
			case "arg":
				if member == nil || member.Kind == "property" {
					return nil, errf("<arg> outside a method or signal")
				}
				a := Arg{Name: attr("name"), Type: attr("type"), Direction: attr("direction")}
				if member.Kind == "method" && a.Direction == "" {
					a.Direction = "in"
				}
				if member.Kind == "signal" && a.Direction != "" {
					return nil, errf("signal %s: argument %s has a direction", member.Name, a.Name)
				}
				if a.Direction != "" && a.Direction != "in" && a.Direction != "out" {
					return nil, errf("%s: bad direction %q", member.Name, a.Direction)
				}
				if a.Name == "" {
					return nil, errf("%s: argument %d has no name", member.Name, len(member.Args))
				}
				if err := checkSig(a.Type, true); err != nil {
					return nil, errf("%s.%s: %v", member.Name, a.Name, err)
				}
				member.Args = append(member.Args, a)
			case "annotation":
				if member == nil {
					return nil, errf("annotations are only supported on members")
				}
				a := Annotation{attr("name"), attr("value")}
				if strings.HasPrefix(a.Name, ownAnnotations) {
					if a.Name != explicitAnnotation || member.Kind != "property" || (a.Value != "true" && a.Value != "false") {
						return nil, errf("%s: unknown annotation %s=%q (only %s=\"true\"|\"false\" on properties)", member.Name, a.Name, a.Value, explicitAnnotation)
					}
				}
				member.Annotations = append(member.Annotations, a)
			default:
				return nil, errf("unexpected element <%s>", t.Name.Local)
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "interface":
				out = append(out, iface)
				iface = nil
			case "method", "signal", "property":
				if err := applyMemberDoc(member, pending); err != nil {
					return nil, fmt.Errorf("%s:%d: %v", file, member.Line, err)
				}
				pending = nil
				member = nil
			}
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("%s: doc comment not followed by an element", file)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no interface", file)
	}
	return out, nil
}

// parseComment reads "Name: summary", description lines and "@tag: text" lines.
func parseComment(s string) (*docComment, error) {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("empty doc comment")
	}
	name, summary, ok := strings.Cut(lines[0], ": ")
	if !ok || strings.ContainsAny(name, " \t") {
		return nil, fmt.Errorf("doc comment must start with \"Name: summary\", got %q", lines[0])
	}
	c := &docComment{name: name, summary: strings.TrimSpace(summary)}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "@") {
			if len(c.tags) > 0 {
				last := &c.tags[len(c.tags)-1]
				last.text += " " + l
				continue
			}
			c.body = append(c.body, l)
			continue
		}
		head, text, ok := strings.Cut(l[1:], ":")
		if !ok {
			return nil, fmt.Errorf("tag line %q needs a colon", l)
		}
		key, arg, _ := strings.Cut(strings.TrimSpace(head), " ")
		c.tags = append(c.tags, tag{key: key, arg: strings.TrimSpace(arg), text: strings.TrimSpace(text)})
	}
	return c, nil
}

func applyInterfaceDoc(i *Interface, c *docComment) error {
	if c.name != i.Name {
		return fmt.Errorf("doc comment names %q but precedes interface %s", c.name, i.Name)
	}
	i.Summary, i.Doc = c.summary, strings.Join(c.body, "\n")
	for _, t := range c.tags {
		switch t.key {
		case "path":
			i.Path = t.text
		case "bus":
			i.Bus = t.text
		case "error":
			if err := checkName(t.arg, true); err != nil {
				return fmt.Errorf("@error: %v", err)
			}
			i.Errors = append(i.Errors, ErrorDoc{Name: t.arg, Doc: t.text})
		default:
			return fmt.Errorf("unknown interface tag @%s", t.key)
		}
	}
	if i.Path == "" || i.Bus == "" {
		return fmt.Errorf("interface %s: doc comment needs @path and @bus", i.Name)
	}
	return nil
}

// applyMemberDoc attaches @arg lines; every argument needs exactly one.
func applyMemberDoc(m *Member, c *docComment) error {
	docs := map[string]string{}
	for _, t := range c.tags {
		if t.arg != "" {
			return fmt.Errorf("%s: unexpected tag @%s %s", m.Name, t.key, t.arg)
		}
		if _, dup := docs[t.key]; dup {
			return fmt.Errorf("%s: @%s documented twice", m.Name, t.key)
		}
		docs[t.key] = t.text
	}
	for i := range m.Args {
		d, ok := docs[m.Args[i].Name]
		if !ok {
			return fmt.Errorf("%s: argument %s is not documented (add \"@%s: ...\")", m.Name, m.Args[i].Name, m.Args[i].Name)
		}
		m.Args[i].Doc = d
		delete(docs, m.Args[i].Name)
	}
	for k := range docs {
		return fmt.Errorf("%s: @%s documents no argument", m.Name, k)
	}
	return nil
}

func checkName(s string, dotted bool) error {
	if s == "" {
		return fmt.Errorf("missing name")
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || (!dotted && part != s) {
			return fmt.Errorf("bad name %q", s)
		}
		for i, r := range part {
			ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
			if !ok {
				return fmt.Errorf("bad name %q", s)
			}
		}
	}
	return nil
}

// XML renders an interface as served by Introspect (no comments, none of our
// own annotations, one-space indent).
func (i *Interface) XML() string {
	var b strings.Builder
	fmt.Fprintf(&b, " <interface name=%q>\n", i.Name)
	for _, m := range i.Members {
		b.WriteString(m.XML())
	}
	b.WriteString(" </interface>\n")
	return b.String()
}

// XML renders one member as Interface.XML does.
func (m *Member) XML() string {
	var b strings.Builder
	switch m.Kind {
	case "property":
		fmt.Fprintf(&b, "  <property name=%q type=%q access=%q", m.Name, m.Type, m.Access)
	default:
		fmt.Fprintf(&b, "  <%s name=%q", m.Kind, m.Name)
	}
	var anns []Annotation
	for _, a := range m.Annotations {
		if !strings.HasPrefix(a.Name, ownAnnotations) {
			anns = append(anns, a)
		}
	}
	if len(m.Args) == 0 && len(anns) == 0 {
		b.WriteString("/>\n")
		return b.String()
	}
	b.WriteString(">\n")
	for _, a := range m.Args {
		if a.Direction != "" {
			fmt.Fprintf(&b, "   <arg name=%q type=%q direction=%q/>\n", a.Name, a.Type, a.Direction)
		} else {
			fmt.Fprintf(&b, "   <arg name=%q type=%q/>\n", a.Name, a.Type)
		}
	}
	for _, a := range anns {
		fmt.Fprintf(&b, "   <annotation name=%q value=%q/>\n", a.Name, a.Value)
	}
	fmt.Fprintf(&b, "  </%s>\n", m.Kind)
	return b.String()
}
