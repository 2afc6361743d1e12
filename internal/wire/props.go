// SPDX-License-Identifier: Apache-2.0

package wire

// Skip reads over one complete value of the single complete type sig,
// checking it as Copy does. On error the Reader does not move.
func (r *Reader) Skip(sig string) error {
	if !validSingle(sig) {
		return failAt(r.off, errSingle)
	}
	c := copier{src: r.buf, off: r.off, big: r.big, fds: true}
	if _, err := c.value(sig, 0, 0); err != nil {
		return err
	}
	r.off = c.off
	return nil
}

// PropString returns the value of the string property key in props, the
// body of one a{sv} (such as Copy writes: little endian, aligned from its
// first byte). ok is false when the key is missing or not a string. props
// is expected to be valid; malformed input gives ok false.
func PropString(props []byte, key string) (value string, ok bool) {
	r := NewReader(props, false)
	off := r.off
	if err := skipPadding(r.buf, &off, 4); err != nil || len(r.buf)-off < 4 {
		return "", false
	}
	n := int(uint32At(r.buf, off, false))
	r.off = off + 4
	if err := skipPadding(r.buf, &r.off, 8); err != nil {
		return "", false
	}
	end := r.off + n // the elements start 8-aligned
	for {
		if err := skipPadding(r.buf, &r.off, 8); err != nil || r.off >= end {
			return "", false
		}
		k, err := readString(r.buf, &r.off, false)
		if err != nil {
			return "", false
		}
		sig, err := readSignature(r.buf, &r.off)
		if err != nil || !validSingle(sig) {
			return "", false
		}
		if sig == "s" && string(k) == key {
			v, err := r.String()
			return v, err == nil
		}
		if err := r.Skip(sig); err != nil {
			return "", false
		}
	}
}

// Strings reads an array of strings (type "as"). On error the Reader does
// not move.
func (r *Reader) Strings() ([]string, error) {
	start := r.off
	n, err := r.Uint32()
	if err != nil {
		return nil, err
	}
	end := r.off + int(n)
	if n > maxArrayLen || end > len(r.buf) {
		r.off = start
		return nil, failAt(start, errShort)
	}
	var out []string
	for r.off < end {
		s, err := r.String()
		if err != nil {
			r.off = start
			return nil, err
		}
		out = append(out, s)
	}
	if r.off != end {
		r.off = start
		return nil, failAt(end, errShort)
	}
	return out, nil
}
