// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"go/format"
	"sort"
	"strings"
	"unicode"
)

const toolName = "dbusgen"

// freedesktopPrefix starts the names of the systemd and D-Bus interfaces.
const freedesktopPrefix = "org.freedesktop."

// The client runtime and the package documentation of the public package
// are generated into it from these files.
var (
	//go:embed tmpl/runtime.go.tmpl
	runtimeTmpl string
	//go:embed tmpl/doc.go.tmpl
	docTmpl string
)

// goGen writes the Go code of a set of interfaces. The public interfaces get
// a self-contained client package (pub: name constants, types, clients,
// signal types, errors, runtime); the daemons' package (api) gets the
// servers and export helpers of every interface and everything of the
// internal ones, built on internal/dbusrt.
type goGen struct {
	pubPkg    string // package name of the public package
	pubImport string // its import path
	apiPkg    string // package name of the daemons' package
	rtImport  string // import path of internal/dbusrt
	prefix    string // interface name prefix stripped for Go names
	internal  string // interface name prefix of the internal interfaces

	clientOnly map[string]bool // interfaces of -client-idl: all their names live in the daemons' package

	namesPkg    string // package name of the client-only interfaces' leaf package (-names); "" for none
	namesImport string // its import path

	types    *typeMapper // struct types, unqualified (in the public package)
	apiTypes *typeMapper // struct types qualified for the daemons' package
}

func newGoGen(pubPkg, pubImport, apiPkg, rt, prefix string) *goGen {
	api := newTypeMapper()
	api.qual = pubPkg + "."
	return &goGen{pubPkg: pubPkg, pubImport: pubImport, apiPkg: apiPkg, rtImport: rt, prefix: prefix,
		internal: prefix + "internal.", types: newTypeMapper(), apiTypes: api}
}

// public reports whether i belongs to the public API.
func (g *goGen) public(i *Interface) bool { return !strings.HasPrefix(i.Name, g.internal) }

// q qualifies a name the generator puts next to interface i's constants
// when it is used from the daemons' package: public names live in the
// public package.
func (g *goGen) q(i *Interface) string {
	if g.public(i) && !g.clientOnly[i.Name] {
		return g.pubPkg + "."
	}
	return ""
}

type buf struct{ bytes.Buffer }

func (b *buf) p(format string, args ...any) { fmt.Fprintf(&b.Buffer, format+"\n", args...) }

// goName turns an interface name into a Go identifier prefix.
// The freedesktop interfaces the daemons call (idl/systemd) are named
// without "org.freedesktop.": Systemd1Manager, DBusProperties, DBus.
func (g *goGen) goName(iface string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(iface, g.prefix), freedesktopPrefix)
	var b strings.Builder
	for _, part := range strings.Split(rest, ".") {
		b.WriteString(goIdent(upperFirst(part)))
	}
	return b.String()
}

// leadingInitialisms are the values of initialisms that paramName
// lower-cases whole at the start of a name.
var leadingInitialisms = []string{"DBus", "UID", "PID", "URL", "ID", "IP"}

var initialisms = map[string]string{"id": "ID", "ip": "IP", "dbus": "DBus", "uid": "UID", "pid": "PID", "url": "URL"}

// compounds spell argument names written as one lower-case word.
var compounds = map[string]string{"jobid": "JobID", "loglevel": "LogLevel", "defaulttarget": "DefaultTarget",
	"keyvalues": "KeyValues", "unitfiles": "UnitFiles", "substate": "SubState"}

// goIdent applies Go's initialisms to the words of a CamelCase member name:
// "PeerIp" becomes "PeerIP", "Id" becomes "ID".
func goIdent(s string) string {
	var b strings.Builder
	start := 0
	flush := func(end int) {
		w := s[start:end]
		if v, ok := initialisms[strings.ToLower(w)]; ok && v != "DBus" {
			w = v
		}
		b.WriteString(w)
		start = end
	}
	for i := 1; i < len(s); i++ {
		if unicode.IsUpper(rune(s[i])) && !unicode.IsUpper(rune(s[i-1])) {
			flush(i)
		}
	}
	flush(len(s))
	return b.String()
}

// fieldName turns an argument name into an exported Go field name.
func fieldName(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part == "" {
			continue
		}
		if v, ok := initialisms[strings.ToLower(part)]; ok {
			b.WriteString(v)
			continue
		}
		if v, ok := compounds[part]; ok {
			b.WriteString(v)
			continue
		}
		b.WriteString(goIdent(upperFirst(part)))
	}
	if b.Len() == 0 || !unicode.IsLetter(rune(b.String()[0])) {
		return "F" + b.String()
	}
	return b.String()
}

var reservedParams = map[string]string{
	"interface": "iface", "type": "typ", "func": "fn", "map": "m", "range": "rng", "select": "sel",
	"default": "def", "package": "pkg", "import": "imp", "chan": "ch", "go": "goArg", "return": "ret",
	"break": "brk", "case": "cas", "const": "cnst", "continue": "cont", "defer": "dfr", "else": "els",
	"fallthrough": "fall", "for": "forArg", "goto": "gotoArg", "if": "ifArg", "struct": "strct",
	"switch": "sw", "var": "vr",
	// names used by generated code itself
	"ctx": "ctxArg", "err": "errArg", "body": "bodyArg", "srv": "srvArg", "c": "cArg", "o": "oArg",
	"call": "callArg", "v": "vArg", "sig": "sigArg", "s": "sArg", "fn": "fnArg", "dbus": "dbusArg",
	"dbusrt": "dbusrtArg", "context": "contextArg", "fmt": "fmtArg", "e": "eArg", "p": "pArg",
	"decode": "decodeArg", "bluechi": "bluechiArg", "all": "allArg",
}

// paramName turns an argument name into a Go parameter name.
func paramName(s string) string {
	f := fieldName(s)
	n := strings.ToLower(f[:1]) + f[1:]
	// A leading initialism is lower-cased whole: "uid", not "uID".
	for _, w := range leadingInitialisms {
		if strings.HasPrefix(f, w) {
			n = strings.ToLower(w) + f[len(w):]
			break
		}
	}
	if r, ok := reservedParams[n]; ok {
		return r
	}
	return n
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// spdx is the license line every generated file starts with.
const spdx = "SPDX-License-Identifier: Apache-2.0"

func header(b *buf, src string) {
	b.p("// %s", spdx)
	b.p("// Code generated by %s from %s. DO NOT EDIT.", toolName, src)
	b.p("")
}

// comment writes a Go comment: first line, then wrapped extra text.
func comment(b *buf, indent, first, extra string) {
	b.p("%s// %s", indent, first)
	if extra != "" {
		for _, l := range strings.Split(extra, "\n") {
			if l == "" {
				b.p("%s//", indent)
				continue
			}
			b.p("%s// %s", indent, l)
		}
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// sentence makes the summary read after "Name ...".
func sentence(summary string) string {
	return strings.TrimSpace(summary)
}

func params(t *typeMapper, args []Arg) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, paramName(a.Name)+" "+t.goType(a.Type))
	}
	return strings.Join(parts, ", ")
}

func results(t *typeMapper, args []Arg) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, paramName(a.Name)+" "+t.goType(a.Type))
	}
	parts = append(parts, "err error")
	return "(" + strings.Join(parts, ", ") + ")"
}

func names(args []Arg, f func(string) string) []string {
	var out []string
	for _, a := range args {
		out = append(out, f(a.Name))
	}
	return out
}

// argDocs documents the arguments of a method for its Go comment.
func argDocs(args []Arg) string {
	var lines []string
	for _, a := range args {
		if a.Doc != "" {
			lines = append(lines, fmt.Sprintf("  - %s: %s", paramName(a.Name), a.Doc))
		}
	}
	return strings.Join(lines, "\n")
}

// joinDoc joins paragraphs, leaving out empty ones; a leading "" starts the
// text with a paragraph break (after a comment's first line).
func joinDoc(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	text := strings.Join(out, "\n\n")
	if len(parts) > 0 && parts[0] == "" && text != "" {
		return "\n" + text
	}
	return text
}

// pathInfo splits an @path into prefix and placeholder.
func pathInfo(p string) (prefix, placeholder string) {
	if i := strings.Index(p, "{"); i >= 0 && strings.HasSuffix(p, "}") {
		return p[:i], p[i+1 : len(p)-1]
	}
	return p, ""
}

func prefixComma(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func lastElem(s string) string { return s[strings.LastIndex(s, ".")+1:] }

// constName is the Go constant of a member's name, e.g. NodeMethodStartUnit.
func constName(n string, m *Member) string { return n + upperFirst(m.Kind) + goIdent(m.Name) }

// checkCollisions fails when generated Go names would clash.
func (g *goGen) checkCollisions(i *Interface) error {
	seen := map[string]string{}
	add := func(scope, name, what string) error {
		k := scope + "." + name
		if prev, ok := seen[k]; ok {
			return fmt.Errorf("%s: generated name %s.%s used by both %s and %s", i.File, scope, name, prev, what)
		}
		seen[k] = what
		return nil
	}
	for _, n := range []string{"Path", "Conn", "Unexport", "Export"} {
		add("Object", n, "runtime")
	}
	for _, n := range []string{"Path", "Conn", "Destination", "Properties", "OnPropertiesChanged"} {
		add("Client", n, "runtime")
	}
	for _, n := range []string{"Sender", "Path", "Interface", "Changed", "Invalidated", "PropertiesChanged", "value"} {
		add("PropertiesChanged", n, "runtime")
	}
	for _, m := range i.Members {
		var errs []error
		id := goIdent(m.Name)
		switch m.Kind {
		case "method":
			errs = append(errs, add("Client", id, "method "+m.Name), add("Server", id, "method "+m.Name))
		case "signal":
			errs = append(errs, add("Client", "On"+id, "signal "+m.Name), add("Object", "Emit"+id, "signal "+m.Name),
				add("Object", "Emit"+id+"To", "signal "+m.Name))
			fields := map[string]bool{}
			for _, a := range m.Args {
				if fields[fieldName(a.Name)] {
					return fmt.Errorf("%s: signal %s: two arguments map to field %s", i.File, m.Name, fieldName(a.Name))
				}
				fields[fieldName(a.Name)] = true
			}
		case "property":
			errs = append(errs, add("Client", "Get"+id, "property "+m.Name), add("Object", id, "property "+m.Name),
				add("Object", "Set"+id, "property "+m.Name), add("PropertiesChanged", id, "property "+m.Name))
		}
		if m.Kind != "property" {
			params := map[string]bool{}
			for _, a := range m.Args {
				if params[paramName(a.Name)] {
					return fmt.Errorf("%s: %s: two arguments map to parameter %s", i.File, m.Name, paramName(a.Name))
				}
				params[paramName(a.Name)] = true
			}
		}
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}
	return nil
}

func gofmt(what string, b *buf) ([]byte, error) {
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: generated code does not parse: %v\n%s", what, err, b.String())
	}
	return out, nil
}

// pubFile generates the public package's file of a public interface: names,
// properties, signals and the client.
func (g *goGen) pubFile(i *Interface) ([]byte, error) {
	if err := g.checkCollisions(i); err != nil {
		return nil, err
	}
	n := g.goName(i.Name)
	var b buf
	header(&b, i.File)
	b.p("package %s", g.pubPkg)
	b.p("")
	b.p("import (")
	b.p("\t\"context\"")
	b.p("\t\"fmt\"")
	b.p("")
	b.p("\t\"github.com/godbus/dbus/v5\"")
	b.p(")")
	b.p("")
	b.p("var (")
	b.p("\t_ = context.Background")
	b.p("\t_ = fmt.Errorf")
	b.p(")")
	b.p("")
	g.names(&b, i, n, "escapeLabel", "")
	g.propsStruct(&b, i, n, g.types)
	g.signalTypes(&b, i, n, g.types, "decode")
	g.pubClient(&b, i, n)
	return gofmt(i.File, &b)
}

// apiFile generates the daemons' file of an interface: its server side, and
// for an internal interface also its names, signals and client.
func (g *goGen) apiFile(i *Interface) ([]byte, error) {
	if err := g.checkCollisions(i); err != nil {
		return nil, err
	}
	n := g.goName(i.Name)
	var b buf
	header(&b, i.File)
	b.p("package %s", g.apiPkg)
	b.p("")
	b.p("import (")
	b.p("\t\"context\"")
	b.p("\t\"fmt\"")
	b.p("")
	b.p("\t\"github.com/godbus/dbus/v5\"")
	b.p("")
	b.p("\t%s %q", g.pubPkg, g.pubImport)
	b.p("\t%q", g.rtImport)
	b.p(")")
	b.p("")
	b.p("var (")
	b.p("\t_ = context.Background")
	b.p("\t_ = fmt.Errorf")
	b.p("\t_ %s.UnitInfo", g.pubPkg)
	b.p(")")
	b.p("")
	if !g.public(i) {
		g.names(&b, i, n, "dbusrt.EscapeLabel", "")
		g.propsStruct(&b, i, n, g.apiTypes)
		g.signalTypes(&b, i, n, g.apiTypes, "dbusrt.Decode")
	}
	b.p("const %sXML = %q", lowerFirst(n), i.XML())
	b.p("")
	if g.public(i) {
		// The internal interfaces have theirs in their wire file.
		g.wireSigs(&b, i, n, "")
	}
	g.server(&b, i, n)
	g.emitters(&b, i, n)
	if !g.public(i) {
		g.rtClient(&b, i, n)
	}
	return gofmt(i.File, &b)
}

// names writes the constants of an interface and its path function;
// from is as in nameConsts.
func (g *goGen) names(b *buf, i *Interface, n, escape, from string) {
	g.nameConsts(b, i, n, from, "dbus.ObjectPath ")
	_, placeholder := pathInfo(i.Path)
	switch placeholder {
	case "":
	case "id":
		b.p("// %sPath returns the object path of the %s with the given id.", n, n)
		b.p("func %sPath(id uint32) dbus.ObjectPath {", n)
		b.p("\treturn dbus.ObjectPath(fmt.Sprintf(\"%%s%%d\", %sPathPrefix, id))", n)
		b.p("}")
		b.p("")
	default:
		b.p("// %sPath returns the object path of the %s with the given %s, escaped", n, n, placeholder)
		b.p("// as one path element.")
		b.p("func %sPath(%s string) dbus.ObjectPath {", n, paramName(placeholder))
		b.p("\treturn dbus.ObjectPath(%sPathPrefix + %s(%s))", n, escape, paramName(placeholder))
		b.p("}")
		b.p("")
		if escape == "escapeLabel" { // the public package: its runtime has the inverse
			from := n + fieldName(placeholder) + "FromPath"
			b.p("// %s returns the %s of the %s object at path, the inverse of", from, placeholder, n)
			b.p("// %sPath; false when path is not the path of such an object.", n)
			b.p("func %s(path dbus.ObjectPath) (string, bool) {", from)
			b.p("\treturn labelFromPath(path, %sPathPrefix)", n)
			b.p("}")
			b.p("")
		}
	}
}

// nameConsts writes the name constants of an interface. With from set
// (the leaf package's name), each constant takes its value from the one
// of the same name there instead of spelling it; pathType is the type of
// the path constant ("" for an untyped one).
func (g *goGen) nameConsts(b *buf, i *Interface, n, from, pathType string) {
	value := func(name, v string) string { return constValue(from, name, v) }
	b.p("// Names of %s and its members.", i.Name)
	b.p("const (")
	comment(b, "\t", fmt.Sprintf("%sInterface is the D-Bus interface name.", n), "")
	b.p("\t%sInterface = %s", n, value(n+"Interface", i.Name))
	if i.Bus != "peer" {
		comment(b, "\t", fmt.Sprintf("%sBusName is the well-known bus name of the service that serves %s.", n, i.Name), "")
		b.p("\t%sBusName = %s", n, value(n+"BusName", i.Bus))
	}
	prefix, placeholder := pathInfo(i.Path)
	if placeholder != "" {
		comment(b, "\t", fmt.Sprintf("%sPathPrefix starts the object path of every %s object.", n, n), "")
		b.p("\t%sPathPrefix = %s", n, value(n+"PathPrefix", prefix))
	} else {
		comment(b, "\t", fmt.Sprintf("%sPath is the object path of the %s object.", n, n), "")
		b.p("\t%sPath %s= %s", n, pathType, value(n+"Path", prefix))
	}
	for _, m := range i.Members {
		comment(b, "\t", fmt.Sprintf("%s names %s %s.", constName(n, m), m.Kind, m.Name), "")
		b.p("\t%s = %s", constName(n, m), value(constName(n, m), m.Name))
	}
	b.p(")")
	b.p("")
}

// constValue is the value a generated constant name is given: v spelled
// out, or with from set (the leaf package's name) the constant of the
// same name there.
func constValue(from, name, v string) string {
	if from != "" {
		return from + "." + name
	}
	return fmt.Sprintf("%q", v)
}

func (g *goGen) propsStruct(b *buf, i *Interface, n string, t *typeMapper) {
	b.p("// %sProperties holds the property values of %s.", n, i.Name)
	b.p("type %sProperties struct {", n)
	for _, p := range i.Properties() {
		doc := p.Doc
		if p.Explicit() {
			doc = joinDoc(doc, "Not in GetAll (as upstream): Properties leaves it zero; read it with Get"+goIdent(p.Name)+".")
		}
		comment(b, "\t", fmt.Sprintf("%s: %s", goIdent(p.Name), sentence(p.Summary)), doc)
		b.p("\t%s %s", goIdent(p.Name), t.goType(p.Type))
	}
	b.p("}")
	b.p("")
}

// signalTypes writes the struct of each signal and its parser.
func (g *goGen) signalTypes(b *buf, i *Interface, n string, types *typeMapper, decode string) {
	for _, m := range i.Signals() {
		t := n + goIdent(m.Name) + "Signal"
		comment(b, "", fmt.Sprintf("%s is the body of signal %s.%s: %s", t, i.Name, m.Name, sentence(m.Summary)), m.Doc)
		b.p("type %s struct {", t)
		for _, a := range m.Args {
			comment(b, "\t", fmt.Sprintf("%s: %s", fieldName(a.Name), a.Doc), "")
			b.p("\t%s %s", fieldName(a.Name), types.goType(a.Type))
		}
		b.p("}")
		b.p("")
		b.p("// Parse%s%s reads signal %s.%s.", n, goIdent(m.Name), i.Name, m.Name)
		b.p("func Parse%s%s(sig *dbus.Signal) (*%s, error) {", n, goIdent(m.Name), t)
		b.p("\tif sig.Name != %sInterface+\".\"+%s {", n, constName(n, m))
		b.p("\t\treturn nil, fmt.Errorf(\"signal %%s is not %s.%s\", sig.Name)", i.Name, m.Name)
		b.p("\t}")
		b.p("\ts := &%s{}", t)
		ptrs := strings.Join(names(m.Args, func(a string) string { return "&s." + fieldName(a) }), ", ")
		b.p("\tif err := %s(sig.Body%s); err != nil {", decode, prefixComma(ptrs))
		b.p("\t\treturn nil, fmt.Errorf(\"parse %s.%s: %%w\", err)", i.Name, m.Name)
		b.p("\t}")
		b.p("\treturn s, nil")
		b.p("}")
		b.p("")
	}
}

// fixed wraps an expression of a variant-carrying type so that it encodes
// with its real signatures.
func fixed(fix string, a Arg, expr string) string {
	if strings.Contains(a.Type, "v") {
		return fix + "(" + expr + ")"
	}
	return expr
}

func fixedList(fix string, args []Arg, f func(string) string) []string {
	var out []string
	for _, a := range args {
		out = append(out, fixed(fix, a, f(a.Name)))
	}
	return out
}

// server writes the server interface, its Unimplemented embed, the object
// and the export helpers (daemons' package).
func (g *goGen) server(b *buf, i *Interface, n string) {
	q := g.q(i)
	t := g.apiTypes
	methods := i.Methods()
	comment(b, "", fmt.Sprintf("%sServer serves %s: %s", n, i.Name, sentence(i.Summary)),
		fmt.Sprintf("Embed Unimplemented%sServer so that methods added later answer UnknownMethod.", n))
	b.p("type %sServer interface {", n)
	for _, m := range methods {
		comment(b, "\t", fmt.Sprintf("%s: %s", goIdent(m.Name), sentence(m.Summary)), m.Doc)
		b.p("\t%s(ctx context.Context%s) %s", goIdent(m.Name), prefixComma(params(t, m.In())), results(t, m.Out()))
	}
	b.p("\tmustEmbedUnimplemented%sServer()", n)
	b.p("}")
	b.p("")
	b.p("// Unimplemented%sServer answers every method of %s with UnknownMethod.", n, i.Name)
	b.p("type Unimplemented%sServer struct{}", n)
	b.p("")
	for _, m := range methods {
		b.p("// %s answers UnknownMethod.", goIdent(m.Name))
		var ps []string
		for _, a := range m.In() {
			ps = append(ps, t.goType(a.Type))
		}
		b.p("func (Unimplemented%sServer) %s(context.Context%s) %s {", n, goIdent(m.Name), prefixComma(strings.Join(ps, ", ")), results(t, m.Out()))
		b.p("\terr = dbusrt.NewError(dbusrt.ErrUnknownMethod, \"Method %s.%s is not implemented.\")", i.Name, m.Name)
		b.p("\treturn")
		b.p("}")
		b.p("")
	}
	b.p("func (Unimplemented%sServer) mustEmbedUnimplemented%sServer() {}", n, n)
	b.p("")

	props := i.Properties()
	b.p("func %sInterfaceFor(srv %sServer) *dbusrt.Interface {", lowerFirst(n), n)
	b.p("\treturn &dbusrt.Interface{")
	b.p("\t\tName: %s%sInterface,", q, n)
	b.p("\t\tXML: %sXML,", lowerFirst(n))
	b.p("\t\tMethods: []dbusrt.Method{")
	for _, m := range methods {
		in, out := m.In(), m.Out()
		b.p("\t\t\t{Name: %s%s, InSig: %q, Call: func(ctx context.Context, body []any) ([]any, error) {", q, constName(n, m), Sig(in))
		if len(in) > 0 {
			b.p("\t\t\t\tvar (")
			for _, a := range in {
				b.p("\t\t\t\t\t%s %s", paramName(a.Name), t.goType(a.Type))
			}
			b.p("\t\t\t\t)")
			ptrs := names(in, func(s string) string { return "&" + paramName(s) })
			b.p("\t\t\t\tif err := dbusrt.Decode(body, %s); err != nil {", strings.Join(ptrs, ", "))
			b.p("\t\t\t\t\treturn nil, err")
			b.p("\t\t\t\t}")
		}
		args := strings.Join(append([]string{"ctx"}, names(in, paramName)...), ", ")
		if len(out) == 0 {
			b.p("\t\t\t\treturn nil, srv.%s(%s)", goIdent(m.Name), args)
		} else {
			outs := names(out, paramName)
			b.p("\t\t\t\t%s, err := srv.%s(%s)", strings.Join(outs, ", "), goIdent(m.Name), args)
			b.p("\t\t\t\tif err != nil {")
			b.p("\t\t\t\t\treturn nil, err")
			b.p("\t\t\t\t}")
			b.p("\t\t\t\treturn []any{%s}, nil", strings.Join(fixedList("dbusrt.FixVariants", out, paramName), ", "))
		}
		b.p("\t\t\t}},")
	}
	b.p("\t\t},")
	b.p("\t\tProperties: []dbusrt.Property{")
	for _, p := range props {
		emit := "dbusrt.EmitTrue"
		switch p.Annotation("org.freedesktop.DBus.Property.EmitsChangedSignal") {
		case "false":
			emit = "dbusrt.EmitFalse"
		case "const":
			emit = "dbusrt.EmitConst"
		case "invalidates":
			emit = "dbusrt.EmitInvalidates"
		}
		b.p("\t\t\t{Name: %s%s, Sig: %q, Writable: %v, Emit: %s, Explicit: %v},", q, constName(n, p), p.Type, p.Access != "read", emit, p.Explicit())
	}
	b.p("\t\t},")
	b.p("\t}")
	b.p("}")
	b.p("")

	pt := q + n + "Properties"
	b.p("// %sObject is %s served on one object path.", n, i.Name)
	b.p("type %sObject struct{ e *dbusrt.Export }", n)
	b.p("")
	b.p("// Export%s serves srv as %s on exactly path of conn, with initial", n, i.Name)
	b.p("// property values props. The connection must have been made by dbusrt (or")
	b.p("// with a dbusrt.Server bound to it).")
	b.p("func Export%s(conn *dbus.Conn, path dbus.ObjectPath, srv %sServer, props %s) (*%sObject, error) {", n, n, pt, n)
	b.p("\ts, err := dbusrt.ServerFor(conn)")
	b.p("\tif err != nil {")
	b.p("\t\treturn nil, err")
	b.p("\t}")
	b.p("\treturn Export%sOn(s, path, srv, props)", n)
	b.p("}")
	b.p("")
	b.p("// Export%sOn is Export%s on an object server that may not have its", n, n)
	b.p("// connection yet, so that objects exist before the first message is read.")
	b.p("func Export%sOn(s *dbusrt.Server, path dbus.ObjectPath, srv %sServer, props %s) (*%sObject, error) {", n, n, pt, n)
	b.p("\te, err := s.Export(path, %sInterfaceFor(srv), map[string]any{", lowerFirst(n))
	for _, p := range props {
		b.p("\t\t%s%s: props.%s,", q, constName(n, p), goIdent(p.Name))
	}
	b.p("\t})")
	b.p("\tif err != nil {")
	b.p("\t\treturn nil, fmt.Errorf(\"export %%s on %%s: %%w\", %s%sInterface, path, err)", q, n)
	b.p("\t}")
	b.p("\treturn &%sObject{e: e}, nil", n)
	b.p("}")
	b.p("")
	b.p("// Path returns the object path.")
	b.p("func (o *%sObject) Path() dbus.ObjectPath { return o.e.Path() }", n)
	b.p("")
	b.p("// Conn returns the connection the object is served on.")
	b.p("func (o *%sObject) Conn() *dbus.Conn { return o.e.Conn() }", n)
	b.p("")
	b.p("// Unexport stops serving the object; later calls get UnknownObject.")
	b.p("func (o *%sObject) Unexport() { o.e.Unexport() }", n)
	b.p("")
	b.p("// Export returns the object's dbusrt export, for what the typed methods")
	b.p("// do not cover (dbusrt.Export.QueueProperty).")
	b.p("func (o *%sObject) Export() *dbusrt.Export { return o.e }", n)
	b.p("")
	for _, p := range props {
		typ := t.goType(p.Type)
		id := goIdent(p.Name)
		b.p("// %s returns the current value of property %s.", id, p.Name)
		b.p("func (o *%sObject) %s() (v %s) {", n, id, typ)
		b.p("\t_ = dbusrt.Decode([]any{o.e.Property(%s%s).Value()}, &v)", q, constName(n, p))
		b.p("\treturn v")
		b.p("}")
		b.p("")
		b.p("// Set%s changes property %s, emitting PropertiesChanged as its", id, p.Name)
		b.p("// EmitsChangedSignal annotation (%q) says when the value differs.", orDefault(p.Annotation("org.freedesktop.DBus.Property.EmitsChangedSignal"), "true"))
		b.p("func (o *%sObject) Set%s(v %s) error { return o.e.SetProperty(%s%s, v) }", n, id, typ, q, constName(n, p))
		b.p("")
	}
}

// emitters writes the functions that send an interface's signals.
func (g *goGen) emitters(b *buf, i *Interface, n string) {
	q := g.q(i)
	for _, m := range i.Signals() {
		id := goIdent(m.Name)
		t := q + n + id + "Signal"
		body := lowerFirst(n) + id + "Body"
		b.p("func %s(s *%s) []any {", body, t)
		if len(m.Args) == 0 {
			b.p("\treturn nil")
		} else {
			b.p("\treturn []any{%s}", strings.Join(fixedList("dbusrt.FixVariants", m.Args, func(a string) string { return "s." + fieldName(a) }), ", "))
		}
		b.p("}")
		b.p("")
		b.p("// Emit%s broadcasts %s from the object.", id, m.Name)
		b.p("func (o *%sObject) Emit%s(s %s) error { return o.e.Emit(%s%s, %s(&s)...) }", n, id, t, q, constName(n, m), body)
		b.p("")
		b.p("// Emit%sTo sends %s from the object to one destination only.", id, m.Name)
		b.p("func (o *%sObject) Emit%sTo(dest string, s %s) error { return o.e.EmitTo(dest, %s%s, %s(&s)...) }", n, id, t, q, constName(n, m), body)
		b.p("")
		b.p("// Emit%s%s sends %s from path on conn without an exported object;", n, id, m.Name)
		b.p("// dest \"\" broadcasts.")
		b.p("func Emit%s%s(conn *dbus.Conn, dest string, path dbus.ObjectPath, s %s) error {", n, id, t)
		b.p("\treturn dbusrt.EmitTo(conn, dest, path, %s%sInterface, %s%s, %s(&s)...)", q, n, q, constName(n, m), body)
		b.p("}")
		b.p("")
	}
}

// clientType writes a client's struct, constructor and accessors (after
// its doc comment, which the caller writes).
func clientType(b *buf, i *Interface, n string) {
	b.p("type %sClient struct {", n)
	b.p("\tconn *dbus.Conn")
	b.p("\tobj  dbus.BusObject")
	b.p("\tdest string")
	b.p("\tpath dbus.ObjectPath")
	b.p("}")
	b.p("")
	b.p("// New%sClient returns a client for the %s object at path of dest.", n, i.Name)
	b.p("// dest must be a valid bus name even on peer-to-peer connections.")
	b.p("func New%sClient(conn *dbus.Conn, dest string, path dbus.ObjectPath) *%sClient {", n, n)
	b.p("\treturn &%sClient{conn: conn, obj: conn.Object(dest, path), dest: dest, path: path}", n)
	b.p("}")
	b.p("")
	b.p("// Path returns the remote object path.")
	b.p("func (c *%sClient) Path() dbus.ObjectPath { return c.path }", n)
	b.p("")
	b.p("// Conn returns the connection the client uses.")
	b.p("func (c *%sClient) Conn() *dbus.Conn { return c.conn }", n)
	b.p("")
	b.p("// Destination returns the bus name calls are addressed to.")
	b.p("func (c *%sClient) Destination() string { return c.dest }", n)
	b.p("")
}

// pubClient writes the public client of an interface.
func (g *goGen) pubClient(b *buf, i *Interface, n string) {
	t := g.types
	b.p("// %sClient calls %s on one remote object. Its methods may be", n, i.Name)
	b.p("// called from any goroutine; error replies are returned as *Error.")
	clientType(b, i, n)
	for _, m := range i.Methods() {
		in, out := m.In(), m.Out()
		id := goIdent(m.Name)
		comment(b, "", fmt.Sprintf("%s calls %s.%s: %s", id, i.Name, m.Name, sentence(m.Summary)), joinDoc("", m.Doc, argDocs(m.Args)))
		b.p("func (c *%sClient) %s(ctx context.Context%s) %s {", n, id, prefixComma(params(t, in)), results(t, out))
		args := strings.Join(fixedList("FixVariants", in, paramName), ", ")
		if len(out) == 0 {
			b.p("\t_, err = call(ctx, c.obj, %sInterface+\".\"+%s%s)", n, constName(n, m), prefixComma(args))
			b.p("\treturn err")
			b.p("}")
			b.p("")
			continue
		}
		b.p("\tconst method = %sInterface + \".\" + %s", n, constName(n, m))
		b.p("\tbody, err := call(ctx, c.obj, method%s)", prefixComma(args))
		b.p("\tif err != nil {")
		b.p("\t\treturn")
		b.p("\t}")
		ptrs := strings.Join(names(out, func(s string) string { return "&" + paramName(s) }), ", ")
		b.p("\terr = decodeReply(method, body, %s)", ptrs)
		b.p("\treturn")
		b.p("}")
		b.p("")
	}
	props := i.Properties()
	for _, p := range props {
		id := goIdent(p.Name)
		comment(b, "", fmt.Sprintf("Get%s reads property %s: %s", id, p.Name, sentence(p.Summary)), p.Doc)
		b.p("func (c *%sClient) Get%s(ctx context.Context) (v %s, err error) {", n, id, t.goType(p.Type))
		b.p("\terr = getProperty(ctx, c.obj, %sInterface, %s, &v)", n, constName(n, p))
		b.p("\treturn")
		b.p("}")
		b.p("")
	}
	if len(props) > 0 { // else nothing to read or to watch
		g.pubProps(b, i, n)
	}
	for _, m := range i.Signals() {
		id := goIdent(m.Name)
		st := n + id + "Signal"
		b.p("// On%s calls fn for every %s signal of the object, in arrival order,", id, m.Name)
		b.p("// until the subscription is closed.")
		b.p("func (c *%sClient) On%s(ctx context.Context, fn func(*%s)) (*Subscription, error) {", n, id, st)
		b.p("\tm := Match{Sender: c.dest, Path: c.path, Interface: %sInterface, Member: %s}", n, constName(n, m))
		b.p("\treturn Subscribe(ctx, c.conn, m, func(sig *dbus.Signal) {")
		b.p("\t\tif s, err := Parse%s%s(sig); err == nil {", n, id)
		b.p("\t\t\tfn(s)")
		b.p("\t\t}")
		b.p("\t})")
		b.p("}")
		b.p("")
	}
}

// pubProps writes the public client's Properties, the typed
// PropertiesChanged and OnPropertiesChanged.
func (g *goGen) pubProps(b *buf, i *Interface, n string) {
	t := g.types
	props := i.Properties()
	b.p("// Properties reads the properties of %s at once (GetAll). A property", i.Name)
	b.p("// the reply leaves out, as it does the explicit ones, keeps its zero value.")
	b.p("func (c *%sClient) Properties(ctx context.Context) (*%sProperties, error) {", n, n)
	b.p("\tall, err := getAllProperties(ctx, c.obj, %sInterface)", n)
	b.p("\tif err != nil {")
	b.p("\t\treturn nil, err")
	b.p("\t}")
	b.p("\tp := &%sProperties{}", n)
	for _, pr := range props {
		b.p("\tif v, ok := all[%s]; ok {", constName(n, pr))
		b.p("\t\tif err := decode([]any{v.Value()}, &p.%s); err != nil {", goIdent(pr.Name))
		b.p("\t\t\treturn nil, fmt.Errorf(\"property %s: %%w\", err)", pr.Name)
		b.p("\t\t}")
		b.p("\t}")
	}
	b.p("\treturn p, nil")
	b.p("}")
	b.p("")

	pc := n + "PropertiesChanged"
	b.p("// %s is a PropertiesChanged signal of %s. Each", pc, i.Name)
	b.p("// property has a method that returns its new value and whether the signal")
	b.p("// carries it.")
	b.p("type %s struct{ PropertiesChanged }", pc)
	b.p("")
	for _, p := range props {
		id := goIdent(p.Name)
		b.p("// %s returns the new value of property %s, if the signal carries it.", id, p.Name)
		b.p("func (p *%s) %s() (v %s, ok bool) {", pc, id, t.goType(p.Type))
		b.p("\tok = p.value(%s, &v)", constName(n, p))
		b.p("\treturn")
		b.p("}")
		b.p("")
	}
	b.p("// OnPropertiesChanged calls fn for every PropertiesChanged of %s on", i.Name)
	b.p("// the object, until the subscription is closed.")
	b.p("func (c *%sClient) OnPropertiesChanged(ctx context.Context, fn func(*%s)) (*Subscription, error) {", n, pc)
	b.p("\treturn SubscribePropertiesChanged(ctx, c.conn, c.dest, c.path, %sInterface, func(p *PropertiesChanged) {", n)
	b.p("\t\tfn(&%s{*p})", pc)
	b.p("\t})")
	b.p("}")
	b.p("")
}

// rtClient writes the godbus client of an internal interface, on
// dbusrt.Invoke (which releases an ordered caller's turn once the call is
// on the wire).
func (g *goGen) rtClient(b *buf, i *Interface, n string) {
	t := g.apiTypes
	b.p("// %sClient calls %s on one remote object.", n, i.Name)
	clientType(b, i, n)
	for _, m := range i.Methods() {
		in, out := m.In(), m.Out()
		id := goIdent(m.Name)
		comment(b, "", fmt.Sprintf("%s calls %s.%s: %s", id, i.Name, m.Name, sentence(m.Summary)), "")
		b.p("func (c *%sClient) %s(ctx context.Context%s) %s {", n, id, prefixComma(params(t, in)), results(t, out))
		args := strings.Join(fixedList("dbusrt.FixVariants", in, paramName), ", ")
		b.p("\tbody, err := dbusrt.Invoke(ctx, c.obj, %sInterface, %s%s)", n, constName(n, m), prefixComma(args))
		b.p("\tif err != nil {")
		b.p("\t\treturn")
		b.p("\t}")
		ptrs := strings.Join(names(out, func(s string) string { return "&" + paramName(s) }), ", ")
		b.p("\terr = dbusrt.Decode(body%s)", prefixComma(ptrs))
		b.p("\treturn")
		b.p("}")
		b.p("")
	}
	props := i.Properties()
	for _, p := range props {
		id := goIdent(p.Name)
		b.p("// Get%s reads property %s.", id, p.Name)
		b.p("func (c *%sClient) Get%s(ctx context.Context) (v %s, err error) {", n, id, t.goType(p.Type))
		b.p("\tvar raw dbus.Variant")
		b.p("\tcall := c.obj.CallWithContext(ctx, dbusrt.PropertiesInterface+\".Get\", 0, %sInterface, %s)", n, constName(n, p))
		b.p("\tif call.Err != nil {")
		b.p("\t\treturn v, call.Err")
		b.p("\t}")
		b.p("\tif err = dbusrt.Decode(call.Body, &raw); err != nil {")
		b.p("\t\treturn v, err")
		b.p("\t}")
		b.p("\terr = dbusrt.Decode([]any{raw.Value()}, &v)")
		b.p("\treturn v, err")
		b.p("}")
		b.p("")
	}
	b.p("// Properties reads all properties of %s at once.", i.Name)
	b.p("func (c *%sClient) Properties(ctx context.Context) (*%sProperties, error) {", n, n)
	b.p("\tvar all map[string]dbus.Variant")
	b.p("\tcall := c.obj.CallWithContext(ctx, dbusrt.PropertiesInterface+\".GetAll\", 0, %sInterface)", n)
	b.p("\tif call.Err != nil {")
	b.p("\t\treturn nil, call.Err")
	b.p("\t}")
	b.p("\tif err := dbusrt.Decode(call.Body, &all); err != nil {")
	b.p("\t\treturn nil, err")
	b.p("\t}")
	b.p("\tp := &%sProperties{}", n)
	for _, pr := range props {
		b.p("\tif v, ok := all[%s]; ok {", constName(n, pr))
		b.p("\t\tif err := dbusrt.Decode([]any{v.Value()}, &p.%s); err != nil {", goIdent(pr.Name))
		b.p("\t\t\treturn nil, fmt.Errorf(\"property %s: %%w\", err)", pr.Name)
		b.p("\t\t}")
		b.p("\t}")
	}
	b.p("\treturn p, nil")
	b.p("}")
	b.p("")
	b.p("// OnPropertiesChanged calls fn for every PropertiesChanged of %s on", i.Name)
	b.p("// the object, until the subscription is closed.")
	b.p("func (c *%sClient) OnPropertiesChanged(ctx context.Context, fn func(*dbusrt.PropertiesChanged)) (*dbusrt.Subscription, error) {", n)
	b.p("\treturn dbusrt.SubscribePropertiesChanged(ctx, c.conn, c.dest, c.path, %sInterface, fn)", n)
	b.p("}")
	b.p("")
	for _, m := range i.Signals() {
		id := goIdent(m.Name)
		st := n + id + "Signal"
		b.p("// On%s calls fn for every %s signal of the object, in arrival order,", id, m.Name)
		b.p("// until the subscription is closed. Works on bus and peer connections.")
		b.p("func (c *%sClient) On%s(ctx context.Context, fn func(*%s)) (*dbusrt.Subscription, error) {", n, id, st)
		b.p("\tm := dbusrt.Match{Sender: c.dest, Path: c.path, Interface: %sInterface, Member: %s}", n, constName(n, m))
		b.p("\treturn dbusrt.Subscribe(ctx, c.conn, m, func(sig *dbus.Signal) {")
		b.p("\t\tif s, err := Parse%s%s(sig); err == nil {", n, id)
		b.p("\t\t\tfn(s)")
		b.p("\t\t}")
		b.p("\t})")
		b.p("}")
		b.p("")
	}
}

// typesFile writes the named struct types used by all interfaces.
func (g *goGen) typesFile(sources []string) ([]byte, error) {
	var b buf
	header(&b, strings.Join(sources, ", "))
	b.p("package %s", g.pubPkg)
	b.p("")
	b.p("import \"github.com/godbus/dbus/v5\"")
	b.p("")
	b.p("var _ dbus.Variant")
	b.p("")
	for _, sig := range g.types.structs() {
		s := g.types.used[sig]
		ft := g.types.fieldTypes(sig)
		b.p("// %s %s", s.Name, s.Doc)
		b.p("// D-Bus signature %s.", sig)
		b.p("type %s struct {", s.Name)
		for k, f := range s.Fields {
			if s.Docs[k] != "" {
				b.p("\t%s %s // %s", f, ft[k], s.Docs[k])
			} else {
				b.p("\t%s %s", f, ft[k])
			}
		}
		b.p("}")
		b.p("")
	}
	return gofmt("types", &b)
}

// errorsFile writes a name constant and a sentinel for every error the IDL
// documents (@error), next to the standard ones of the runtime.
func (g *goGen) errorsFile(ifs []*Interface) ([]byte, error) {
	docs := map[string]string{}
	var errNames []string
	for _, i := range ifs {
		for _, e := range i.Errors {
			if _, dup := docs[e.Name]; !dup {
				errNames = append(errNames, e.Name)
			}
			docs[e.Name] += e.Doc
		}
	}
	sort.Strings(errNames)
	var b buf
	header(&b, "idl/*.xml")
	b.p("package %s", g.pubPkg)
	b.p("")
	b.p("// Error names the BlueChi API defines.")
	b.p("const (")
	seen := map[string]string{}
	for _, e := range errNames {
		id := lastElem(e)
		if prev, dup := seen[id]; dup || strings.Contains(runtimeTmpl, "ErrorName"+id+" ") {
			return nil, fmt.Errorf("error names %s and %s both map to Go name Err%s", e, orDefault(prev, "a standard error"), id)
		}
		seen[id] = e
		b.p("\t// ErrorName%s is %s.", id, e)
		b.p("\tErrorName%s = %q", id, e)
	}
	b.p(")")
	b.p("")
	b.p("// Sentinels of the BlueChi errors, for errors.Is.")
	b.p("var (")
	for _, e := range errNames {
		id := lastElem(e)
		b.p("\t// Err%s: %s", id, docs[e])
		b.p("\tErr%s = &Error{Name: ErrorName%s}", id, id)
	}
	b.p(")")
	return gofmt("errors", &b)
}

// runtimeFile and docFile write the package's runtime and documentation.
// The runtime's names of the message bus and of the Properties interface
// come from the interfaces of the IDL (the client-only ones of idl/systemd).
func (g *goGen) runtimeFile(ifs []*Interface) ([]byte, error) {
	bus, err := findMembers(ifs, busIface, "GetNameOwner", "NameOwnerChanged")
	if err != nil {
		return nil, err
	}
	props, err := findMembers(ifs, propertiesIface, "Get", "GetAll", "PropertiesChanged")
	if err != nil {
		return nil, err
	}
	var b buf
	header(&b, "tools/dbusgen/tmpl/runtime.go.tmpl")
	b.p("package %s", g.pubPkg)
	b.p("")
	b.WriteString(runtimeTmpl)
	b.p("")
	b.p("// Names of the message bus and of the standard interface every object serves.")
	b.p("const (")
	b.p("	busName             = %q", bus.Name)
	b.p("	busGetNameOwner     = busName + %q", "."+bus.member("GetNameOwner").Name)
	b.p("	busNameOwnerChanged = %q", bus.member("NameOwnerChanged").Name)
	b.p("	// busErrorNameHasNoOwner is the bus's answer to GetNameOwner of a name nobody owns.")
	b.p("	busErrorNameHasNoOwner = %q", "org.freedesktop.DBus.Error.NameHasNoOwner")
	b.p("	propertiesInterface = %q", props.Name)
	b.p("	propertiesGet       = propertiesInterface + %q", "."+props.member("Get").Name)
	b.p("	propertiesGetAll    = propertiesInterface + %q", "."+props.member("GetAll").Name)
	b.p("	propertiesChanged   = %q", props.member("PropertiesChanged").Name)
	b.p(")")
	return gofmt("runtime", &b)
}

// The standard interfaces the public package's runtime uses.
const (
	busIface        = "org.freedesktop.DBus"
	propertiesIface = "org.freedesktop.DBus.Properties"
)

// findMembers returns the interface of ifs named name, after checking that
// it declares the members named.
func findMembers(ifs []*Interface, name string, members ...string) (*Interface, error) {
	for _, i := range ifs {
		if i.Name != name {
			continue
		}
		for _, m := range members {
			if i.member(m) == nil {
				return nil, fmt.Errorf("%s: interface %s declares no member %s", i.File, name, m)
			}
		}
		return i, nil
	}
	return nil, fmt.Errorf("no interface %s in the IDL (give its file with -client-idl)", name)
}

func (g *goGen) docFile() ([]byte, error) {
	var b buf
	header(&b, "tools/dbusgen/tmpl/doc.go.tmpl")
	b.WriteString(docTmpl)
	b.p("package %s", g.pubPkg)
	return gofmt("doc", &b)
}

// registryFile lists every interface for tests and tools.
func (g *goGen) registryFile(ifs []*Interface) ([]byte, error) {
	var b buf
	header(&b, "idl/*.xml")
	b.p("package %s", g.apiPkg)
	b.p("")
	b.p("import (")
	b.p("\t\"github.com/godbus/dbus/v5\"")
	b.p("")
	b.p("\t%s %q", g.pubPkg, g.pubImport)
	b.p(")")
	b.p("")
	b.p("var _ %s.UnitInfo", g.pubPkg)
	b.p("")
	b.p("// InterfaceInfo describes one generated interface.")
	b.p("type InterfaceInfo struct {")
	b.p("\t// Name is the D-Bus interface name.")
	b.p("\tName string")
	b.p("\t// Source is the IDL file the code was generated from.")
	b.p("\tSource string")
	b.p("\t// XML is the <interface> element served by Introspect.")
	b.p("\tXML string")
	b.p("\t// ExportUnimplemented serves the interface with no methods implemented")
	b.p("\t// (for introspection tests) and returns the function that unexports it.")
	b.p("\tExportUnimplemented func(conn *dbus.Conn, path dbus.ObjectPath) (func(), error)")
	b.p("}")
	b.p("")
	b.p("// Interfaces lists every interface of the IDL, sorted by name.")
	b.p("var Interfaces = []InterfaceInfo{")
	for _, i := range ifs {
		n := g.goName(i.Name)
		q := g.q(i)
		b.p("\t{Name: %s%sInterface, Source: %q, XML: %sXML, ExportUnimplemented: func(conn *dbus.Conn, path dbus.ObjectPath) (func(), error) {", q, n, i.File, lowerFirst(n))
		b.p("\t\to, err := Export%s(conn, path, Unimplemented%sServer{}, %s%sProperties{})", n, n, q, n)
		b.p("\t\tif err != nil {")
		b.p("\t\t\treturn nil, err")
		b.p("\t\t}")
		b.p("\t\treturn o.Unexport, nil")
		b.p("\t}},")
	}
	b.p("}")
	return gofmt("registry", &b)
}
