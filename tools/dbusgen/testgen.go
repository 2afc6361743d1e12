// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"go/format"
	"strings"
)

// testGen writes a round-trip test for every interface: an echo server that
// records what it received and answers fixed sample values, and a client that
// calls every method, reads every property and receives every signal. The
// test package supplies newRoundTripEnvs, rtEnv, recv and checkSame.
type testGen struct {
	g         *goGen
	pubTypes  *typeMapper // struct types qualified with the public package
	apiImport string      // import path of the daemons' package
}

// sample returns a Go expression of the type of sig; salt varies values.
func (t *testGen) sample(sig string, salt int) string {
	ts, err := parseSig(sig)
	if err != nil || len(ts) != 1 {
		panic(fmt.Sprintf("bad signature %q", sig))
	}
	return t.sampleOf(ts[0], salt)
}

func (t *testGen) sampleOf(s *sigType, salt int) string {
	switch s.code {
	case 'y':
		return fmt.Sprintf("byte(%d)", 7+salt)
	case 'b':
		return fmt.Sprintf("%v", salt%2 == 0)
	case 'n':
		return fmt.Sprintf("int16(%d)", -3-salt)
	case 'q':
		return fmt.Sprintf("uint16(%d)", 65000+salt)
	case 'i':
		return fmt.Sprintf("int32(%d)", -42-salt)
	case 'u':
		return fmt.Sprintf("uint32(%d)", 4000000000+salt)
	case 'x':
		return fmt.Sprintf("int64(%d)", -(1<<40)-salt)
	case 't':
		return fmt.Sprintf("uint64(%d)", (1<<60)+salt)
	case 'd':
		return fmt.Sprintf("float64(%d.5)", salt)
	case 's':
		return fmt.Sprintf("%q", fmt.Sprintf("str%d-ü", salt))
	case 'o':
		return fmt.Sprintf("dbus.ObjectPath(%q)", fmt.Sprintf("/sample/p%d", salt))
	case 'g':
		return "dbus.ParseSignatureMust(\"a{sv}\")"
	case 'h':
		return "dbus.UnixFD(0)"
	case 'v':
		// A struct-valued variant: the case godbus gets wrong without care.
		return fmt.Sprintf("dbus.MakeVariantWithSignature([]any{%q, uint32(%d)}, dbus.ParseSignatureMust(\"(su)\"))", fmt.Sprintf("v%d", salt), salt)
	case 'a':
		typ := t.pubTypes.of(s)
		return fmt.Sprintf("%s{%s, %s}", typ, t.elem(s.elem, salt+1), t.elem(s.elem, salt+2))
	case '{':
		typ := t.pubTypes.of(s)
		if s.key.code == 's' && s.elem.code == 'v' {
			return fmt.Sprintf(`%s{
				"Text": dbus.MakeVariant(%q),
				"Number": dbus.MakeVariant(uint64(%d)),
				"List": dbus.MakeVariant([]string{"a", "b"}),
				"Pair": dbus.MakeVariantWithSignature([]any{"x", "y"}, dbus.ParseSignatureMust("(ss)")),
				"ExecStart": dbus.MakeVariantWithSignature([]any{[]any{"/bin/true", []string{"/bin/true", "-x"}, false}}, dbus.ParseSignatureMust("a(sasb)")),
				"Nested": dbus.MakeVariant(dbus.MakeVariant(int32(%d))),
			}`, typ, fmt.Sprintf("t%d", salt), salt, -salt)
		}
		return fmt.Sprintf("%s{%s: %s, %s: %s}", typ, t.sampleOf(s.key, salt+1), t.elem(s.elem, salt+1),
			t.sampleOf(s.key, salt+2), t.elem(s.elem, salt+2))
	case '(':
		spec := t.pubTypes.structOf(s)
		var parts []string
		for i, f := range s.field {
			parts = append(parts, fmt.Sprintf("%s: %s", spec.Fields[i], t.sampleOf(f, salt+i)))
		}
		return fmt.Sprintf("%s{%s}", t.pubTypes.of(s), strings.Join(parts, ", "))
	}
	panic("unreachable")
}

// elem renders an element inside a composite literal (type elided for structs).
func (t *testGen) elem(s *sigType, salt int) string {
	return t.sampleOf(s, salt)
}

func salt(i int, name string) int { return i*10 + len(name) }

func (t *testGen) file(ifs []*Interface) ([]byte, error) {
	var b buf
	header(&b, "idl/*.xml")
	b.p("package apitest")
	b.p("")
	b.p("import (")
	b.p("\t\"context\"")
	b.p("\t\"errors\"")
	b.p("\t\"testing\"")
	b.p("")
	b.p("\t\"github.com/godbus/dbus/v5\"")
	b.p("")
	b.p("\t%s %q", t.g.pubPkg, t.g.pubImport)
	b.p("\t%q", t.apiImport)
	b.p("\t%q", t.g.rtImport)
	b.p(")")
	b.p("")
	b.p("var (")
	b.p("\t_ = errors.New")
	b.p("\t_ %s.UnitInfo", t.g.pubPkg)
	b.p(")")
	b.p("")
	b.p("// TestRoundTrip calls every method, reads every property and receives every")
	b.p("// signal of every interface through the generated client and server, on a")
	b.p("// bus connection and on a peer-to-peer connection.")
	b.p("func TestRoundTrip(t *testing.T) {")
	b.p("\tfor _, env := range newRoundTripEnvs(t) {")
	b.p("\t\tt.Run(env.name, func(t *testing.T) {")
	for _, i := range ifs {
		n := t.g.goName(i.Name)
		b.p("\t\t\tt.Run(%q, func(t *testing.T) { roundTrip%s(t, env) })", n, n)
	}
	b.p("\t\t})")
	b.p("\t}")
	b.p("}")
	b.p("")
	for _, i := range ifs {
		t.iface(&b, i)
	}
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("round-trip test does not parse: %v\n%s", err, b.String())
	}
	return out, nil
}

func (t *testGen) iface(b *buf, i *Interface) {
	n := t.g.goName(i.Name)
	api := t.g.apiPkg + "."
	// q qualifies the names of the package that holds i's client side.
	q := api
	if t.g.public(i) {
		q = t.g.pubPkg + "."
	}
	echo := "echo" + n
	b.p("type %s struct {", echo)
	b.p("\t%sUnimplemented%sServer", api, n)
	b.p("\tgot chan []any")
	b.p("}")
	b.p("")
	for _, m := range i.Methods() {
		in, out := m.In(), m.Out()
		var ps []string
		for _, a := range in {
			ps = append(ps, paramName(a.Name)+" "+t.pubTypes.goType(a.Type))
		}
		var rs []string
		for _, a := range out {
			rs = append(rs, paramName(a.Name)+" "+t.pubTypes.goType(a.Type))
		}
		rs = append(rs, "err error")
		b.p("func (s *%s) %s(ctx context.Context%s) (%s) {", echo, goIdent(m.Name), prefixComma(strings.Join(ps, ", ")), strings.Join(rs, ", "))
		b.p("\tif dbusrt.ConnFrom(ctx) == nil {")
		b.p("\t\terr = errors.New(\"no call in context\")")
		b.p("\t\treturn")
		b.p("\t}")
		args := append([]string{"dbusrt.SenderFrom(ctx)"}, names(in, paramName)...)
		b.p("\ts.got <- []any{%s}", strings.Join(args, ", "))
		var outs []string
		for k, a := range out {
			outs = append(outs, t.sample(a.Type, salt(k+5, a.Name)))
		}
		outs = append(outs, "nil")
		b.p("\treturn %s", strings.Join(outs, ", "))
		b.p("}")
		b.p("")
	}

	props := i.Properties()
	b.p("func roundTrip%s(t *testing.T, env *rtEnv) {", n)
	b.p("\tctx, cancel := context.WithCancel(context.Background())")
	b.p("\tdefer cancel()")
	b.p("\tsrv := &%s{got: make(chan []any, 1)}", echo)
	b.p("\tpath := dbus.ObjectPath(\"/test/%s\")", n)
	b.p("\tprops := %s%sProperties{", q, n)
	for k, p := range props {
		b.p("\t\t%s: %s,", goIdent(p.Name), t.sample(p.Type, salt(k, p.Name)))
	}
	b.p("\t}")
	b.p("\tobj, err := %sExport%s(env.server, path, srv, props)", api, n)
	b.p("\tif err != nil {")
	b.p("\t\tt.Fatal(err)")
	b.p("\t}")
	b.p("\tdefer obj.Unexport()")
	b.p("\tc := %sNew%sClient(env.client, env.dest, path)", q, n)
	b.p("\t_ = c")
	for _, m := range i.Methods() {
		in, out := m.In(), m.Out()
		b.p("\tt.Run(%q, func(t *testing.T) {", "Method/"+m.Name)
		var ins []string
		for k, a := range in {
			ins = append(ins, t.sample(a.Type, salt(k, a.Name)))
		}
		results := append(names(out, func(s string) string { return "got" + fieldName(s) }), "err")
		b.p("\t\t%s := c.%s(ctx%s)", strings.Join(results, ", "), goIdent(m.Name), prefixComma(strings.Join(ins, ", ")))
		b.p("\t\tif err != nil {")
		b.p("\t\t\tt.Fatal(err)")
		b.p("\t\t}")
		b.p("\t\tcheckSame(t, \"arguments\", recv(t, srv.got), []any{%s})", strings.Join(append([]string{"env.clientName"}, ins...), ", "))
		for k, a := range out {
			b.p("\t\tcheckSame(t, %q, got%s, %s)", a.Name, fieldName(a.Name), t.sample(a.Type, salt(k+5, a.Name)))
		}
		b.p("\t})")
	}
	if len(props) > 0 {
		b.p("\tt.Run(\"Properties\", func(t *testing.T) {")
		for _, p := range props {
			id := goIdent(p.Name)
			b.p("\t\tif v, err := c.Get%s(ctx); err != nil {", id)
			b.p("\t\t\tt.Fatal(err)")
			b.p("\t\t} else {")
			b.p("\t\t\tcheckSame(t, %q, v, props.%s)", p.Name, id)
			b.p("\t\t}")
		}
		b.p("\t\tall, err := c.Properties(ctx)")
		b.p("\t\tif err != nil {")
		b.p("\t\t\tt.Fatal(err)")
		b.p("\t\t}")
		// GetAll leaves the explicit properties out; Get read them above.
		b.p("\t\twantAll := props")
		for _, p := range props {
			if p.Explicit() {
				b.p("\t\twantAll.%s = *new(%s)", goIdent(p.Name), t.pubTypes.goType(p.Type))
			}
		}
		b.p("\t\tcheckSame(t, \"Properties\", *all, wantAll)")
		b.p("\t})")
		// The public clients report typed PropertiesChanged values.
		pc := "*dbusrt.PropertiesChanged"
		if t.g.public(i) {
			pc = "*" + q + n + "PropertiesChanged"
		}
		b.p("\tt.Run(\"PropertiesChanged\", func(t *testing.T) {")
		b.p("\t\tchanged := make(chan %s, 16)", pc)
		b.p("\t\tsub, err := c.OnPropertiesChanged(ctx, func(p %s) { changed <- p })", pc)
		b.p("\t\tif err != nil {")
		b.p("\t\t\tt.Fatal(err)")
		b.p("\t\t}")
		b.p("\t\tdefer sub.Close()")
		for k, p := range props {
			id := goIdent(p.Name)
			alt := t.sample(p.Type, salt(k, p.Name)+100)
			b.p("\t\tif err := obj.Set%s(%s); err != nil {", id, alt)
			b.p("\t\t\tt.Fatal(err)")
			b.p("\t\t}")
			b.p("\t\tcheckSame(t, \"local %s\", obj.%s(), %s)", p.Name, id, alt)
			b.p("\t\tif v, err := c.Get%s(ctx); err != nil {", id)
			b.p("\t\t\tt.Fatal(err)")
			b.p("\t\t} else {")
			b.p("\t\t\tcheckSame(t, \"changed %s\", v, %s)", p.Name, alt)
			b.p("\t\t}")
			switch orDefault(p.Annotation("org.freedesktop.DBus.Property.EmitsChangedSignal"), "true") {
			case "true":
				b.p("\t\tif p := recv(t, changed); p.Interface != %s%sInterface || len(p.Changed) != 1 {", q, n)
				b.p("\t\t\tt.Fatalf(\"PropertiesChanged for %s: %%+v\", p)", p.Name)
				b.p("\t\t} else {")
				b.p("\t\t\tcheckSame(t, \"signalled %s\", p.Changed[%q].Value(), %s)", p.Name, p.Name, alt)
				if t.g.public(i) {
					b.p("\t\t\tv, ok := p.%s()", id)
					b.p("\t\t\tcheckSame(t, \"typed %s\", []any{v, ok}, []any{%s, true})", p.Name, alt)
				}
				b.p("\t\t}")
			case "invalidates":
				b.p("\t\tif p := recv(t, changed); len(p.Invalidated) != 1 || p.Invalidated[0] != %q {", p.Name)
				b.p("\t\t\tt.Fatalf(\"PropertiesChanged for %s: %%+v\", p)", p.Name)
				b.p("\t\t}")
			}
		}
		b.p("\t\tselect {")
		b.p("\t\tcase p := <-changed:")
		b.p("\t\t\tt.Fatalf(\"unexpected PropertiesChanged %%+v\", p)")
		b.p("\t\tdefault:")
		b.p("\t\t}")
		b.p("\t})")
	}
	for _, m := range i.Signals() {
		id := goIdent(m.Name)
		st := q + n + id + "Signal"
		b.p("\tt.Run(%q, func(t *testing.T) {", "Signal/"+m.Name)
		b.p("\t\tch := make(chan *%s, 4)", st)
		b.p("\t\tsub, err := c.On%s(ctx, func(s *%s) { ch <- s })", id, st)
		b.p("\t\tif err != nil {")
		b.p("\t\t\tt.Fatal(err)")
		b.p("\t\t}")
		b.p("\t\tdefer sub.Close()")
		var fields []string
		for k, a := range m.Args {
			fields = append(fields, fmt.Sprintf("%s: %s", fieldName(a.Name), t.sample(a.Type, salt(k, a.Name))))
		}
		b.p("\t\twant := %s{%s}", st, strings.Join(fields, ", "))
		b.p("\t\tif err := obj.Emit%s(want); err != nil {", id)
		b.p("\t\t\tt.Fatal(err)")
		b.p("\t\t}")
		b.p("\t\tcheckSame(t, \"broadcast\", *recv(t, ch), want)")
		b.p("\t\tif err := obj.Emit%sTo(env.clientName, want); err != nil {", id)
		b.p("\t\t\tt.Fatal(err)")
		b.p("\t\t}")
		b.p("\t\tcheckSame(t, \"unicast\", *recv(t, ch), want)")
		b.p("\t})")
	}
	b.p("}")
	b.p("")
}
