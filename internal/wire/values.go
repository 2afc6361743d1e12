// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"math"
)

// Readers of the basic types besides String and Uint32, and of arrays and
// structs. On error the Reader does not move.

// fixedAt reads n bytes (n = 1, 2, 4 or 8, aligned to n) and returns them.
func (r *Reader) fixedAt(n int) ([]byte, error) {
	off := r.off
	if err := skipPadding(r.buf, &off, n); err != nil {
		return nil, err
	}
	if len(r.buf)-off < n {
		return nil, failAt(off, errShort)
	}
	r.off = off + n
	return r.buf[off : off+n], nil
}

// Byte reads a byte (type 'y').
func (r *Reader) Byte() (byte, error) {
	b, err := r.fixedAt(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// Bool reads a boolean (type 'b'); values other than 0 and 1 are refused.
func (r *Reader) Bool() (bool, error) {
	off := r.off
	v, err := r.Uint32()
	if err != nil {
		return false, err
	}
	if v > 1 {
		r.off = off
		return false, failAt(off, errBool)
	}
	return v == 1, nil
}

// Uint16 reads a uint16 (type 'q').
func (r *Reader) Uint16() (uint16, error) {
	b, err := r.fixedAt(2)
	if err != nil {
		return 0, err
	}
	if r.big {
		return binary.BigEndian.Uint16(b), nil
	}
	return binary.LittleEndian.Uint16(b), nil
}

// Int16 reads an int16 (type 'n').
func (r *Reader) Int16() (int16, error) {
	v, err := r.Uint16()
	return int16(v), err
}

// Int32 reads an int32 (type 'i').
func (r *Reader) Int32() (int32, error) {
	v, err := r.Uint32()
	return int32(v), err
}

// Uint64 reads a uint64 (type 't').
func (r *Reader) Uint64() (uint64, error) {
	b, err := r.fixedAt(8)
	if err != nil {
		return 0, err
	}
	if r.big {
		return binary.BigEndian.Uint64(b), nil
	}
	return binary.LittleEndian.Uint64(b), nil
}

// Int64 reads an int64 (type 'x').
func (r *Reader) Int64() (int64, error) {
	v, err := r.Uint64()
	return int64(v), err
}

// Double reads a float64 (type 'd').
func (r *Reader) Double() (float64, error) {
	v, err := r.Uint64()
	return math.Float64frombits(v), err
}

// ObjectPath reads an object path (type 'o'), checking its syntax. The
// result is a copy.
func (r *Reader) ObjectPath() (string, error) {
	off := r.off
	b, err := readString(r.buf, &off, r.big)
	if err != nil {
		return "", err
	}
	if !validPath(b) {
		return "", failAt(r.off, errPath)
	}
	r.off = off
	return string(b), nil
}

// Signature reads a signature (type 'g'), checking it. The result is a
// copy.
func (r *Reader) Signature() (string, error) {
	off := r.off
	s, err := readSignature(r.buf, &off)
	if err != nil {
		return "", err
	}
	if !ValidSignature(s) {
		return "", failAt(r.off, errSignature)
	}
	r.off = off
	return string([]byte(s)), nil
}

// BeginStruct skips the padding before a struct or dict entry
// (alignment 8).
func (r *Reader) BeginStruct() error { return skipPadding(r.buf, &r.off, 8) }

// BeginArray reads the length of an array whose elements align to
// elemAlign and the padding before its first element, and returns the
// offset where the elements end: read elements while More(end).
func (r *Reader) BeginArray(elemAlign int) (end int, err error) {
	start := r.off
	n, err := r.Uint32()
	if err != nil {
		return 0, err
	}
	if n > maxArrayLen {
		r.off = start
		return 0, failAt(start, errArrayLen)
	}
	// The padding before the first element is there even when the
	// array is empty.
	if err := skipPadding(r.buf, &r.off, elemAlign); err != nil {
		r.off = start
		return 0, err
	}
	end = r.off + int(n)
	if end > len(r.buf) {
		r.off = start
		return 0, failAt(start, errShort)
	}
	return end, nil
}

// More reports whether an array ending at end (from BeginArray) has more
// elements; it fails when the elements overran end.
func (r *Reader) More(end int) (bool, error) {
	if r.off < end {
		return true, nil
	}
	if r.off > end {
		return false, failAt(end, errArrayEnd)
	}
	return false, nil
}

// CheckBody checks that body holds exactly one value of each complete type
// of sig, by the rules Copy applies, in the given byte order.
func CheckBody(sig string, body []byte, bigEndian bool) error {
	if !ValidSignature(sig) {
		return failAt(0, errSignature)
	}
	r := NewReader(body, bigEndian)
	for i := 0; i < len(sig); {
		j := skipType(sig, i)
		if err := r.Skip(sig[i:j]); err != nil {
			return err
		}
		i = j
	}
	return r.Done()
}
