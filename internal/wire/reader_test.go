// SPDX-License-Identifier: Apache-2.0

package wire_test

import (
	"testing"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// TestReaderUint32 reads a number after a string (padding) in both byte
// orders and refuses a short or badly padded body.
func TestReaderUint32(t *testing.T) {
	le := []byte{1, 0, 0, 0, 'x', 0, 0, 0, 0x2a, 0, 0, 0}
	be := []byte{0, 0, 0, 1, 'x', 0, 0, 0, 0, 0, 0, 0x2a}
	for name, c := range map[string]struct {
		body []byte
		big  bool
	}{"little": {le, false}, "big": {be, true}} {
		r := wire.NewReader(c.body, c.big)
		if s, err := r.String(); err != nil || s != "x" {
			t.Fatalf("%s: String = %q, %v", name, s, err)
		}
		if v, err := r.Uint32(); err != nil || v != 42 {
			t.Fatalf("%s: Uint32 = %d, %v", name, v, err)
		}
		if err := r.Done(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	short := wire.NewReader([]byte{1, 2}, false)
	if _, err := short.Uint32(); err == nil {
		t.Fatal("short body read")
	}
	padded := wire.NewReader([]byte{1, 0, 0, 0, 'x', 0, 7, 0, 1, 0, 0, 0}, false)
	padded.String()
	if _, err := padded.Uint32(); err == nil {
		t.Fatal("non-zero padding accepted")
	}
}
