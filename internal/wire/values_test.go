// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

type valuesPair struct {
	S string
	U uint32
}

// writeValues writes every basic type, an array of strings and an array
// of structs.
func writeValues(w *Writer) {
	w.Byte(7)
	w.Bool(true)
	w.Int16(-3)
	w.Uint16(65000)
	w.Int32(-70000)
	w.Uint32(4000000000)
	w.Int64(math.MinInt64)
	w.Uint64(math.MaxUint64)
	w.Double(2.5)
	w.String("ä")
	w.ObjectPath("/a/b")
	w.Signature("a{sv}")
	m := w.BeginArray(4)
	w.String("x")
	w.String("yz")
	w.EndArray(m)
	m = w.BeginArray(8)
	for i, s := range []string{"p", "q"} {
		w.BeginStruct()
		w.String(s)
		w.Uint32(uint32(i))
	}
	w.EndArray(m)
	m = w.BeginArray(8) // empty
	w.EndArray(m)
	w.Bool(false)
}

var wantValues = []any{byte(7), true, int16(-3), uint16(65000), int32(-70000), uint32(4000000000),
	int64(math.MinInt64), uint64(math.MaxUint64), 2.5, "ä", dbus.ObjectPath("/a/b"), dbus.SignatureOf(map[string]dbus.Variant{}),
	[]string{"x", "yz"}, []valuesPair{{"p", 0}, {"q", 1}}, []valuesPair{}, false}

const valuesSig = "ybnqiuxtdsogasa(su)a(su)b"

func TestWriterMatchesGodbus(t *testing.T) {
	var w Writer
	writeValues(&w)
	want := bodyOf(t, godbusSignal(t, binary.LittleEndian, wantValues...))
	if !cmp.Equal(w.Buf, want) {
		t.Fatalf("Writer body\n% x\ngodbus body\n% x", w.Buf, want)
	}
}

func TestReaderReadsGodbus(t *testing.T) {
	for _, order := range orders {
		body := bodyOf(t, godbusSignal(t, order, wantValues...))
		r := NewReader(body, order == binary.BigEndian)
		var got []any
		must := func(v any, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%v: %v", order, err)
			}
			got = append(got, v)
		}
		must(r.Byte())
		must(r.Bool())
		must(r.Int16())
		must(r.Uint16())
		must(r.Int32())
		must(r.Uint32())
		must(r.Int64())
		must(r.Uint64())
		must(r.Double())
		must(r.String())
		p, err := r.ObjectPath()
		must(dbus.ObjectPath(p), err)
		g, err := r.Signature()
		must(dbus.ParseSignatureMust(g), err)
		must(r.Strings())
		for k := 0; k < 2; k++ {
			end, err := r.BeginArray(8)
			if err != nil {
				t.Fatal(err)
			}
			pairs := []valuesPair{}
			for {
				more, err := r.More(end)
				if err != nil {
					t.Fatal(err)
				}
				if !more {
					break
				}
				var e valuesPair
				if err := r.BeginStruct(); err != nil {
					t.Fatal(err)
				}
				if e.S, err = r.String(); err != nil {
					t.Fatal(err)
				}
				if e.U, err = r.Uint32(); err != nil {
					t.Fatal(err)
				}
				pairs = append(pairs, e)
			}
			got = append(got, pairs)
		}
		must(r.Bool())
		if err := r.Done(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantValues, got, cmpOpts); diff != "" {
			t.Fatalf("%v: (-want +got)\n%s", order, diff)
		}
	}
}

func TestReaderRefusesBadValues(t *testing.T) {
	var w Writer
	w.Uint32(2)
	r := NewReader(w.Buf, false)
	if _, err := r.Bool(); !errors.Is(err, errBool) || r.Rest() != 4 {
		t.Fatalf("Bool(2): %v, rest %d", err, r.Rest())
	}
	w.Reset()
	w.String("no//path")
	r = NewReader(w.Buf, false)
	if _, err := r.ObjectPath(); !errors.Is(err, errPath) || r.Rest() != len(w.Buf) {
		t.Fatalf("ObjectPath: %v", err)
	}
	w.Reset()
	w.Signature("a{")
	r = NewReader(w.Buf, false)
	if _, err := r.Signature(); !errors.Is(err, errSignature) {
		t.Fatalf("Signature: %v", err)
	}
	r = NewReader([]byte{1, 2, 3}, false)
	if _, err := r.Uint64(); !errors.Is(err, errShort) {
		t.Fatalf("Uint64 short: %v", err)
	}
	// An array claiming more than the body holds.
	w.Reset()
	w.Uint32(100)
	r = NewReader(w.Buf, false)
	if _, err := r.BeginArray(4); !errors.Is(err, errShort) || r.Rest() != 4 {
		t.Fatalf("BeginArray: %v", err)
	}
	// Elements overrunning the array's length.
	w.Reset()
	m := w.BeginArray(4)
	w.Byte(1)
	w.EndArray(m)
	w.Buf = append(w.Buf, 0, 0, 0)
	r = NewReader(w.Buf, false)
	end, err := r.BeginArray(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Uint32(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.More(end); !errors.Is(err, errArrayEnd) {
		t.Fatalf("More: %v", err)
	}
}
