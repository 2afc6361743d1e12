// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"unsafe"
)

// Reader reads values of a message body. Offsets for alignment are relative
// to the body start (the body always starts at an 8-aligned offset of the
// message, so this is the same alignment).
type Reader struct {
	buf []byte
	off int
	big bool
}

// NewReader returns a Reader over body in the given byte order.
func NewReader(body []byte, bigEndian bool) Reader {
	return Reader{buf: body, big: bigEndian}
}

// String reads a string (type 's'); it must be valid UTF-8 without NUL,
// correctly terminated. The result is a copy. On error the Reader does not
// move.
func (r *Reader) String() (string, error) {
	off := r.off
	b, err := readString(r.buf, &off, r.big)
	if err != nil {
		return "", err
	}
	if !validString(b) {
		return "", failAt(r.off, errUTF8Or(b))
	}
	r.off = off
	return string(b), nil
}

// Uint32 reads a 32-bit unsigned number (type 'u'). On error the Reader
// does not move.
func (r *Reader) Uint32() (uint32, error) {
	off := r.off
	if err := skipPadding(r.buf, &off, 4); err != nil {
		return 0, err
	}
	if len(r.buf)-off < 4 {
		return 0, failAt(off, errShort)
	}
	r.off = off + 4
	return uint32At(r.buf, off, r.big), nil
}

// Done reports an error unless the whole body was consumed.
func (r *Reader) Done() error {
	if r.off != len(r.buf) {
		return failAt(r.off, errTrailing)
	}
	return nil
}

// Rest returns the number of unread bytes.
func (r *Reader) Rest() int { return len(r.buf) - r.off }

// errUTF8Or tells why b, which failed validString, is not a valid string.
func errUTF8Or(b []byte) error {
	for _, c := range b {
		if c == 0 {
			return errNUL
		}
	}
	return errUTF8
}

// uint32At reads a 32-bit number at b[off:] in the given byte order.
func uint32At(b []byte, off int, big bool) uint32 {
	if big {
		return binary.BigEndian.Uint32(b[off:])
	}
	return binary.LittleEndian.Uint32(b[off:])
}

// skipPadding advances *off to a multiple of n (a power of two), checking
// that the skipped bytes exist and are zero.
func skipPadding(b []byte, off *int, n int) error {
	o := *off
	p := -o & (n - 1)
	if p == 0 {
		return nil
	}
	if p > len(b)-o {
		return failAt(o, errShort)
	}
	for _, c := range b[o : o+p] {
		if c != 0 {
			return failAt(o, errPadding)
		}
	}
	*off = o + p
	return nil
}

// readString reads the length, bytes and terminating NUL of a string or
// object path at *off (padding included) and returns the bytes without the
// NUL. It does not check their content.
func readString(b []byte, off *int, big bool) ([]byte, error) {
	o := *off
	if err := skipPadding(b, &o, 4); err != nil {
		return nil, err
	}
	if len(b)-o < 4 {
		return nil, failAt(o, errShort)
	}
	n := uint64(uint32At(b, o, big))
	o += 4
	if n >= uint64(len(b)-o) {
		return nil, failAt(o-4, errShort)
	}
	end := o + int(n)
	if b[end] != 0 {
		return nil, failAt(end, errNoTerm)
	}
	*off = end + 1
	return b[o:end], nil
}

// readSignature reads the length, bytes and terminating NUL of a signature
// at *off and returns it without the NUL, as a string that aliases b: it must
// not outlive the current call of the package and b must not change meanwhile.
// It does not check the content.
func readSignature(b []byte, off *int) (string, error) {
	o := *off
	if o >= len(b) {
		return "", failAt(o, errShort)
	}
	n := int(b[o])
	o++
	if n >= len(b)-o {
		return "", failAt(o-1, errShort)
	}
	if b[o+n] != 0 {
		return "", failAt(o+n, errNoTerm)
	}
	*off = o + n + 1
	if n == 0 {
		return "", nil
	}
	return unsafe.String(&b[o], n), nil
}
