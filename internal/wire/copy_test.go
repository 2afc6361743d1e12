// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

type pair struct{ A, B string }

type twoU64 struct{ A, B uint64 }

type byteInt64 struct {
	A byte
	B int64
}

// job is one element of a{sa(ssssssouso)}.
type job struct {
	A, B, C, D, E, F string
	G                dbus.ObjectPath
	H                uint32
	I                string
	J                dbus.ObjectPath
}

type condition struct {
	Type            string
	Trigger, Negate bool
	Param           string
	State           int32
}

type execCommand struct {
	Path             string
	Argv             []string
	IgnoreFailure    bool
	Start, StartMono uint64
	Stop, StopMono   uint64
	PID              uint32
	Code, Status     int32
}

func v(x any) dbus.Variant { return dbus.MakeVariant(x) }

// unitProps is a property set as systemd sends for a service: 22 entries.
func unitProps() map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"Id":                             v("httpd.service"),
		"Description":                    v("The Apache HTTP Server"),
		"LoadState":                      v("loaded"),
		"ActiveState":                    v("active"),
		"SubState":                       v("running"),
		"UnitFileState":                  v("enabled"),
		"FragmentPath":                   v("/usr/lib/systemd/system/httpd.service"),
		"StateChangeTimestamp":           v(uint64(1718000000123456)),
		"StateChangeTimestampMonotonic":  v(uint64(123456789)),
		"ActiveEnterTimestamp":           v(uint64(1718000000123456)),
		"ActiveEnterTimestampMonotonic":  v(uint64(123456789)),
		"InactiveExitTimestamp":          v(uint64(1718000000000001)),
		"InactiveExitTimestampMonotonic": v(uint64(123000000)),
		"CanStart":                       v(true),
		"CanStop":                        v(true),
		"MainPID":                        v(uint32(4242)),
		"NRestarts":                      v(uint32(0)),
		"MemoryCurrent":                  v(uint64(18446744073709551615)),
		"InvocationID":                   v([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
		"Conditions":                     v([]condition{{"ConditionPathExists", false, false, "/etc/httpd/conf", 1}}),
		"ExecStart":                      v([]execCommand{{"/usr/sbin/httpd", []string{"/usr/sbin/httpd", "-DFOREGROUND"}, false, 1, 2, 0, 0, 4242, 0, 0}}),
		"Requires":                       v([]string{"system.slice", "sysinit.target", "-.mount"}),
	}
}

type copyCase struct {
	name string
	v    any
	// det is false where godbus encodes maps of several entries in a
	// random order, so that only decoded values can be compared.
	det bool
}

func copyCases() []copyCase {
	sigs := []dbus.Signature{dbus.ParseSignatureMust("a{sv}"), {}, dbus.SignatureOf(job{})}
	return []copyCase{
		{"y", byte(0xfe), true},
		{"b/true", true, true},
		{"b/false", false, true},
		{"n", int16(-12345), true},
		{"q", uint16(54321), true},
		{"i", int32(-7), true},
		{"u", uint32(0xdeadbeef), true},
		{"x", int64(-1 << 50), true},
		{"t", uint64(1<<63 + 5), true},
		{"d", math.Pi, true},
		{"d/inf", math.Inf(-1), true},
		{"s", "héllo, wörld ✓ 𝄞", true},
		{"s/empty", "", true},
		{"s/noncharacters", "\uFFFE\uFDD0\U0010FFFF\U0001FFFF", true},
		{"o", dbus.ObjectPath("/org/freedesktop/systemd1/unit/httpd_2eservice"), true},
		{"o/root", dbus.ObjectPath("/"), true},
		{"g", sigs[0], true},
		{"g/empty", sigs[1], true},
		{"ay", []byte("some bytes\x00\xff"), true},
		{"ab", []bool{true, false, true}, true},
		{"an", []int16{-1, 2, -3}, true},
		{"aq", []uint16{1, 2, 65535}, true},
		{"ai", []int32{-1, 0, 1 << 30}, true},
		{"au", []uint32{1, 2, 3}, true},
		{"ax", []int64{-1, 1 << 40}, true},
		{"at", []uint64{1, 1 << 63}, true},
		{"ad", []float64{0.5, -2.25e100}, true},
		{"as", []string{"a", "", "bc", "déf"}, true},
		{"ao", []dbus.ObjectPath{"/", "/a/b_c/D9"}, true},
		{"ag", sigs, true},
		{"ay/empty", []byte{}, true},
		{"ax/empty", []int64{}, true},
		{"at/empty", []uint64{}, true},
		{"ad/empty", []float64{}, true},
		{"a(tt)/empty", []twoU64{}, true},
		{"a{sv}/empty", map[string]dbus.Variant{}, true},
		{"a{sv}/one", map[string]dbus.Variant{"k": v(twoU64{1, 2})}, true},
		{"a(ss)", []pair{{"a", "b"}, {"", "cdefgh"}, {"ijk", ""}}, true},
		{"a(tt)", []twoU64{{1, 2}, {3, 4}}, true},
		{"(yx)", byteInt64{1, -2}, true},
		{"a(yx)", []byteInt64{{1, -2}, {3, 4}}, true},
		{"aax", [][]int64{{}, {1}, {}, {2, 3}, {}}, true},
		{"aas", [][]string{{}, {"a"}, {"b", "c"}}, true},
		{"av", []dbus.Variant{v(int64(1)), v(byte(2)), v(twoU64{3, 4}), v([]int64{}), v("s")}, true},
		{"v/struct", v(byteInt64{7, 8}), true},
		{"v/nested", v(v(v(byteInt64{7, 8}))), true},
		{"v/deep", v(v(v(v(v(v(v([]dbus.Variant{v(v(uint64(5)))}))))))), true},
		{"a{sv}/structs", map[string]dbus.Variant{
			"a": v(pair{"x", "y"}),
			"b": v(byteInt64{1, 2}),
			"c": v([]twoU64{{5, 6}}),
			"d": v(v(int64(-9))),
			"e": v(map[string]dbus.Variant{"f": v(1.5), "g": v([]byte{})}),
			"h": v(dbus.ObjectPath("/x")),
			"i": v(sigs[2]),
		}, false},
		{"a{sa(ssssssouso)}", map[string][]job{
			"node1": {{"a", "b", "c", "d", "e", "f", "/g", 8, "i", "/j"}, {"", "", "", "", "", "", "/", 0, "", "/"}},
			"node2": {},
		}, false},
		{"a{ta{sv}}", map[uint64]map[string]dbus.Variant{1: {"a": v(int64(1))}, 2: {}}, false},
		{"a{sv}/props", unitProps(), false},
	}
}

// TestCopyGodbus checks Copy against godbus: the value is read at body
// offsets 0 and 4 modulo 8, in both byte orders, and written at offsets 0
// and 4 modulo 8; the result must decode to what godbus decodes from the
// original and, where godbus is deterministic, equal godbus' own encoding.
func TestCopyGodbus(t *testing.T) {
	for _, tc := range copyCases() {
		t.Run(tc.name, func(t *testing.T) {
			sig := dbus.SignatureOf(tc.v).String()
			for _, order := range orders {
				for srcPre := 0; srcPre < 10; srcPre++ {
					prefix := strings.Repeat("p", srcPre)
					src := godbusSignal(t, order, prefix, tc.v)
					want := decode(t, src).Body[1]
					var m Message
					if err := Parse(src, &m); err != nil {
						t.Fatal(err)
					}
					if m.Signature != "s"+sig {
						t.Fatalf("signature %q, want %q", m.Signature, "s"+sig)
					}
					r := NewReader(m.Body, m.BigEndian)
					s, err := r.String()
					if err != nil || s != prefix {
						t.Fatalf("String() = %q, %v; want %q", s, err, prefix)
					}
					for dstPre := 0; dstPre < 10; dstPre++ {
						r := r
						var w Writer
						name := strings.Repeat("n", dstPre)
						w.String(name)
						if err := Copy(&w, &r, sig); err != nil {
							t.Fatalf("%v src %d dst %d: Copy: %v", order, srcPre, dstPre, err)
						}
						if err := r.Done(); err != nil {
							t.Fatalf("Done: %v (rest %d)", err, r.Rest())
						}
						out := AppendSignal(nil, 5, "/org/example/Monitor", "org.example.Monitor", "Changed", ":1.7", "s"+sig, w.Buf)
						got := decode(t, out)
						if diff := cmp.Diff([]any{name, want}, got.Body, cmpOpts); diff != "" {
							t.Fatalf("%v src %d dst %d: decoded copy differs (-want +got):\n%s", order, srcPre, dstPre, diff)
						}
						if tc.det {
							ref := bodyOf(t, godbusSignal(t, binary.LittleEndian, name, tc.v))
							if !bytes.Equal(ref, w.Buf) {
								t.Fatalf("%v src %d dst %d: body differs from godbus'\n got % x\nwant % x", order, srcPre, dstPre, w.Buf, ref)
							}
						}
					}
				}
			}
		})
	}
}

// TestCopyTwice copies a value copied before: the result must not change,
// whatever the alignments.
func TestCopyTwice(t *testing.T) {
	props := godbusSignal(t, binary.BigEndian, "abc", unitProps())
	var m Message
	if err := Parse(props, &m); err != nil {
		t.Fatal(err)
	}
	r := NewReader(m.Body, true)
	if _, err := r.String(); err != nil {
		t.Fatal(err)
	}
	var w1 Writer
	w1.String("x")
	if err := Copy(&w1, &r, "a{sv}"); err != nil {
		t.Fatal(err)
	}
	for pre := 0; pre < 10; pre++ {
		r := NewReader(w1.Buf, false)
		if _, err := r.String(); err != nil {
			t.Fatal(err)
		}
		var w2 Writer
		w2.String(strings.Repeat("y", pre))
		if err := Copy(&w2, &r, "a{sv}"); err != nil {
			t.Fatal(err)
		}
		r2 := NewReader(w2.Buf, false)
		r2.String()
		var w3 Writer
		w3.String("x")
		if err := Copy(&w3, &r2, "a{sv}"); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w1.Buf, w3.Buf) {
			t.Fatalf("pre %d: copy of a copy differs", pre)
		}
	}
}

// TestCopyDeepVariants nests variants by hand up to the limit of 64
// containers and one beyond.
func TestCopyDeepVariants(t *testing.T) {
	for _, big := range []bool{false, true} {
		for _, n := range []int{63, 64, 65, 100} {
			b := &builder{big: big}
			for range n - 1 {
				b.sig("v")
			}
			b.sig("t").u64(7) // n variants; 8-aligned: padding inside
			for _, pre := range []int{0, 4} {
				r := NewReader(b.b, big)
				w := Writer{Buf: make([]byte, pre)}
				err := Copy(&w, &r, "v")
				if n <= 64 {
					if err != nil {
						t.Fatalf("%d variants: %v", n, err)
					}
					if pre == 0 && !big && !bytes.Equal(w.Buf, b.b) {
						t.Fatalf("%d variants: copy differs", n)
					}
				} else if !errors.Is(err, errDepth) {
					t.Fatalf("%d variants: err = %v, want %v", n, err, errDepth)
				}
			}
		}
	}
	// Containers of the signature count too: in a{sv}, the value variant
	// is 2 deep, so n more variants in it put a byte n+3 deep.
	for _, n := range []int{61, 62} {
		b := &builder{}
		b.u32(0)
		at := len(b.b)
		b.pad(8).str("k")
		for range n {
			b.sig("v")
		}
		b.sig("y").raw(1)
		binary.LittleEndian.PutUint32(b.b[at-4:], uint32(len(b.b)-8))
		r := NewReader(b.b, false)
		var w Writer
		err := Copy(&w, &r, "a{sv}")
		if n == 61 && err != nil || n == 62 && !errors.Is(err, errDepth) {
			t.Fatalf("a{sv} with %d variants: %v", n, err)
		}
	}
	// Variants around a signature of 32 nested arrays: the innermost
	// array's elements must be at most 64 deep even when there are none.
	for _, k := range []int{31, 32, 33} {
		b := &builder{}
		for range k - 1 {
			b.sig("v")
		}
		b.sig(strings.Repeat("a", 32) + "y")
		for j := 31; j >= 0; j-- {
			b.u32(uint32(4 * j))
		}
		r := NewReader(b.b, false)
		var w Writer
		err := Copy(&w, &r, "v")
		if k <= 32 && err != nil || k > 32 && !errors.Is(err, errDepth) {
			t.Fatalf("%d variants around 32 arrays: %v", k, err)
		}
	}
}

// TestCopyInvalid feeds bodies that the bus would refuse.
func TestCopyInvalid(t *testing.T) {
	type tc struct {
		name string
		sig  string
		body func(b *builder)
		want error
	}
	cases := []tc{
		{"utf8", "s", func(b *builder) { b.str("ab\xffc") }, errUTF8},
		{"utf8/surrogate", "s", func(b *builder) { b.str("\xed\xa0\x80") }, errUTF8},
		{"utf8/overlong", "s", func(b *builder) { b.str("\xc0\x80") }, errUTF8},
		{"utf8/too-high", "s", func(b *builder) { b.str("\xf4\x90\x80\x80") }, errUTF8},
		{"nul", "s", func(b *builder) { b.str("a\x00b") }, errNUL},
		{"no terminator", "s", func(b *builder) { b.u32(1).raw('a', 'x') }, errNoTerm},
		{"string past end", "s", func(b *builder) { b.u32(10).raw('a', 0) }, errShort},
		{"string length huge", "s", func(b *builder) { b.u32(0xffffffff).raw('a', 0) }, errShort},
		{"path/relative", "o", func(b *builder) { b.str("a/b") }, errPath},
		{"path/empty", "o", func(b *builder) { b.str("") }, errPath},
		{"path/double slash", "o", func(b *builder) { b.str("/a//b") }, errPath},
		{"path/trailing slash", "o", func(b *builder) { b.str("/a/") }, errPath},
		{"path/dot", "o", func(b *builder) { b.str("/a.b") }, errPath},
		{"signature value", "g", func(b *builder) { b.sig("a") }, errSignature},
		{"signature value/no nul", "g", func(b *builder) { b.raw(1, 'y', 'y') }, errNoTerm},
		{"variant/bad signature", "v", func(b *builder) { b.sig("a").u32(0) }, errSingle},
		{"variant/unknown code", "v", func(b *builder) { b.sig("m").raw(0) }, errSingle},
		{"variant/two types", "v", func(b *builder) { b.sig("yy").raw(1, 2) }, errSingle},
		{"variant/empty signature", "v", func(b *builder) { b.sig("") }, errSingle},
		{"variant/dict outside array", "v", func(b *builder) { b.sig("{sv}") }, errSingle},
		{"variant/non-basic key", "v", func(b *builder) { b.sig("a{vs}").u32(0) }, errSingle},
		{"variant/empty struct", "v", func(b *builder) { b.sig("()") }, errSingle},
		{"variant/fd", "v", func(b *builder) { b.sig("h").u32(0) }, errFD},
		{"variant/fd array", "v", func(b *builder) { b.sig("ah").u32(0) }, errFD},
		{"variant/padding", "v", func(b *builder) { b.sig("t").raw(0, 1, 0, 0, 0).u64(1) }, errPadding},
		{"fd", "h", func(b *builder) { b.u32(0) }, errFD},
		{"fd array", "ah", func(b *builder) { b.u32(0) }, errFD},
		{"bool 2", "b", func(b *builder) { b.u32(2) }, errBool},
		{"bool array", "ab", func(b *builder) { b.u32(8).u32(1).u32(0x100) }, errBool},
		{"bool in variant", "v", func(b *builder) { b.sig("b").u32(3) }, errBool},
		{"padding before u", "(yu)", func(b *builder) { b.raw(1, 0, 9, 0).u32(5) }, errPadding},
		{"signature/array then struct", "ay(yy)", nil, errSingle},
		{"padding of empty array", "at", func(b *builder) { b.u32(0).raw(0, 0, 1, 0) }, errPadding},
		{"array past end", "ay", func(b *builder) { b.u32(5).raw(1, 2, 3) }, errShort},
		{"array of strings past end", "as", func(b *builder) { b.u32(100).str("a") }, errShort},
		{"array too long", "ay", func(b *builder) { b.u32(1<<26 + 1) }, errArrayLen},
		{"array not on element", "ai", func(b *builder) { b.u32(6).u32(1).raw(0, 0) }, errArrayEnd},
		{"array string overrun", "as", func(b *builder) { b.u32(6).str("abcd") }, errArrayEnd},
		{"array struct overrun", "a(tt)", func(b *builder) { b.u32(8).u64(1).u64(2) }, errArrayEnd},
		{"truncated u", "u", func(b *builder) { b.raw(1, 2) }, errShort},
		{"truncated t", "t", func(b *builder) { b.raw(1, 2, 3, 4, 5, 6, 7) }, errShort},
		{"empty", "y", func(b *builder) {}, errShort},
		{"signature/33 arrays", strings.Repeat("a", 33) + "y", nil, errSingle},
		{"signature/33 structs", strings.Repeat("(", 33) + "y" + strings.Repeat(")", 33), nil, errSingle},
		{"signature/two types", "yy", nil, errSingle},
		{"signature/empty", "", nil, errSingle},
		{"signature/unbalanced", "(y", nil, errSingle},
		{"signature/dict", "a{sv}y", nil, errSingle},
	}
	for _, c := range cases {
		for _, big := range []bool{false, true} {
			b := &builder{big: big}
			if c.body != nil {
				c.body(b)
			}
			for _, pre := range []int{0, 4} {
				r := NewReader(b.b, big)
				w := Writer{Buf: make([]byte, pre, 64)}
				err := Copy(&w, &r, c.sig)
				if !errors.Is(err, c.want) {
					t.Errorf("%s (big %v, pre %d): err = %v, want %v", c.name, big, pre, err, c.want)
				}
				if len(w.Buf) != pre || r.Rest() != len(b.b) {
					t.Errorf("%s: w or r moved on error", c.name)
				}
			}
		}
	}
}

// TestCopyTruncated cuts a valid body everywhere: every cut must fail
// cleanly.
func TestCopyTruncated(t *testing.T) {
	for _, order := range orders {
		body := bodyOf(t, godbusSignal(t, order, unitProps()))
		for n := 0; n < len(body); n++ {
			r := NewReader(body[:n], order == binary.BigEndian)
			var w Writer
			if err := Copy(&w, &r, "a{sv}"); err == nil {
				t.Fatalf("cut at %d of %d: no error", n, len(body))
			}
		}
		r := NewReader(body, order == binary.BigEndian)
		var w Writer
		if err := Copy(&w, &r, "a{sv}"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopyGrows checks that an array whose padding grows when re-aligned
// gets its new length.
func TestCopyGrows(t *testing.T) {
	// av of variants holding 't': at offset 4 mod 8 nothing pads, moved
	// by 4 each element gains 4 bytes of padding.
	vals := make([]dbus.Variant, 50)
	for i := range vals {
		vals[i] = v(uint64(i))
	}
	src := bodyOf(t, godbusSignal(t, binary.LittleEndian, vals))
	r := NewReader(src, false)
	w := Writer{Buf: []byte{0, 0, 0, 0}}
	if err := Copy(&w, &r, "av"); err != nil {
		t.Fatal(err)
	}
	if got, was := binary.LittleEndian.Uint32(w.Buf[4:]), binary.LittleEndian.Uint32(src); got == was {
		t.Fatalf("array length %d unchanged", got)
	}
	out := AppendSignal(nil, 1, "/", "a.b", "c", "", "uav", w.Buf)
	if diff := cmp.Diff(vals, decode(t, out).Body[1], cmpOpts); diff != "" {
		t.Fatal(diff)
	}
}

func TestReader(t *testing.T) {
	for _, order := range orders {
		body := bodyOf(t, godbusSignal(t, order, "a", "", "ünï"))
		r := NewReader(body, order == binary.BigEndian)
		for _, want := range []string{"a", "", "ünï"} {
			if r.Done() == nil {
				t.Fatal("Done before the end")
			}
			got, err := r.String()
			if err != nil || got != want {
				t.Fatalf("String() = %q, %v, want %q", got, err, want)
			}
		}
		if err := r.Done(); err != nil || r.Rest() != 0 {
			t.Fatalf("Done: %v, Rest %d", err, r.Rest())
		}
		if _, err := r.String(); !errors.Is(err, errShort) {
			t.Fatalf("String at the end: %v", err)
		}
	}
	bad := []struct {
		b    *builder
		want error
	}{
		{(&builder{}).str("a\xff"), errUTF8},
		{(&builder{}).str("a\x00"), errNUL},
		{(&builder{}).u32(1).raw('a', 'b'), errNoTerm},
		{(&builder{}).u32(7).raw('a', 0), errShort},
		{(&builder{}).raw(0, 0), errShort},
	}
	for i, c := range bad {
		r := NewReader(c.b.b, false)
		if _, err := r.String(); !errors.Is(err, c.want) {
			t.Errorf("%d: err = %v, want %v", i, err, c.want)
		}
		if r.Rest() != len(c.b.b) {
			t.Errorf("%d: reader moved", i)
		}
	}
	// Padding before a string must be zero.
	r := NewReader([]byte{1, 1, 1, 0, 0, 0, 0, 0}, false)
	r.off = 1
	if _, err := r.String(); !errors.Is(err, errPadding) {
		t.Errorf("padding: %v", err)
	}
}

func TestValidSignature(t *testing.T) {
	valid := []string{
		"", "y", "bnqiuxtdhsogv", "ay", "a{sv}", "a{sa(ssssssouso)}", "(i)", "((i))a(ii)",
		"aaaai", "a{y(a{yv})}", strings.Repeat("a", 32) + "y",
		strings.Repeat("(", 32) + "y" + strings.Repeat(")", 32),
		strings.Repeat("a(", 32) + "y" + strings.Repeat(")", 32),
		strings.Repeat("y", 255),
	}
	invalid := []string{
		"a", "aa", "(", ")", "()", "{sv}", "a{}", "a{s}", "a{svv}", "a{vs}", "a{(s)v}",
		"a{sv", "(a)", "a)", "(ii", "ii)", "m", "r", "e", "*", "?", "@", "&", "^",
		"a{ay}", "{", "}", "a{s}v",
		strings.Repeat("a", 33) + "y",
		strings.Repeat("(", 33) + "y" + strings.Repeat(")", 33),
		strings.Repeat("a{s", 33) + "y" + strings.Repeat("}", 33),
		strings.Repeat("y", 256),
		"y\x00",
	}
	for _, s := range valid {
		if !ValidSignature(s) {
			t.Errorf("ValidSignature(%q) = false", s)
		}
	}
	for _, s := range invalid {
		if ValidSignature(s) {
			t.Errorf("ValidSignature(%q) = true", s)
		}
	}
	// godbus agrees on the plain cases.
	for _, s := range valid[:10] {
		if _, err := dbus.ParseSignature(s); err != nil {
			t.Errorf("godbus refuses %q: %v", s, err)
		}
	}
}

func TestValidString(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"", true}, {"abc", true}, {"abcdefgh", true}, {"abcdefghijklmnopq", true},
		{"abcdefgh\x00", false}, {"\x00abcdefgh", false}, {"abcdefg\x00ijklmnop", false},
		{"abcdefghé", true}, {"é", true}, {"abcdefgh\xff", false}, {"\xffabcdefgh", false},
		{"abcdefghijklmnoé\x00", false}, {"ab\x7fcdefgh", true}, {"abcdefg\x01", true},
		{"\U0010FFFF\uFFFE", true}, {"\xed\xbf\xbf", false},
	} {
		if got := validString([]byte(c.s)); got != c.want {
			t.Errorf("validString(%q) = %v", c.s, got)
		}
	}
}

func TestArgSignature(t *testing.T) {
	for _, c := range []struct {
		sig  string
		n    int
		want string
	}{
		{"sssa{sv}", 3, "a{sv}"}, {"sa{sv}as", 1, "a{sv}"}, {"sa{sv}as", 2, "as"}, {"a(so)u", 0, "a(so)"},
		{"a(so)u", 1, "u"}, {"u", 1, ""}, {"", 0, ""}, {"aa{s(ii)}v", 0, "aa{s(ii)}"}, {"aa{s(ii)}v", 1, "v"},
	} {
		if got := ArgSignature(c.sig, c.n); got != c.want {
			t.Errorf("ArgSignature(%q, %d) = %q, want %q", c.sig, c.n, got, c.want)
		}
	}
}
