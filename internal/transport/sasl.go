// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrHandshake marks a SASL handshake that failed because of what the peer
// sent (a protocol violation, a rejection or a limit being exceeded), as
// opposed to an I/O error or a timeout.
var ErrHandshake = errors.New("transport: SASL handshake failed")

// Limits of a SASL handshake. The line limits apply to ServerHandshake and
// ClientHandshake; the caller enforces the time limit (wireconn does).
const (
	// DefaultHandshakeTimeout bounds a whole SASL handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxLineLength bounds one SASL line, without its CRLF.
	DefaultMaxLineLength = 1024
	// DefaultMaxLines bounds the number of SASL lines a client may send.
	DefaultMaxLines = 32
)

// Mechanism names a SASL authentication mechanism.
type Mechanism string

// The mechanisms this package speaks, on both sides.
const (
	// MechanismAnonymous is the ANONYMOUS mechanism (the default of Dialer).
	MechanismAnonymous Mechanism = "ANONYMOUS"
	// MechanismExternal is the EXTERNAL mechanism with a uid as identity.
	MechanismExternal Mechanism = "EXTERNAL"
)

// serverMechanisms is the REJECTED line listing what the server supports.
const serverMechanisms = "REJECTED EXTERNAL ANONYMOUS"

// handshakeLimits bounds what one client may send during the handshake.
type handshakeLimits struct {
	maxLineLength int
	maxLines      int
}

// newGUID returns a fresh random 128-bit GUID as 32 lowercase hex digits.
func newGUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("transport: generating server GUID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validGUID reports whether s is 32 hex digits.
func validGUID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// readLine reads one CRLF (or bare LF) terminated line from r and returns it
// without the terminator. A line longer than max bytes is an error.
func readLine(r *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrHandshake, max)
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
		}
		return "", err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > max {
		return "", fmt.Errorf("%w: line longer than %d bytes", ErrHandshake, max)
	}
	return string(line), nil
}

// hasBufferedLine reports whether r already holds a complete line, i.e.
// whether reading the next line cannot block.
func hasBufferedLine(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// serverState is the state of the server side of the SASL exchange, named
// as in the D-Bus specification.
type serverState int

const (
	waitingForAuth serverState = iota
	waitingForData
	waitingForBegin
)

// checkResponse validates the (hex encoded) response data of mechanism mech.
// It returns errBadHex when data is not hex at all, and errRejected when the
// mechanism does not accept it.
func checkResponse(mech, data string) error {
	raw, err := hex.DecodeString(data)
	if err != nil {
		return errBadHex
	}
	switch Mechanism(mech) {
	case MechanismExternal:
		// Anonymous mode as upstream: any decimal uid is accepted, and an
		// empty response means "the uid of the socket", also accepted.
		for _, c := range raw {
			if c < '0' || c > '9' {
				return errRejected
			}
		}
		return nil
	case MechanismAnonymous:
		// The optional trace string is informative only.
		return nil
	}
	return errRejected
}

var (
	errBadHex   = errors.New("response is not hex")
	errRejected = errors.New("response rejected")
)

// serverHandshake runs the server half of the D-Bus SASL exchange: it reads
// the leading NUL byte and the client's lines from r and writes the replies
// to w, until the client sends BEGIN. Replies are written in line order and
// never held back until BEGIN; replies to lines that arrived together are
// sent in one write. Bytes following BEGIN stay in r. It returns the
// mechanism that succeeded.
func serverHandshake(r *bufio.Reader, w io.Writer, guid string, lim handshakeLimits) (Mechanism, error) {
	b, err := r.ReadByte()
	if err != nil {
		return "", fmt.Errorf("transport: reading leading NUL byte: %w", err)
	}
	if b != 0 {
		return "", fmt.Errorf("%w: first byte is %#02x, not NUL", ErrHandshake, b)
	}

	var out []byte
	reply := func(s string) {
		out = append(out, s...)
		out = append(out, '\r', '\n')
	}
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		_, err := w.Write(out)
		out = out[:0]
		if err != nil {
			return fmt.Errorf("transport: writing SASL reply: %w", err)
		}
		return nil
	}

	state := waitingForAuth
	mech := ""
	for lines := 0; ; lines++ {
		if !hasBufferedLine(r) {
			if err := flush(); err != nil {
				return "", err
			}
		}
		if lines >= lim.maxLines {
			_ = flush()
			return "", fmt.Errorf("%w: more than %d lines without BEGIN", ErrHandshake, lim.maxLines)
		}
		line, err := readLine(r, lim.maxLineLength)
		if err != nil {
			_ = flush()
			if errors.Is(err, ErrHandshake) {
				return "", err
			}
			return "", fmt.Errorf("transport: reading SASL line: %w", err)
		}
		cmd, arg, _ := strings.Cut(line, " ")

		switch cmd {
		case "BEGIN":
			if state == waitingForBegin {
				if err := flush(); err != nil {
					return "", err
				}
				return Mechanism(mech), nil
			}
			_ = flush()
			return "", fmt.Errorf("%w: BEGIN before authentication succeeded", ErrHandshake)
		case "CANCEL", "ERROR":
			state, mech = waitingForAuth, ""
			reply(serverMechanisms)
			continue
		}

		switch state {
		case waitingForAuth:
			if cmd != "AUTH" {
				reply("ERROR")
				continue
			}
			name, resp, hasResp := strings.Cut(arg, " ")
			if name != string(MechanismExternal) && name != string(MechanismAnonymous) {
				reply(serverMechanisms)
				continue
			}
			if !hasResp {
				mech, state = name, waitingForData
				reply("DATA")
				continue
			}
			switch checkResponse(name, resp) {
			case nil:
				mech, state = name, waitingForBegin
				reply("OK " + guid)
			case errBadHex:
				reply("ERROR")
			default:
				reply(serverMechanisms)
			}
		case waitingForData:
			if cmd != "DATA" {
				reply("ERROR")
				continue
			}
			switch checkResponse(mech, arg) {
			case nil:
				state = waitingForBegin
				reply("OK " + guid)
			case errBadHex:
				reply("ERROR")
			default:
				state, mech = waitingForAuth, ""
				reply(serverMechanisms)
			}
		case waitingForBegin:
			// NEGOTIATE_UNIX_FD lands here too: fd passing is not offered.
			reply("ERROR")
		}
	}
}

// clientHello returns the whole client handshake, sent in one write so that
// an sd-bus server sees BEGIN together with the authentication lines.
func clientHello(mech Mechanism, uid string) ([]byte, error) {
	switch mech {
	case "", MechanismAnonymous:
		return []byte("\x00AUTH ANONYMOUS\r\nDATA " + hex.EncodeToString([]byte("anonymous")) + "\r\nBEGIN\r\n"), nil
	case MechanismExternal:
		for _, c := range uid {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("transport: EXTERNAL identity %q is not a decimal uid", uid)
			}
		}
		if uid == "" {
			return nil, errors.New("transport: EXTERNAL needs a uid")
		}
		return []byte("\x00AUTH EXTERNAL " + hex.EncodeToString([]byte(uid)) + "\r\nBEGIN\r\n"), nil
	}
	return nil, fmt.Errorf("transport: unsupported SASL mechanism %q", mech)
}

// clientHandshake writes the pipelined client handshake to w and reads the
// server's replies from r until OK, tolerating DATA lines before it. It
// returns the server GUID. Bytes after the OK line stay in r.
func clientHandshake(r *bufio.Reader, w io.Writer, mech Mechanism, uid string, lim handshakeLimits) (string, error) {
	hello, err := clientHello(mech, uid)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(hello); err != nil {
		return "", fmt.Errorf("transport: writing SASL handshake: %w", err)
	}
	for range lim.maxLines {
		line, err := readLine(r, lim.maxLineLength)
		if err != nil {
			if errors.Is(err, ErrHandshake) {
				return "", err
			}
			return "", fmt.Errorf("transport: reading SASL reply: %w", err)
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "DATA":
			continue
		case "OK":
			if !validGUID(arg) {
				return "", fmt.Errorf("%w: server sent malformed GUID %q", ErrHandshake, arg)
			}
			return arg, nil
		case "REJECTED":
			return "", fmt.Errorf("%w: server rejected %s (offers %q)", ErrHandshake, mechOrDefault(mech), arg)
		case "ERROR":
			return "", fmt.Errorf("%w: server answered %q", ErrHandshake, line)
		default:
			return "", fmt.Errorf("%w: unexpected server line %q", ErrHandshake, line)
		}
	}
	return "", fmt.Errorf("%w: no OK within %d lines", ErrHandshake, lim.maxLines)
}

func mechOrDefault(m Mechanism) Mechanism {
	if m == "" {
		return MechanismAnonymous
	}
	return m
}
