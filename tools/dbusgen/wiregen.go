// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"sort"
	"strings"
)

// The wire bindings (notes/wire-api.md): for every internal interface, and
// for the systemd interfaces the agent calls, code that serves and calls
// through internal/wireconn. Bodies without variants are encoded and
// decoded with internal/wire by generated code; bodies with variants go
// through dbusrt's codec bridge (EncodeBody, DecodeBody).

const (
	wireImport     = "github.com/bluechi-go/bluechi/internal/wire"
	wireconnImport = "github.com/bluechi-go/bluechi/internal/wireconn"
)

// wireLocals are the names the generated wire code uses next to the
// parameters of a member; an argument whose Go name is one of them is
// refused.
var wireLocals = map[string]bool{"msg": true, "rd": true, "wb": true, "bigEndian": true, "vals": true,
	"done": true, "res": true, "ch": true, "call": true, "c": true, "ctx": true, "err": true, "srv": true,
	"body": true, "s": true, "conn": true, "path": true, "dest": true}

// wireFile writes the wire bindings of one interface; server is false for
// the client-only interfaces (systemd's).
func (g *goGen) wireFile(i *Interface, server bool) ([]byte, error) {
	n := g.goName(i.Name)
	if server && len(i.Properties()) > 0 {
		return nil, fmt.Errorf("%s: interface %s declares properties, which a wireconn connection does not serve", i.File, i.Name)
	}
	for _, m := range i.Members {
		for _, a := range m.Args {
			if wireLocals[paramName(a.Name)] {
				return nil, fmt.Errorf("%s: %s: argument %s clashes with a name of the generated wire code", i.File, m.Name, a.Name)
			}
		}
	}
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
	if !server && g.namesPkg != "" {
		b.p("\t%q", g.namesImport)
	}
	b.p("\t%q", wireImport)
	b.p("\t%q", wireconnImport)
	b.p(")")
	b.p("")
	b.p("var (")
	b.p("\t_ = context.Background")
	b.p("\t_ = fmt.Errorf")
	b.p("\t_ dbus.Variant")
	b.p("\t_ %s.UnitInfo", g.pubPkg)
	b.p("\t_ = dbusrt.EncodeBody")
	b.p(")")
	b.p("")
	if !server {
		// The client-only interfaces have no other file: their names
		// and signal types live here.
		g.names(&b, i, n, "dbusrt.EscapeLabel", g.namesPkg)
		g.signalTypes(&b, i, n, g.apiTypes, "dbusrt.Decode")
		g.wireSigs(&b, i, n, g.namesPkg)
	} else {
		g.wireSigs(&b, i, n, "")
	}
	for _, m := range i.Methods() {
		g.wireCodec(&b, n+goIdent(m.Name)+"In", n+goIdent(m.Name)+"InSig", m.In())
		g.wireCodec(&b, n+goIdent(m.Name)+"Out", n+goIdent(m.Name)+"OutSig", m.Out())
	}
	for _, m := range i.Signals() {
		g.wireCodec(&b, n+goIdent(m.Name), n+goIdent(m.Name)+"Sig", m.Args)
	}
	if server {
		g.wireServer(&b, i, n)
	}
	g.wireClient(&b, i, n)
	g.wireSignals(&b, i, n)
	return gofmt(i.File+" (wire)", &b)
}

// wireSigs writes the signature constants; with from set, as in
// nameConsts, their values come from the leaf package.
func (g *goGen) wireSigs(b *buf, i *Interface, n, from string) {
	value := func(name, v string) string { return constValue(from, name, v) }
	b.p("// Signatures of the members of %s, for code that reads or writes", i.Name)
	b.p("// their bodies itself.")
	b.p("const (")
	for _, m := range i.Members {
		id := n + goIdent(m.Name)
		switch m.Kind {
		case "method":
			b.p("\t// %sInSig is the signature of %s's arguments.", id, m.Name)
			b.p("\t%sInSig = %s", id, value(id+"InSig", Sig(m.In())))
			b.p("\t// %sOutSig is the signature of %s's reply.", id, m.Name)
			b.p("\t%sOutSig = %s", id, value(id+"OutSig", Sig(m.Out())))
		case "signal":
			b.p("\t// %sSig is the signature of signal %s.", id, m.Name)
			b.p("\t%sSig = %s", id, value(id+"Sig", Sig(m.Args)))
		}
	}
	b.p(")")
	b.p("")
}

// namesFile writes the leaf package of the client-only interfaces' names
// and signatures (-names): it imports nothing, so that the packages the
// daemons' package is built on (wireconn, dbusrt) can use the names of
// the standard interfaces they serve.
func (g *goGen) namesFile(ifs []*Interface, pkg string) ([]byte, error) {
	var b buf
	header(&b, "idl/systemd/*.xml")
	b.p("// Package %s holds the names and signatures of the interfaces in", pkg)
	b.p("// idl/systemd: the message bus's own, the standard ones every object")
	b.p("// serves, and the part of systemd's API the agent calls. It imports")
	b.p("// nothing, so that the packages below internal/daemonapi can use them;")
	b.p("// internal/daemonapi's constants of the same names take their values")
	b.p("// from here.")
	b.p("package %s", pkg)
	b.p("")
	for _, i := range ifs {
		n := g.goName(i.Name)
		g.nameConsts(&b, i, n, "", "")
		g.wireSigs(&b, i, n, "")
		b.p("// Introspection XML of %s and of each of its members, as an", i.Name)
		b.p("// object that serves it describes them.")
		b.p("const (")
		b.p("\t// %sXML describes the whole interface.", n)
		b.p("\t%sXML = %q", n, i.XML())
		for _, m := range i.Members {
			id := n + goIdent(m.Name) + "XML"
			b.p("\t// %s describes %s %s.", id, m.Kind, m.Name)
			b.p("\t%s = %q", id, m.XML())
		}
		b.p(")")
		b.p("")
	}
	return gofmt("names package", &b)
}

// bridged reports whether args are encoded through the codec bridge
// (they hold variants, or file descriptors the generated code does not
// handle).
func bridged(args []Arg) bool {
	return strings.ContainsAny(Sig(args), "vh")
}

// wireCodec writes wireEncode<name> and wireDecode<name> for an argument
// list of signature constant sigConst.
func (g *goGen) wireCodec(b *buf, name, sigConst string, args []Arg) {
	t := g.apiTypes
	b.p("// wireEncode%s returns the body of %s.", name, sigConst)
	b.p("func wireEncode%s(%s) ([]byte, error) {", name, params(t, args))
	switch {
	case len(args) == 0:
		b.p("\treturn nil, nil")
	case bridged(args):
		b.p("\treturn dbusrt.EncodeBody(%s%s)", sigConst, prefixComma(strings.Join(fixedList("dbusrt.FixVariants", args, paramName), ", ")))
	default:
		cg := &codeGen{b: b, t: t, what: name}
		b.p("\tvar wb wire.Writer")
		for _, a := range args {
			cg.write(mustSig(a.Type), paramName(a.Name), "\t")
		}
		b.p("\treturn wb.Buf, nil")
	}
	b.p("}")
	b.p("")

	var outs []string
	for _, a := range args {
		outs = append(outs, paramName(a.Name)+" "+t.goType(a.Type))
	}
	outs = append(outs, "err error")
	b.p("// wireDecode%s reads a body of %s.", name, sigConst)
	b.p("func wireDecode%s(body []byte, bigEndian bool) (%s) {", name, strings.Join(outs, ", "))
	switch {
	case len(args) == 0:
		b.p("\tif len(body) != 0 {")
		b.p("\t\terr = fmt.Errorf(\"unexpected body of %%d bytes\", len(body))")
		b.p("\t}")
		b.p("\treturn")
	case bridged(args):
		b.p("\tvals, err := dbusrt.DecodeBody(%s, body, bigEndian)", sigConst)
		b.p("\tif err != nil {")
		b.p("\t\treturn")
		b.p("\t}")
		ptrs := names(args, func(s string) string { return "&" + paramName(s) })
		b.p("\terr = dbusrt.Decode(vals, %s)", strings.Join(ptrs, ", "))
		b.p("\treturn")
	default:
		cg := &codeGen{b: b, t: t, what: name}
		b.p("\trd := wire.NewReader(body, bigEndian)")
		for _, a := range args {
			cg.read(mustSig(a.Type), paramName(a.Name), "\t")
		}
		b.p("\terr = rd.Done()")
		b.p("\treturn")
	}
	b.p("}")
	b.p("")
}

func mustSig(s string) *sigType {
	ts, err := parseSig(s)
	if err != nil || len(ts) != 1 {
		panic(fmt.Sprintf("bad signature %q", s))
	}
	return ts[0]
}

// codeGen writes the statements that encode or decode one value.
type codeGen struct {
	b    *buf
	t    *typeMapper
	what string
	n    int // counter for temporaries
}

func (cg *codeGen) tmp(base string) string {
	cg.n++
	return fmt.Sprintf("%s%d", base, cg.n)
}

// sigAlign returns the alignment of the type t.
func sigAlign(t *sigType) int {
	switch t.code {
	case 'n', 'q':
		return 2
	case 'b', 'i', 'u', 'h', 's', 'o', 'a':
		return 4
	case 'x', 't', 'd', '(', '{':
		return 8
	}
	return 1
}

var writers = map[byte]string{'y': "Byte", 'b': "Bool", 'n': "Int16", 'q': "Uint16", 'i': "Int32", 'u': "Uint32",
	'x': "Int64", 't': "Uint64", 'd': "Double"}

// write writes statements appending expr, of type t, to wb.
func (cg *codeGen) write(t *sigType, expr, ind string) {
	b := cg.b
	switch t.code {
	case 's':
		b.p("%sif !wire.ValidString(%s) {", ind, expr)
		b.p("%s\treturn nil, fmt.Errorf(\"%s: string %%q is not valid UTF-8 without NUL\", %s)", ind, cg.what, expr)
		b.p("%s}", ind)
		b.p("%swb.String(%s)", ind, expr)
	case 'o':
		b.p("%sif !wire.ValidObjectPath(string(%s)) {", ind, expr)
		b.p("%s\treturn nil, fmt.Errorf(\"%s: %%q is not an object path\", %s)", ind, cg.what, expr)
		b.p("%s}", ind)
		b.p("%swb.ObjectPath(string(%s))", ind, expr)
	case 'g':
		b.p("%swb.Signature(%s.String())", ind, expr)
	case 'a':
		m, e := cg.tmp("arr"), cg.tmp("e")
		b.p("%s%s := wb.BeginArray(%d)", ind, m, sigAlign(t.elem))
		b.p("%sfor _, %s := range %s {", ind, e, expr)
		cg.write(t.elem, e, ind+"\t")
		b.p("%s}", ind)
		b.p("%swb.EndArray(%s)", ind, m)
	case '{':
		m, k, v := cg.tmp("arr"), cg.tmp("k"), cg.tmp("v")
		b.p("%s%s := wb.BeginArray(8)", ind, m)
		b.p("%sfor %s, %s := range %s {", ind, k, v, expr)
		b.p("%s\twb.BeginStruct()", ind)
		cg.write(t.key, k, ind+"\t")
		cg.write(t.elem, v, ind+"\t")
		b.p("%s}", ind)
		b.p("%swb.EndArray(%s)", ind, m)
	case '(':
		spec := cg.t.structOf(t)
		b.p("%swb.BeginStruct()", ind)
		for k, f := range t.field {
			cg.write(f, expr+"."+spec.Fields[k], ind)
		}
	default:
		b.p("%swb.%s(%s)", ind, writers[t.code], expr)
	}
}

// read writes statements reading a value of type t into target (an
// addressable expression) from rd, returning on error.
func (cg *codeGen) read(t *sigType, target, ind string) {
	b := cg.b
	fail := func(cond string) {
		b.p("%sif %s {", ind, cond)
		b.p("%s\treturn", ind)
		b.p("%s}", ind)
	}
	switch t.code {
	case 's':
		fail(fmt.Sprintf("%s, err = rd.String(); err != nil", target))
	case 'o':
		v := cg.tmp("p")
		b.p("%svar %s string", ind, v)
		fail(fmt.Sprintf("%s, err = rd.ObjectPath(); err != nil", v))
		b.p("%s%s = dbus.ObjectPath(%s)", ind, target, v)
	case 'g':
		v := cg.tmp("g")
		b.p("%svar %s string", ind, v)
		fail(fmt.Sprintf("%s, err = rd.Signature(); err != nil", v))
		fail(fmt.Sprintf("%s, err = dbus.ParseSignature(%s); err != nil", target, v))
	case 'a', '{':
		end, more := cg.tmp("end"), cg.tmp("more")
		b.p("%svar %s int", ind, end)
		align := 8
		if t.code == 'a' {
			align = sigAlign(t.elem)
		}
		fail(fmt.Sprintf("%s, err = rd.BeginArray(%d); err != nil", end, align))
		if t.code == '{' {
			b.p("%s%s = %s{}", ind, target, cg.t.of(t))
		}
		b.p("%sfor {", ind)
		b.p("%s\tvar %s bool", ind, more)
		in := ind + "\t"
		b.p("%sif %s, err = rd.More(%s); err != nil {", in, more, end)
		b.p("%s\treturn", in)
		b.p("%s}", in)
		b.p("%sif !%s {", in, more)
		b.p("%s\tbreak", in)
		b.p("%s}", in)
		if t.code == 'a' {
			e := cg.tmp("e")
			b.p("%svar %s %s", in, e, cg.t.of(t.elem))
			cg.read(t.elem, e, in)
			b.p("%s%s = append(%s, %s)", in, target, target, e)
		} else {
			k, v := cg.tmp("k"), cg.tmp("v")
			b.p("%sif err = rd.BeginStruct(); err != nil {", in)
			b.p("%s\treturn", in)
			b.p("%s}", in)
			b.p("%svar %s %s", in, k, cg.t.of(t.key))
			b.p("%svar %s %s", in, v, cg.t.of(t.elem))
			cg.read(t.key, k, in)
			cg.read(t.elem, v, in)
			b.p("%s%s[%s] = %s", in, target, k, v)
		}
		b.p("%s}", ind)
	case '(':
		spec := cg.t.structOf(t)
		fail("err = rd.BeginStruct(); err != nil")
		for k, f := range t.field {
			cg.read(f, target+"."+spec.Fields[k], ind)
		}
	default:
		fail(fmt.Sprintf("%s, err = rd.%s(); err != nil", target, writers[t.code]))
	}
}

// wireServer writes XWireInterface and one handler per method.
func (g *goGen) wireServer(b *buf, i *Interface, n string) {
	q := g.q(i)
	methods := i.Methods()
	var ms []string
	for _, m := range methods {
		ms = append(ms, q+constName(n, m))
	}
	b.p("// %sWireMethods lists the methods %sWireInterface serves (shared by", lowerFirst(n), n)
	b.p("// every connection's Interface).")
	b.p("var %sWireMethods = []string{%s}", lowerFirst(n), strings.Join(ms, ", "))
	b.p("")
	comment(b, "", fmt.Sprintf("%sWireInterface serves srv as %s on a wireconn connection:", n, i.Name), strings.Join([]string{
		"arguments are decoded on the reader goroutine, the handler runs through",
		"Conn.Serve (one at a time, in wire order), its results are replied unless",
		"the call carried NO_REPLY_EXPECTED and a returned error is replied with",
		"its D-Bus name (dbusrt.ErrorName; Failed for other errors). A body whose",
		"signature differs from the IDL's gets InvalidArgs without reaching srv.",
		"raw replaces the generated decoding of the members it names.",
	}, "\n"))
	b.p("func %sWireInterface(srv %sServer, raw ...wireconn.RawMethod) *wireconn.Interface {", n, n)
	b.p("\tvar rawCalls map[string]func(*wireconn.Conn, *wire.Message)")
	b.p("\tfor _, r := range raw {")
	b.p("\t\tif rawCalls == nil {")
	b.p("\t\t\trawCalls = map[string]func(*wireconn.Conn, *wire.Message){}")
	b.p("\t\t}")
	b.p("\t\trawCalls[r.Member] = r.Call")
	b.p("\t}")
	b.p("\treturn &wireconn.Interface{")
	b.p("\t\tName: %s%sInterface,", q, n)
	b.p("\t\tMethods: %sWireMethods,", lowerFirst(n))
	b.p("\t\tXML: %sXML,", lowerFirst(n))
	b.p("\t\tCall: func(c *wireconn.Conn, msg *wire.Message) {")
	b.p("\t\t\tif f := rawCalls[msg.Member]; f != nil {")
	b.p("\t\t\t\tf(c, msg)")
	b.p("\t\t\t\treturn")
	b.p("\t\t\t}")
	b.p("\t\t\tswitch msg.Member {")
	for _, m := range methods {
		b.p("\t\t\tcase %s%s:", q, constName(n, m))
		b.p("\t\t\t\twireServe%s%s(srv, c, msg)", n, goIdent(m.Name))
	}
	b.p("\t\t\tdefault:")
	b.p("\t\t\t\t_ = c.ErrorCall(wireconn.CallOf(msg), wireconn.ErrUnknownMethod, \"Unknown method '\"+msg.Member+\"'\")")
	b.p("\t\t\t}")
	b.p("\t\t},")
	b.p("\t}")
	b.p("}")
	b.p("")
	for _, m := range methods {
		id := goIdent(m.Name)
		in, out := m.In(), m.Out()
		b.p("func wireServe%s%s(srv %sServer, c *wireconn.Conn, msg *wire.Message) {", n, id, n)
		b.p("\tcall := wireconn.CallOf(msg)")
		b.p("\tif msg.Signature != %s%sInSig {", n, id)
		b.p("\t\twireBadSignature(c, call, msg.Signature, %s%sInSig)", n, id)
		b.p("\t\treturn")
		b.p("\t}")
		ins := names(in, paramName)
		if len(in) > 0 {
			b.p("\t%s, err := wireDecode%s%sIn(msg.Body, msg.BigEndian)", strings.Join(ins, ", "), n, id)
		} else {
			b.p("\terr := wireDecode%s%sIn(msg.Body, msg.BigEndian)", n, id)
		}
		b.p("\tif err != nil {")
		b.p("\t\twireBadArgs(c, call, err)")
		b.p("\t\treturn")
		b.p("\t}")
		b.p("\tc.Serve(call, func(ctx context.Context) {")
		args := strings.Join(append([]string{"ctx"}, ins...), ", ")
		outs := names(out, paramName)
		if len(out) == 0 {
			b.p("\t\tif err := srv.%s(%s); err != nil {", id, args)
			b.p("\t\t\twireReplyError(c, call, err)")
			b.p("\t\t\treturn")
			b.p("\t\t}")
			b.p("\t\t_ = c.ReplyCall(call, \"\", nil)")
		} else {
			b.p("\t\t%s, err := srv.%s(%s)", strings.Join(outs, ", "), id, args)
			b.p("\t\tif err != nil {")
			b.p("\t\t\twireReplyError(c, call, err)")
			b.p("\t\t\treturn")
			b.p("\t\t}")
			b.p("\t\tif call.NoReply {")
			b.p("\t\t\treturn")
			b.p("\t\t}")
			b.p("\t\tbody, err := wireEncode%s%sOut(%s)", n, id, strings.Join(outs, ", "))
			b.p("\t\tif err != nil {")
			b.p("\t\t\twireReplyError(c, call, err)")
			b.p("\t\t\treturn")
			b.p("\t\t}")
			b.p("\t\t_ = c.ReplyCall(call, %s%sOutSig, body)", n, id)
		}
		b.p("\t})")
		b.p("}")
		b.p("")
	}
}

// wireClient writes XWireClient.
func (g *goGen) wireClient(b *buf, i *Interface, n string) {
	t := g.apiTypes
	q := g.q(i)
	ct := n + "WireClient"
	b.p("// %s calls %s on one object over a wireconn connection.", ct, i.Name)
	b.p("// Its methods may be called from any goroutine, but the blocking ones not")
	b.p("// from a handler of the same connection's reader (use the Go ones there).")
	b.p("// Error replies are returned as *wireconn.Error.")
	b.p("type %s struct {", ct)
	b.p("\tconn       *wireconn.Conn")
	b.p("\tdest, path string")
	b.p("}")
	b.p("")
	b.p("// New%s returns a client of the object at path; dest is the", ct)
	b.p("// DESTINATION of the calls (\"\" for none, as on a peer link).")
	b.p("func New%s(conn *wireconn.Conn, dest, path string) *%s {", ct, ct)
	b.p("\treturn &%s{conn: conn, dest: dest, path: path}", ct)
	b.p("}")
	b.p("")
	b.p("// Conn returns the connection the client uses.")
	b.p("func (c *%s) Conn() *wireconn.Conn { return c.conn }", ct)
	b.p("")
	for _, m := range i.Methods() {
		id := goIdent(m.Name)
		in, out := m.In(), m.Out()
		ins := names(in, paramName)
		req := fmt.Sprintf("&wireconn.Request{Destination: c.dest, Path: c.path, Interface: %s%sInterface, Member: %s%s, Signature: %s%sInSig, Body: body}",
			q, n, q, constName(n, m), n, id)
		var outTypes, outZero []string
		for _, a := range out {
			outTypes = append(outTypes, t.goType(a.Type))
		}
		outTypes = append(outTypes, "error")
		doneType := "func(" + strings.Join(outTypes, ", ") + ")"

		// M: blocking.
		comment(b, "", fmt.Sprintf("%s calls %s.%s and waits for the reply: %s", id, i.Name, m.Name, sentence(m.Summary)), "")
		b.p("func (c *%s) %s(ctx context.Context%s) %s {", ct, id, prefixComma(params(t, in)), results(t, out))
		if len(out) == 0 {
			b.p("\tch := make(chan error, 1)")
			b.p("\tc.Go%s(ctx%s, func(err error) { ch <- err })", id, prefixComma(strings.Join(ins, ", ")))
			b.p("\treturn <-ch")
		} else {
			// The local names must not be those of arguments: an
			// argument may be called result (RequestName's is).
			b.p("\ttype wireResult struct {")
			for _, a := range out {
				b.p("\t\t%s %s", paramName(a.Name), t.goType(a.Type))
			}
			b.p("\t\terr error")
			b.p("\t}")
			b.p("\tch := make(chan wireResult, 1)")
			outs := names(out, paramName)
			b.p("\tc.Go%s(ctx%s, func(%s) {", id, prefixComma(strings.Join(ins, ", ")), params(t, out)+", err error")
			b.p("\t\tch <- wireResult{%s, err}", strings.Join(outs, ", "))
			b.p("\t})")
			b.p("\tres := <-ch")
			var rs []string
			for _, o := range outs {
				rs = append(rs, "res."+o)
			}
			b.p("\treturn %s, res.err", strings.Join(rs, ", "))
		}
		b.p("}")
		b.p("")

		// GoM: asynchronous.
		b.p("// Go%s calls %s.%s without waiting: the call is on the wire when it", id, i.Name, m.Name)
		b.p("// returns. done runs once, on the connection's reader goroutine with the")
		b.p("// reply (it must not block), or before Go%s returns when sending failed.", id)
		b.p("func (c *%s) Go%s(ctx context.Context%s, done %s) {", ct, id, prefixComma(params(t, in)), doneType)
		for _, a := range out {
			outZero = append(outZero, paramName(a.Name))
		}
		zeros := func(ind string) {
			if len(out) == 0 {
				return
			}
			b.p("%svar (", ind)
			for _, a := range out {
				b.p("%s\t%s %s", ind, paramName(a.Name), t.goType(a.Type))
			}
			b.p("%s)", ind)
		}
		b.p("\tbody, err := wireEncode%s%sIn(%s)", n, id, strings.Join(ins, ", "))
		b.p("\tif err != nil {")
		zeros("\t\t")
		b.p("\t\tdone(%s)", strings.Join(append(slicesClone(outZero), "err"), ", "))
		b.p("\t\treturn")
		b.p("\t}")
		b.p("\tc.conn.Go(ctx, %s, func(msg *wire.Message, err error) {", req)
		zeros("\t\t")
		b.p("\t\tif err == nil {")
		b.p("\t\t\tif msg.Signature != %s%sOutSig {", n, id)
		b.p("\t\t\t\terr = wireReplySignature(%s%s, msg.Signature, %s%sOutSig)", q, constName(n, m), n, id)
		b.p("\t\t\t} else {")
		if len(out) > 0 {
			b.p("\t\t\t\t%s, err = wireDecode%s%sOut(msg.Body, msg.BigEndian)", strings.Join(outZero, ", "), n, id)
		} else {
			b.p("\t\t\t\terr = wireDecode%s%sOut(msg.Body, msg.BigEndian)", n, id)
		}
		b.p("\t\t\t}")
		b.p("\t\t}")
		b.p("\t\tdone(%s)", strings.Join(append(slicesClone(outZero), "err"), ", "))
		b.p("\t})")
		b.p("}")
		b.p("")

		// SendM: no reply.
		b.p("// Send%s calls %s.%s with NO_REPLY_EXPECTED: no reply comes back.", id, i.Name, m.Name)
		b.p("func (c *%s) Send%s(%s) error {", ct, id, params(t, in))
		b.p("\tbody, err := wireEncode%s%sIn(%s)", n, id, strings.Join(ins, ", "))
		b.p("\tif err != nil {")
		b.p("\t\treturn err")
		b.p("\t}")
		b.p("\treturn c.conn.Send(%s)", req)
		b.p("}")
		b.p("")
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// wireSignals writes EmitXSWire and DecodeXS.
func (g *goGen) wireSignals(b *buf, i *Interface, n string) {
	q := g.q(i)
	for _, m := range i.Signals() {
		id := goIdent(m.Name)
		st := q + n + id + "Signal"
		fields := names(m.Args, func(a string) string { return "s." + fieldName(a) })
		b.p("// Emit%s%sWire sends signal %s.%s from path on conn.", n, id, i.Name, m.Name)
		b.p("func Emit%s%sWire(conn *wireconn.Conn, path string, s %s) error {", n, id, st)
		b.p("\tbody, err := wireEncode%s%s(%s)", n, id, strings.Join(fields, ", "))
		b.p("\tif err != nil {")
		b.p("\t\treturn err")
		b.p("\t}")
		b.p("\treturn conn.Emit(path, %s%sInterface, %s%s, %s%sSig, body)", q, n, q, constName(n, m), n, id)
		b.p("}")
		b.p("")
		b.p("// Decode%s%s reads the body of signal %s.%s, checking its signature.", n, id, i.Name, m.Name)
		b.p("func Decode%s%s(msg *wire.Message) (s %s, err error) {", n, id, st)
		b.p("\tif msg.Signature != %s%sSig {", n, id)
		b.p("\t\treturn s, fmt.Errorf(\"signal %s.%s: signature %%q, want %%q\", msg.Signature, %s%sSig)", i.Name, m.Name, n, id)
		b.p("\t}")
		if len(m.Args) > 0 {
			b.p("\t%s, err = wireDecode%s%s(msg.Body, msg.BigEndian)", strings.Join(fields, ", "), n, id)
		} else {
			b.p("\terr = wireDecode%s%s(msg.Body, msg.BigEndian)", n, id)
		}
		b.p("\tif err != nil {")
		b.p("\t\terr = fmt.Errorf(\"signal %s.%s: %%w\", err)", i.Name, m.Name)
		b.p("\t}")
		b.p("\treturn")
		b.p("}")
		b.p("")
	}
}

// wireRuntimeFile writes the helpers every wire file uses.
func (g *goGen) wireRuntimeFile() ([]byte, error) {
	var b buf
	header(&b, "tools/dbusgen/wiregen.go")
	b.p("package %s", g.apiPkg)
	b.p("")
	b.p("import (")
	b.p("\t\"fmt\"")
	b.p("")
	b.p("\t%q", g.rtImport)
	b.p("\t%q", wireconnImport)
	b.p(")")
	b.WriteString(`
// wireReplyError answers call with err: its D-Bus error name and message
// when it carries one (a godbus *dbus.Error as dbusrt.NewError makes, a
// *wireconn.Error), else Failed with err's text.
func wireReplyError(c *wireconn.Conn, call wireconn.Call, err error) {
	name := dbusrt.ErrorName(err)
	if name == "" {
		name = dbusrt.ErrFailed
	}
	_ = c.ErrorCall(call, name, dbusrt.ErrorMessage(err))
}

// wireBadSignature answers a call whose arguments have the wrong signature.
func wireBadSignature(c *wireconn.Conn, call wireconn.Call, got, want string) {
	_ = c.ErrorCall(call, wireconn.ErrInvalidArgs, fmt.Sprintf("Invalid arguments for %s: signature %q, want %q", call.Member, got, want))
}

// wireBadArgs answers a call whose arguments do not decode.
func wireBadArgs(c *wireconn.Conn, call wireconn.Call, err error) {
	_ = c.ErrorCall(call, wireconn.ErrInvalidArgs, fmt.Sprintf("Invalid arguments for %s: %v", call.Member, err))
}

// wireReplySignature is the error of a reply with the wrong signature.
func wireReplySignature(member, got, want string) error {
	return fmt.Errorf("reply to %s: signature %q, want %q", member, got, want)
}
`)
	return gofmt("wire runtime", &b)
}

// clientOnlyFiles generates the wire files of the client-only interfaces
// (systemd's): their struct types must already exist in the public
// package, which they must not change.
func (g *goGen) clientOnlyFiles(ifs []*Interface, into map[string][]byte) error {
	known := map[string]bool{}
	for k := range g.types.used {
		known[k] = true
	}
	seen := map[string]bool{}
	if g.clientOnly == nil {
		g.clientOnly = map[string]bool{}
	}
	for _, i := range ifs {
		g.clientOnly[i.Name] = true
		n := g.goName(i.Name)
		if seen[n] {
			return fmt.Errorf("%s: Go name %s used twice", i.File, n)
		}
		seen[n] = true
		for _, m := range i.Members {
			if m.Kind == "property" {
				return fmt.Errorf("%s: property %s: client-only interfaces declare no properties (read them with org.freedesktop.DBus.Properties)", i.File, m.Name)
			}
			for _, a := range m.Args {
				var unknown []string
				collectStructs(mustSig(a.Type), func(s string) {
					if !known[s] {
						unknown = append(unknown, s)
					}
				})
				if len(unknown) > 0 {
					sort.Strings(unknown)
					return fmt.Errorf("%s: %s: struct %s is not a type of the public package", i.File, m.Name, strings.Join(unknown, ", "))
				}
			}
		}
		data, err := g.wireFile(i, false)
		if err != nil {
			return err
		}
		into["wire_"+fileName(strings.TrimPrefix(i.Name, "org.freedesktop."))] = data
	}
	return nil
}

// collectStructs calls f with the signature of every struct in t.
func collectStructs(t *sigType, f func(string)) {
	if t.code == '(' {
		f(t.text)
	}
	if t.key != nil {
		collectStructs(t.key, f)
	}
	if t.elem != nil {
		collectStructs(t.elem, f)
	}
	for _, x := range t.field {
		collectStructs(x, f)
	}
}

// wireTestFile writes the round-trip test of every generated encoder and
// decoder against godbus: what ours encodes godbus decodes to the same
// values, and what godbus encodes, in either byte order, ours decodes to
// the same values. The test package supplies godbusEncode, godbusDecode
// and checkSame.
func (g *goGen) wireTestFile(ifs []*Interface) ([]byte, error) {
	tg := &testGen{g: g, pubTypes: newQualified(g.pubPkg + ".")}
	var b buf
	header(&b, "idl/*.xml, idl/systemd/*.xml")
	b.p("package %s", g.apiPkg)
	b.p("")
	b.p("import (")
	b.p("\t\"testing\"")
	b.p("")
	b.p("\t\"github.com/godbus/dbus/v5\"")
	b.p("")
	b.p("\t%s %q", g.pubPkg, g.pubImport)
	b.p(")")
	b.p("")
	b.p("var (")
	b.p("\t_ dbus.Variant")
	b.p("\t_ %s.UnitInfo", g.pubPkg)
	b.p(")")
	b.p("")
	b.p("// TestWireCodecs checks the wire encoder and decoder of every argument")
	b.p("// list (method arguments, replies, signals) against godbus.")
	b.p("func TestWireCodecs(t *testing.T) {")
	for _, i := range ifs {
		n := g.goName(i.Name)
		type list struct {
			name, sig string
			args      []Arg
		}
		var lists []list
		for _, m := range i.Methods() {
			lists = append(lists, list{n + goIdent(m.Name) + "In", n + goIdent(m.Name) + "InSig", m.In()},
				list{n + goIdent(m.Name) + "Out", n + goIdent(m.Name) + "OutSig", m.Out()})
		}
		for _, m := range i.Signals() {
			lists = append(lists, list{n + goIdent(m.Name), n + goIdent(m.Name) + "Sig", m.Args})
		}
		for _, l := range lists {
			if len(l.args) == 0 {
				continue
			}
			var vs, gs, ds, gptrs, types []string
			for k, a := range l.args {
				vs = append(vs, fmt.Sprintf("v%d", k))
				gs = append(gs, fmt.Sprintf("g%d", k))
				ds = append(ds, fmt.Sprintf("d%d", k))
				gptrs = append(gptrs, fmt.Sprintf("&g%d", k))
				types = append(types, tg.pubTypes.goType(a.Type))
			}
			b.p("\tt.Run(%q, func(t *testing.T) {", l.name)
			for k, a := range l.args {
				b.p("\t\tv%d := %s", k, tg.sample(a.Type, salt(k, a.Name)))
			}
			b.p("\t\tbody, err := wireEncode%s(%s)", l.name, strings.Join(vs, ", "))
			b.p("\t\tif err != nil {")
			b.p("\t\t\tt.Fatal(err)")
			b.p("\t\t}")
			b.p("\t\tvar (")
			for k := range l.args {
				b.p("\t\t\tg%d %s", k, types[k])
			}
			b.p("\t\t)")
			b.p("\t\tgodbusDecode(t, %s, body, %s)", l.sig, strings.Join(gptrs, ", "))
			b.p("\t\tcheckSame(t, \"godbus decoding ours\", []any{%s}, []any{%s})", strings.Join(gs, ", "), strings.Join(vs, ", "))
			b.p("\t\tfor _, big := range []bool{false, true} {")
			b.p("\t\t\t%s, err := wireDecode%s(godbusEncode(t, %s, big, %s), big)", strings.Join(ds, ", "), l.name, l.sig, strings.Join(vs, ", "))
			b.p("\t\t\tif err != nil {")
			b.p("\t\t\t\tt.Fatalf(\"big endian %%v: %%v\", big, err)")
			b.p("\t\t\t}")
			b.p("\t\t\tcheckSame(t, \"ours decoding godbus\", []any{%s}, []any{%s})", strings.Join(ds, ", "), strings.Join(vs, ", "))
			b.p("\t\t}")
			b.p("\t})")
		}
	}
	b.p("}")
	return gofmt("wire round-trip test", &b)
}
