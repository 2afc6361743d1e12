// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Log levels accepted in LogLevel (exact case).
const (
	LogLevelDebug = "DEBUG"
	LogLevelInfo  = "INFO"
	LogLevelWarn  = "WARN"
	LogLevelError = "ERROR"
)

// Log targets accepted in LogTarget (matched case-insensitively).
const (
	LogTargetJournald   = "journald"
	LogTargetStderr     = "stderr"
	LogTargetStderrFull = "stderr-full"
)

// Sentinel errors wrapped by ValueError and returned by the Parse* helpers.
var (
	// ErrNotANumber means the text is not a base-10 integer.
	ErrNotANumber = errors.New("not a number")
	// ErrOutOfRange means the number does not fit the allowed range.
	ErrOutOfRange = errors.New("out of range")
	// ErrNodeNameNotUTF8 means a node name is not valid UTF-8 (it could
	// not be sent as a D-Bus string).
	ErrNodeNameNotUTF8 = errors.New("node name is not valid UTF-8")
	// ErrNodeNameControl means a node name contains NUL or another control
	// character (Unicode category Cc); it is wrapped with the code point.
	ErrNodeNameControl = errors.New("node name contains a control character")
	// ErrNodeNameNoncharacter: a node name holds a Unicode noncharacter
	// (U+FDD0..U+FDEF, U+FFFE, U+FFFF and their like in every plane). The
	// D-Bus specification allows them, but sd-bus refuses such strings, so
	// upstream's C tools could not read a ListNodes that carried one.
	ErrNodeNameNoncharacter = errors.New("node name contains a Unicode noncharacter")
)

// ValueError is a fatal validation error of one configuration value. Its
// text is `FILE:LINE: invalid KEY "VALUE": reason` when the value came from a
// file, `ORIGIN: invalid ...` for other sources with an origin, and
// `invalid ...` otherwise.
type ValueError struct {
	Key    string
	Value  string
	Source Source
	Err    error // ErrNotANumber, ErrOutOfRange or an ErrNodeName* error, possibly wrapped
}

// Error formats the error as documented on ValueError.
func (e *ValueError) Error() string {
	msg := fmt.Sprintf("invalid %s %q: %v", e.Key, e.Value, e.Err)
	if src := e.Source.String(); src != "" {
		return src + ": " + msg
	}
	return msg
}

// Unwrap returns the underlying reason.
func (e *ValueError) Unwrap() error { return e.Err }

// ParseBool interprets a configuration boolean: true when s equals,
// ASCII-case-insensitively, "true", "t", "yes", "y" or "on"; false for
// anything else, including "" and "1".
func ParseBool(s string) bool {
	for _, t := range []string{"true", "t", "yes", "y", "on"} {
		if equalFoldASCII(s, t) {
			return true
		}
	}
	return false
}

// ParseLong parses a base-10 signed 64-bit integer like upstream's
// parse_long (strtol): leading whitespace and a sign are accepted, any
// trailing character is an error. It returns ErrNotANumber or ErrOutOfRange.
func ParseLong(s string) (int64, error) {
	n, err := strconv.ParseInt(lskip(s), 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, ErrOutOfRange
		}
		return 0, ErrNotANumber
	}
	return n, nil
}

// ParseRange parses a base-10 integer (see ParseLong) and checks that it
// lies in min..max.
func ParseRange(s string, min, max int64) (int64, error) {
	n, err := ParseLong(s)
	if err == nil && (n < min || n > max) {
		err = ErrOutOfRange
	}
	if errors.Is(err, ErrOutOfRange) {
		return 0, fmt.Errorf("%w (%d..%d)", ErrOutOfRange, min, max)
	}
	return n, err
}

// ParsePort parses a TCP port number in 0..65535.
func ParsePort(s string) (uint16, error) {
	n, err := ParseRange(s, 0, 65535)
	return uint16(n), err
}

// CheckNodeName reports whether s may be used as a node name: it must be
// valid UTF-8 (a D-Bus string) and contain no control character, NUL
// included, and no Unicode noncharacter. It returns nil,
// ErrNodeNameNotUTF8 or an error wrapping ErrNodeNameControl or
// ErrNodeNameNoncharacter. The empty name passes (callers treat it as unset);
// there is no length limit.
func CheckNodeName(s string) error {
	if !utf8.ValidString(s) {
		return ErrNodeNameNotUTF8
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w (U+%04X)", ErrNodeNameControl, r)
		}
		if (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE {
			return fmt.Errorf("%w (U+%04X)", ErrNodeNameNoncharacter, r)
		}
	}
	return nil
}

// IsValidLogLevel reports whether s is one of DEBUG, INFO, WARN, ERROR
// (exact case).
func IsValidLogLevel(s string) bool {
	switch s {
	case LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError:
		return true
	}
	return false
}

// ParseLogTarget returns the canonical (lower-case) log target for s, which
// is matched case-insensitively, and whether it is valid.
func ParseLogTarget(s string) (string, bool) {
	for _, t := range []string{LogTargetJournald, LogTargetStderr, LogTargetStderrFull} {
		if equalFoldASCII(s, t) {
			return t, true
		}
	}
	return "", false
}

// equalFoldASCII compares two strings ignoring ASCII case only (like
// strcasecmp in the C locale).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
