// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// validString reports whether b may be the content of a D-Bus string:
// valid UTF-8 without NUL (the specification allows noncharacters).
func validString(b []byte) bool {
	// Plain ASCII without NUL, eight bytes at a time, is the common case.
	const low, high = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if (x|(x-low)&^x)&high != 0 { // a byte >= 0x80, or a zero byte
			return validStringSlow(b[i:])
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == 0 || c >= utf8.RuneSelf {
			return validStringSlow(b[i:])
		}
	}
	return true
}

func validStringSlow(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// isNameChar reports whether c may appear in an object path element, an
// interface or member name element ([A-Za-z0-9_]).
func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validPath reports whether b is a valid object path: "/" or "/" followed by
// non-empty elements of [A-Za-z0-9_] separated by single slashes.
func validPath(b []byte) bool {
	if len(b) == 0 || b[0] != '/' {
		return false
	}
	if len(b) == 1 {
		return true
	}
	if b[len(b)-1] == '/' {
		return false
	}
	prev := byte('/')
	for _, c := range b[1:] {
		if c == '/' {
			if prev == '/' {
				return false
			}
		} else if !isNameChar(c) {
			return false
		}
		prev = c
	}
	return true
}

// validDotted reports whether b is a valid interface or error name: at most
// 255 bytes, two or more non-empty elements separated by dots, each of
// [A-Za-z0-9_] and not starting with a digit.
func validDotted(b []byte) bool {
	return len(b) <= maxSigLen && validElements(b, false, false)
}

// validElements reports whether b is two or more non-empty elements of
// [A-Za-z0-9_] (plus '-' if dash) separated by dots, none starting with a
// digit unless digitFirst.
func validElements(b []byte, dash, digitFirst bool) bool {
	if len(b) == 0 {
		return false
	}
	dots := 0
	start := true // at the start of an element
	for _, c := range b {
		switch {
		case c == '.':
			if start {
				return false
			}
			dots++
			start = true
		case isNameChar(c) || dash && c == '-':
			if start && !digitFirst && isDigit(c) {
				return false
			}
			start = false
		default:
			return false
		}
	}
	return dots > 0 && !start
}

// validMember reports whether b is a valid member name: 1 to 255 bytes of
// [A-Za-z0-9_], not starting with a digit.
func validMember(b []byte) bool {
	if len(b) == 0 || len(b) > maxSigLen || isDigit(b[0]) {
		return false
	}
	for _, c := range b {
		if !isNameChar(c) {
			return false
		}
	}
	return true
}

// validBusName reports whether b is a valid unique (":1.42") or well-known
// ("org.example.Name") bus name: at most 255 bytes, two or more non-empty
// elements of [A-Za-z0-9_-] separated by dots; elements of well-known names
// do not start with a digit.
func validBusName(b []byte) bool {
	if len(b) == 0 || len(b) > maxSigLen {
		return false
	}
	if b[0] == ':' {
		return validElements(b[1:], true, true)
	}
	return validElements(b, true, false)
}

// ValidString reports whether s may be sent as a D-Bus string: valid UTF-8
// without NUL. Writer.String leaves this check to its caller.
func ValidString(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// ValidObjectPath reports whether s is a valid D-Bus object path.
func ValidObjectPath(s string) bool { return validPath([]byte(s)) }
