// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

func TestParseGodbus(t *testing.T) {
	type hf = map[dbus.HeaderField]dbus.Variant
	cases := []struct {
		name string
		msg  dbus.Message
		want Message
	}{
		{"signal", dbus.Message{Type: dbus.TypeSignal, Headers: hf{
			dbus.FieldPath:        v(dbus.ObjectPath("/org/example/Obj")),
			dbus.FieldInterface:   v("org.example.Iface"),
			dbus.FieldMember:      v("Changed"),
			dbus.FieldSender:      v(":1.42"),
			dbus.FieldDestination: v("org.example.Dest-2"),
		}, Body: []any{"a", "bc", "def"}}, Message{
			Type: TypeSignal, Path: "/org/example/Obj", Interface: "org.example.Iface", Member: "Changed",
			Sender: ":1.42", Destination: "org.example.Dest-2", Signature: "sss",
		}},
		{"signal/no body", dbus.Message{Type: dbus.TypeSignal, Flags: dbus.FlagNoReplyExpected, Headers: hf{
			dbus.FieldPath:      v(dbus.ObjectPath("/")),
			dbus.FieldInterface: v("a.b"),
			dbus.FieldMember:    v("_9"),
		}}, Message{Type: TypeSignal, Flags: 1, Path: "/", Interface: "a.b", Member: "_9"}},
		{"call", dbus.Message{Type: dbus.TypeMethodCall, Flags: dbus.FlagNoAutoStart, Headers: hf{
			dbus.FieldPath:        v(dbus.ObjectPath("/x")),
			dbus.FieldMember:      v("Get"),
			dbus.FieldDestination: v("org.freedesktop.DBus"),
		}, Body: []any{map[string]dbus.Variant{"a": v(int64(1))}}}, Message{
			Type: TypeMethodCall, Flags: 2, Path: "/x", Member: "Get", Destination: "org.freedesktop.DBus", Signature: "a{sv}",
		}},
		{"return", dbus.Message{Type: dbus.TypeMethodReply, Headers: hf{
			dbus.FieldReplySerial: v(uint32(77)),
			dbus.FieldDestination: v(":1.1"),
		}}, Message{Type: TypeMethodReturn, ReplySerial: 77, Destination: ":1.1"}},
		{"error", dbus.Message{Type: dbus.TypeError, Headers: hf{
			dbus.FieldReplySerial: v(uint32(0xffffffff)),
			dbus.FieldErrorName:   v("org.example.Error.Failed"),
		}, Body: []any{"it failed"}}, Message{
			Type: TypeError, ReplySerial: 0xffffffff, ErrorName: "org.example.Error.Failed", Signature: "s",
		}},
	}
	for _, c := range cases {
		for _, order := range orders {
			msg := c.msg
			b := godbusMessage(t, &msg, order, 1234)
			size, typ, err := FrameSize(b[:HeaderSize])
			if err != nil || size != len(b) || typ != c.want.Type {
				t.Fatalf("%s: FrameSize = %d, %d, %v; want %d, %d", c.name, size, typ, err, len(b), c.want.Type)
			}
			var m Message
			m.Path = "stale"
			if err := Parse(b, &m); err != nil {
				t.Fatalf("%s %v: %v", c.name, order, err)
			}
			want := c.want
			want.Serial = 1234
			want.BigEndian = order == binary.BigEndian
			want.Body = bodyOf(t, b)
			if diff := cmp.Diff(want, m); diff != "" {
				t.Errorf("%s %v (-want +got):\n%s", c.name, order, diff)
			}
		}
	}
}

func TestAppendSignal(t *testing.T) {
	var w Writer
	w.String("node")
	w.String("unit.service")
	props := bodyOf(t, godbusSignal(t, binary.LittleEndian, unitProps()))
	r := NewReader(props, false)
	if err := Copy(&w, &r, "a{sv}"); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"", ":1.9", "org.example.Monitor"} {
		for _, pre := range []int{0, 3, 8} {
			dst := make([]byte, pre)
			out := AppendSignal(dst, 42, "/org/example/mon/1", "org.example.Monitor", "UnitPropertiesChanged", dest, "ssa{sv}", w.Buf)
			frame := out[pre:]
			size, typ, err := FrameSize(frame)
			if err != nil || size != len(frame) || typ != TypeSignal {
				t.Fatalf("FrameSize = %d, %d, %v, want %d", size, typ, err, len(frame))
			}
			var m Message
			if err := Parse(frame, &m); err != nil {
				t.Fatal(err)
			}
			want := Message{Type: TypeSignal, Flags: FlagNoReplyExpected, Serial: 42, Path: "/org/example/mon/1",
				Interface: "org.example.Monitor", Member: "UnitPropertiesChanged", Destination: dest,
				Signature: "ssa{sv}", Body: w.Buf}
			if diff := cmp.Diff(want, m); diff != "" {
				t.Fatal(diff)
			}
			g := decode(t, frame)
			if g.Serial() != 42 || g.Flags != dbus.FlagNoReplyExpected {
				t.Fatalf("godbus sees serial %d flags %d", g.Serial(), g.Flags)
			}
			wantProps := decode(t, godbusSignal(t, binary.LittleEndian, unitProps())).Body[0]
			if diff := cmp.Diff([]any{"node", "unit.service", wantProps}, g.Body, cmpOpts); diff != "" {
				t.Fatal(diff)
			}
		}
	}
	// No signature, no body.
	out := AppendSignal(nil, 1, "/", "a.b", "C", "", "", nil)
	var m Message
	if err := Parse(out, &m); err != nil || m.Signature != "" || len(m.Body) != 0 {
		t.Fatalf("Parse: %v %+v", err, m)
	}
	if g := decode(t, out); len(g.Body) != 0 {
		t.Fatalf("godbus body %v", g.Body)
	}
}

func TestFrameSize(t *testing.T) {
	hdr := func(e, typ, ver byte, body, fields uint32) []byte {
		b := []byte{e, typ, 0, ver}
		var o binary.AppendByteOrder = binary.LittleEndian
		if e == 'B' {
			o = binary.BigEndian
		}
		b = o.AppendUint32(b, body)
		b = o.AppendUint32(b, 1)
		return o.AppendUint32(b, fields)
	}
	good := []struct {
		h    []byte
		size int
	}{
		{hdr('l', 4, 1, 0, 0), 16},
		{hdr('l', 9, 1, 3, 1), 16 + 8 + 3},
		{hdr('B', 1, 1, 8, 8), 32},
		{hdr('B', 2, 1, 0, 12), 32},
		{hdr('l', 4, 1, MaxMessageSize-16, 0), MaxMessageSize},
		{hdr('B', 4, 1, MaxMessageSize-24, 1), MaxMessageSize},
	}
	for i, c := range good {
		size, typ, err := FrameSize(c.h)
		if err != nil || size != c.size || typ != c.h[1] {
			t.Errorf("%d: FrameSize = %d, %d, %v; want %d", i, size, typ, err, c.size)
		}
	}
	bad := []struct {
		h    []byte
		want error
	}{
		{[]byte("GET / HTTP/1.1\r\nHost"), errEndian},
		{hdr('L', 4, 1, 0, 0), errEndian},
		{hdr('l', 4, 2, 0, 0), errVersion},
		{hdr('l', 4, 0, 0, 0), errVersion},
		{hdr('l', 0, 1, 0, 0), errType},
		{hdr('l', 4, 1, 0xffffffff, 0), errTooBig},
		{hdr('B', 4, 1, 0, 0xffffffff), errTooBig},
		{hdr('l', 4, 1, 0xffffffff, 0xffffffff), errTooBig},
		{hdr('l', 4, 1, MaxMessageSize-15, 0), errTooBig},
		{hdr('B', 4, 1, MaxMessageSize-23, 2), errTooBig},
		{hdr('l', 4, 1, 0, 0)[:15], errShort},
		{nil, errShort},
	}
	for i, c := range bad {
		if _, _, err := FrameSize(c.h); !errors.Is(err, c.want) {
			t.Errorf("%d: err = %v, want %v", i, err, c.want)
		}
	}
}

// field is a header field for rawMessage: its code, variant signature and
// a function writing the value.
type field struct {
	code byte
	sig  string
	val  func(b *builder)
}

func strField(code byte, sig, s string) field {
	return field{code, sig, func(b *builder) { b.str(s) }}
}

func u32Field(code byte, u uint32) field {
	return field{code, "u", func(b *builder) { b.u32(u) }}
}

func sigField(s string) field {
	return field{FieldSignature, "g", func(b *builder) { b.sig(s) }}
}

// rawMessage builds a message by hand.
func rawMessage(big bool, typ byte, serial uint32, body []byte, fields ...field) []byte {
	b := &builder{big: big}
	e := byte('l')
	if big {
		e = 'B'
	}
	b.raw(e, typ, 0, 1).u32(uint32(len(body))).u32(serial).u32(0)
	for _, f := range fields {
		b.pad(8).raw(f.code).sig(f.sig)
		f.val(b)
	}
	b.order().PutUint32(b.b[12:], uint32(len(b.b)-HeaderSize))
	b.pad(8)
	return append(b.b, body...)
}

var signalFields = []field{
	strField(FieldPath, "o", "/a"),
	strField(FieldInterface, "s", "a.b"),
	strField(FieldMember, "s", "M"),
}

func TestParseRaw(t *testing.T) {
	with := func(extra ...field) []field {
		return append(append([]field{}, signalFields...), extra...)
	}
	ok := []struct {
		name   string
		typ    byte
		body   []byte
		fields []field
	}{
		{"signal", TypeSignal, nil, signalFields},
		{"unknown field", TypeSignal, nil, with(field{10, "a{sv}", func(b *builder) { b.u32(0).pad(8) }})},
		{"unknown field fd", TypeSignal, nil, with(field{200, "h", func(b *builder) { b.u32(3) }})},
		{"unknown field variant", TypeSignal, nil, with(field{11, "v", func(b *builder) { b.sig("t").u64(1) }})},
		{"unix fds", TypeSignal, nil, with(u32Field(FieldUnixFDs, 0))},
		{"unknown type", 9, nil, nil},
		{"sender", TypeSignal, nil, with(strField(FieldSender, "s", "org.freedesktop.DBus"))},
		{"digit element in unique name", TypeSignal, nil, with(strField(FieldSender, "s", ":1.0-x"))},
		{"body", TypeSignal, []byte{1}, with(sigField("y"))},
		{"call", TypeMethodCall, nil, []field{strField(FieldPath, "o", "/"), strField(FieldMember, "s", "Ping")}},
	}
	for _, c := range ok {
		for _, big := range []bool{false, true} {
			var m Message
			if err := Parse(rawMessage(big, c.typ, 1, c.body, c.fields...), &m); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
	}
	bad := []struct {
		name   string
		typ    byte
		serial uint32
		body   []byte
		fields []field
		want   error
	}{
		{"serial 0", TypeSignal, 0, nil, signalFields, errSerial},
		{"signal without path", TypeSignal, 1, nil, signalFields[1:], errFieldMissing},
		{"signal without interface", TypeSignal, 1, nil, []field{signalFields[0], signalFields[2]}, errFieldMissing},
		{"signal without member", TypeSignal, 1, nil, signalFields[:2], errFieldMissing},
		{"call without member", TypeMethodCall, 1, nil, signalFields[:2], errFieldMissing},
		{"call without path", TypeMethodCall, 1, nil, signalFields[1:], errFieldMissing},
		{"return without reply serial", TypeMethodReturn, 1, nil, nil, errFieldMissing},
		{"error without name", TypeError, 1, nil, []field{u32Field(FieldReplySerial, 1)}, errFieldMissing},
		{"error without reply serial", TypeError, 1, nil, []field{strField(FieldErrorName, "s", "a.b")}, errFieldMissing},
		{"reply serial 0", TypeMethodReturn, 1, nil, []field{u32Field(FieldReplySerial, 0)}, errReplySerial},
		{"path as string", TypeSignal, 1, nil, []field{strField(FieldPath, "s", "/a"), signalFields[1], signalFields[2]}, errFieldType},
		{"member as path", TypeSignal, 1, nil, []field{signalFields[0], signalFields[1], strField(FieldMember, "o", "/M")}, errFieldType},
		{"reply serial as int", TypeMethodReturn, 1, nil, []field{{FieldReplySerial, "i", func(b *builder) { b.u32(1) }}}, errFieldType},
		{"field type two codes", TypeSignal, 1, nil, with(field{FieldSender, "ss", func(b *builder) { b.str("a.b").str("c.d") }}), errFieldType},
		{"field code 0", TypeSignal, 1, nil, with(u32Field(0, 1)), errFieldCode},
		{"duplicate", TypeSignal, 1, nil, with(strField(FieldMember, "s", "N")), errFieldDup},
		{"bad path", TypeSignal, 1, nil, []field{strField(FieldPath, "o", "/a/"), signalFields[1], signalFields[2]}, errPath},
		{"local path", TypeSignal, 1, nil, []field{strField(FieldPath, "o", localPath), signalFields[1], signalFields[2]}, errLocal},
		{"local interface", TypeSignal, 1, nil, []field{signalFields[0], strField(FieldInterface, "s", localInterface), signalFields[2]}, errLocal},
		{"interface without dot", TypeSignal, 1, nil, []field{signalFields[0], strField(FieldInterface, "s", "ab"), signalFields[2]}, errInterface},
		{"interface digit", TypeSignal, 1, nil, []field{signalFields[0], strField(FieldInterface, "s", "a.9b"), signalFields[2]}, errInterface},
		{"interface trailing dot", TypeSignal, 1, nil, []field{signalFields[0], strField(FieldInterface, "s", "a.b."), signalFields[2]}, errInterface},
		{"interface too long", TypeSignal, 1, nil, []field{signalFields[0], strField(FieldInterface, "s", "a."+strings.Repeat("b", 254)), signalFields[2]}, errInterface},
		{"member with dot", TypeSignal, 1, nil, []field{signalFields[0], signalFields[1], strField(FieldMember, "s", "a.b")}, errMember},
		{"member empty", TypeSignal, 1, nil, []field{signalFields[0], signalFields[1], strField(FieldMember, "s", "")}, errMember},
		{"member utf8", TypeSignal, 1, nil, []field{signalFields[0], signalFields[1], strField(FieldMember, "s", "é")}, errMember},
		{"error name", TypeError, 1, nil, []field{u32Field(FieldReplySerial, 1), strField(FieldErrorName, "s", "Failed")}, errErrorName},
		{"destination", TypeSignal, 1, nil, with(strField(FieldDestination, "s", "a..b")), errBusName},
		{"destination digit", TypeSignal, 1, nil, with(strField(FieldDestination, "s", "a.0b")), errBusName},
		{"sender unique one element", TypeSignal, 1, nil, with(strField(FieldSender, "s", ":1")), errBusName},
		{"sender colon only", TypeSignal, 1, nil, with(strField(FieldSender, "s", ":")), errBusName},
		{"signature field", TypeSignal, 1, []byte{0, 0, 0, 0}, with(sigField("a")), errSignature},
		{"body without signature", TypeSignal, 1, []byte{1}, signalFields, errBodySig},
		{"body with empty signature", TypeSignal, 1, []byte{1}, with(sigField("")), errBodySig},
		{"signature without body", TypeSignal, 1, nil, with(sigField("y")), errBodySig},
		{"unknown field bad variant", TypeSignal, 1, nil, with(field{10, "yy", func(b *builder) { b.raw(1, 2) }}), errSingle},
		{"unknown field bad value", TypeSignal, 1, nil, with(field{10, "s", func(b *builder) { b.str("\xff") }}), errUTF8},
		{"unknown field bad bool", TypeSignal, 1, nil, with(field{10, "b", func(b *builder) { b.u32(7) }}), errBool},
	}
	for _, c := range bad {
		for _, big := range []bool{false, true} {
			var m Message
			if err := Parse(rawMessage(big, c.typ, c.serial, c.body, c.fields...), &m); !errors.Is(err, c.want) {
				t.Errorf("%s (big %v): err = %v, want %v", c.name, big, err, c.want)
			}
		}
	}

	// Damage a good message.
	good := rawMessage(false, TypeSignal, 1, []byte{7}, with(sigField("y"))...)
	var m Message
	if err := Parse(good, &m); err != nil {
		t.Fatal(err)
	}
	if err := Parse(append(good[:len(good):len(good)], 0), &m); !errors.Is(err, errFrameLen) {
		t.Errorf("longer buffer: %v", err)
	}
	if err := Parse(good[:len(good)-1], &m); !errors.Is(err, errFrameLen) {
		t.Errorf("shorter buffer: %v", err)
	}
	// Non-zero padding between fields (after the path "/a", at 16+12).
	b := append([]byte{}, good...)
	b[16+4+4+3] = 1
	if err := Parse(b, &m); !errors.Is(err, errPadding) {
		t.Errorf("padding between fields: %v", err)
	}
	// Non-zero padding before the body.
	b = append([]byte{}, good...)
	b[len(b)-2] = 1
	if err := Parse(b, &m); !errors.Is(err, errPadding) {
		t.Errorf("padding before the body: %v", err)
	}
	// Field array length ending in padding.
	b = rawMessage(false, TypeSignal, 1, nil, signalFields...)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(b)-16))
	if err := Parse(b, &m); !errors.Is(err, errArrayEnd) {
		t.Errorf("field array ending in padding: %v", err)
	}
}

// TestParseTruncatedFields cuts the header field array everywhere: a cut
// inside a field fails, a cut between fields leaves the fields before it.
func TestParseTruncatedFields(t *testing.T) {
	good := godbusSignal(t, binary.LittleEndian, "x")
	var full Message
	if err := Parse(good, &full); err != nil {
		t.Fatal(err)
	}
	flen := int(binary.LittleEndian.Uint32(good[12:]))
	for n := 0; n < flen; n++ {
		b := append([]byte{}, good[:HeaderSize+n]...)
		binary.LittleEndian.PutUint32(b[12:], uint32(n))
		binary.LittleEndian.PutUint32(b[4:], 0)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		var m Message
		if err := Parse(b, &m); err == nil {
			if m.Path != full.Path || m.Interface != full.Interface || m.Member != full.Member ||
				m.Sender != "" && m.Sender != full.Sender || m.Signature != "" {
				t.Errorf("field array cut at %d: %+v", n, m)
			}
		}
	}
}

// A method return built with the Writer's arrays decodes in godbus to the
// values written, at any offset of the output buffer.
func TestAppendReturn(t *testing.T) {
	type unit struct {
		Name, Desc string
		Path       dbus.ObjectPath
		Job        uint32
	}
	want := map[string][]unit{
		"a":     {{"x.service", "X", "/x", 7}, {"y.service", "", "/y", 0}},
		"empty": {},
		"b":     {{"z.socket", "Z z", "/z/1", 1 << 31}},
	}
	var w Writer
	dict := w.BeginArray(8)
	for _, k := range []string{"a", "b", "empty"} {
		w.Align(8)
		w.String(k)
		units := w.BeginArray(8)
		for _, u := range want[k] {
			w.Align(8)
			w.String(u.Name)
			w.String(u.Desc)
			w.ObjectPath(string(u.Path))
			w.Uint32(u.Job)
		}
		w.EndArray(units)
	}
	w.EndArray(dict)
	for _, dest := range []string{"", ":1.9"} {
		for _, pre := range []int{0, 5, 8} {
			out := AppendReturn(make([]byte, pre), 42, 7, dest, "a{sa(ssou)}", w.Buf)
			frame := out[pre:]
			var m Message
			if err := Parse(frame, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type != TypeMethodReturn || m.Serial != 42 || m.ReplySerial != 7 || m.Destination != dest || m.Signature != "a{sa(ssou)}" {
				t.Fatalf("parsed %+v", m)
			}
			g := decode(t, frame)
			var got map[string][]unit
			if err := dbus.Store(g.Body, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatal(diff)
			}
		}
	}
	// No body.
	var m Message
	if err := Parse(AppendReturn(nil, 1, 2, "", "", nil), &m); err != nil || m.ReplySerial != 2 || len(m.Body) != 0 {
		t.Fatalf("Parse: %v %+v", err, m)
	}
}

// A method call decodes in godbus with its header fields and body.
func TestAppendCall(t *testing.T) {
	var w Writer
	w.String("unit.service")
	w.String("replace")
	for _, iface := range []string{"", "org.example.Manager"} {
		out := AppendCall([]byte{1, 2, 3}, 9, "org.example", "/org/example", iface, "StartUnit", "ss", w.Buf)
		frame := out[3:]
		var m Message
		if err := Parse(frame, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type != TypeMethodCall || m.Serial != 9 || m.Destination != "org.example" || m.Path != "/org/example" ||
			m.Interface != iface || m.Member != "StartUnit" || m.Signature != "ss" {
			t.Fatalf("parsed %+v", m)
		}
		g := decode(t, frame)
		if diff := cmp.Diff([]any{"unit.service", "replace"}, g.Body); diff != "" {
			t.Fatal(diff)
		}
	}
}
