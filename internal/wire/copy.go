// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"strings"
)

// Copy reads one complete value of the single complete type sig from r and
// appends it to w, re-aligned for w's position and converted to little
// endian. Array lengths are recomputed, since the padding inside an array can
// change when the alignment moves by 4.
//
// Everything the message bus checks is checked: sig itself and the
// signatures inside the value (at most 255 bytes, nesting of at most 32
// arrays and 32 structs or dict entries, dict entries only in arrays and
// with basic keys, variants of exactly one complete type), at most 64
// containers around any value counting variants, strings and object paths
// valid and NUL-terminated, booleans 0 or 1, padding zero, arrays of at
// most 2^26 bytes whose elements end exactly at the array's length. Unix
// file descriptors ('h') are refused: they cannot be passed on.
//
// On error r and w are left as they were (bytes of w.Buf beyond its length
// may have been overwritten). w.Buf must not share memory with the body r
// reads.
func Copy(w *Writer, r *Reader, sig string) error {
	if !validSingle(sig) {
		return failAt(r.off, errSingle)
	}
	if strings.IndexByte(sig, 'h') >= 0 {
		return failAt(r.off, errFD)
	}
	// Align both sides for the value first: then whether it keeps its
	// alignment modulo 8 is plain to see.
	a := alignOf(sig[0])
	off := r.off
	if err := skipPadding(r.buf, &off, a); err != nil {
		return err
	}
	c := copier{src: r.buf, off: off, big: r.big, out: true, dst: w.Buf}
	c.pad(a)
	if !r.big && (off-len(c.dst))&7 == 0 {
		// Same byte order, same alignment: the bytes stay as they
		// are, so check them and copy them in one go.
		c.out = false
		if _, err := c.value(sig, 0, 0); err != nil {
			return err
		}
		c.dst = append(c.dst, r.buf[off:c.off]...)
	} else if _, err := c.value(sig, 0, 0); err != nil {
		return err
	}
	if len(c.dst) > MaxMessageSize {
		return failAt(off, errTooBig)
	}
	w.Buf = c.dst
	r.off = c.off
	return nil
}

// copier walks values of src, checking them and, if out is set, appending
// them to dst in little endian.
type copier struct {
	src []byte
	off int
	big bool
	out bool
	fds bool // accept 'h' (skipping header fields)
	dst []byte
}

var zeros [8]byte

// pad appends zero bytes to dst up to a multiple of n.
func (c *copier) pad(n int) {
	if p := -len(c.dst) & (n - 1); p != 0 {
		c.dst = append(c.dst, zeros[:p]...)
	}
}

// fixed reads (and copies) a fixed-size number of n bytes.
func (c *copier) fixed(n int) error {
	if err := skipPadding(c.src, &c.off, n); err != nil {
		return err
	}
	if len(c.src)-c.off < n {
		return failAt(c.off, errShort)
	}
	if c.out {
		c.pad(n)
		c.dst = appendSwapped(c.dst, c.src[c.off:c.off+n], n, c.big)
	}
	c.off += n
	return nil
}

// appendSwapped appends the numbers of n bytes each in b to dst in little
// endian; b is in big endian if big is set.
func appendSwapped(dst, b []byte, n int, big bool) []byte {
	if !big || n == 1 {
		return append(dst, b...)
	}
	switch n {
	case 2:
		for i := 0; i+2 <= len(b); i += 2 {
			dst = binary.LittleEndian.AppendUint16(dst, binary.BigEndian.Uint16(b[i:]))
		}
	case 4:
		for i := 0; i+4 <= len(b); i += 4 {
			dst = binary.LittleEndian.AppendUint32(dst, binary.BigEndian.Uint32(b[i:]))
		}
	default:
		for i := 0; i+8 <= len(b); i += 8 {
			dst = binary.LittleEndian.AppendUint64(dst, binary.BigEndian.Uint64(b[i:]))
		}
	}
	return dst
}

// value checks (and copies) one value of the complete type at sig[i], which
// is inside depth containers, and returns the index after the type. sig
// must be valid.
func (c *copier) value(sig string, i, depth int) (int, error) {
	t := sig[i]
	switch t {
	case 'y', 'n', 'q', 'i', 'u', 'x', 't', 'd':
		return i + 1, c.fixed(fixedSize(t))
	case 'h':
		if !c.fds {
			return 0, failAt(c.off, errFD)
		}
		return i + 1, c.fixed(4)
	case 'b':
		if err := skipPadding(c.src, &c.off, 4); err != nil {
			return 0, err
		}
		if len(c.src)-c.off < 4 {
			return 0, failAt(c.off, errShort)
		}
		if uint32At(c.src, c.off, c.big) > 1 {
			return 0, failAt(c.off, errBool)
		}
		return i + 1, c.fixed(4)
	case 's', 'o':
		start := c.off
		b, err := readString(c.src, &c.off, c.big)
		if err != nil {
			return 0, err
		}
		if t == 'o' {
			if !validPath(b) {
				return 0, failAt(start, errPath)
			}
		} else if !validString(b) {
			return 0, failAt(start, errUTF8Or(b))
		}
		if c.out {
			c.pad(4)
			c.dst = binary.LittleEndian.AppendUint32(c.dst, uint32(len(b)))
			c.dst = append(c.dst, b...)
			c.dst = append(c.dst, 0)
		}
		return i + 1, nil
	case 'g':
		start := c.off
		s, err := readSignature(c.src, &c.off)
		if err != nil {
			return 0, err
		}
		if !ValidSignature(s) {
			return 0, failAt(start, errSignature)
		}
		if c.out {
			c.dst = append(c.dst, byte(len(s)))
			c.dst = append(c.dst, s...)
			c.dst = append(c.dst, 0)
		}
		return i + 1, nil
	case 'v':
		start := c.off
		s, err := readSignature(c.src, &c.off)
		if err != nil {
			return 0, err
		}
		if !validSingle(s) {
			return 0, failAt(start, errSingle)
		}
		if !c.fds && strings.IndexByte(s, 'h') >= 0 {
			return 0, failAt(start, errFD)
		}
		if depth >= maxDepth {
			return 0, failAt(start, errDepth)
		}
		if c.out {
			c.dst = append(c.dst, byte(len(s)))
			c.dst = append(c.dst, s...)
			c.dst = append(c.dst, 0)
		}
		if _, err := c.value(s, 0, depth+1); err != nil {
			return 0, err
		}
		return i + 1, nil
	case 'a':
		return c.array(sig, i, depth)
	default: // '(' or '{'
		if depth >= maxDepth {
			return 0, failAt(c.off, errDepth)
		}
		if err := skipPadding(c.src, &c.off, 8); err != nil {
			return 0, err
		}
		if c.out {
			c.pad(8)
		}
		i++
		for sig[i] != ')' && sig[i] != '}' {
			var err error
			if i, err = c.value(sig, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i + 1, nil
	}
}

// array checks (and copies) the array whose type starts at sig[i].
func (c *copier) array(sig string, i, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, failAt(c.off, errDepth)
	}
	if err := skipPadding(c.src, &c.off, 4); err != nil {
		return 0, err
	}
	if len(c.src)-c.off < 4 {
		return 0, failAt(c.off, errShort)
	}
	start := c.off
	n := uint32At(c.src, c.off, c.big)
	c.off += 4
	if n > maxArrayLen {
		return 0, failAt(start, errArrayLen)
	}
	et := sig[i+1]
	ea := alignOf(et)
	if err := skipPadding(c.src, &c.off, ea); err != nil {
		return 0, err
	}
	if int(n) > len(c.src)-c.off {
		return 0, failAt(start, errShort)
	}
	end := c.off + int(n)
	var lenAt, first int
	if c.out {
		c.pad(4)
		lenAt = len(c.dst)
		c.dst = append(c.dst, 0, 0, 0, 0)
		c.pad(ea)
		first = len(c.dst)
	}
	next := i + 2
	if size := fixedSize(et); size != 0 {
		// Numbers: no padding between elements, nothing to re-align.
		if et == 'h' && !c.fds {
			return 0, failAt(start, errFD)
		}
		if int(n)%size != 0 {
			return 0, failAt(start, errArrayEnd)
		}
		if et == 'b' {
			for o := c.off; o < end; o += 4 {
				if uint32At(c.src, o, c.big) > 1 {
					return 0, failAt(o, errBool)
				}
			}
		}
		if c.out {
			c.dst = appendSwapped(c.dst, c.src[c.off:end], size, c.big)
		}
		c.off = end
	} else {
		next = skipType(sig, i+1)
		for c.off < end {
			if _, err := c.value(sig, i+1, depth+1); err != nil {
				return 0, err
			}
		}
		if c.off != end {
			return 0, failAt(start, errArrayEnd)
		}
	}
	if c.out {
		m := len(c.dst) - first
		if m > maxArrayLen {
			return 0, failAt(start, errArrayLen)
		}
		binary.LittleEndian.PutUint32(c.dst[lenAt:], uint32(m))
	}
	return next, nil
}
