// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"io"
)

// This file exports the SASL exchange to the connections that run on it
// (internal/wireconn).

// NewGUID returns a fresh random 128-bit server GUID as 32 lowercase hex
// digits.
func NewGUID() (string, error) { return newGUID() }

// ServerHandshake runs the server half of the D-Bus SASL exchange (the
// table of internal-protocol.md §2.2) with the default line limits: it
// reads the leading NUL byte and the client's lines from r and writes the
// replies to w in line order, without waiting for BEGIN, until the client
// sends BEGIN. Bytes following BEGIN stay buffered in r. The caller bounds
// the time (a deadline on the socket). Failures caused by what the peer
// sent wrap ErrHandshake.
func ServerHandshake(r *bufio.Reader, w io.Writer, guid string) (Mechanism, error) {
	return serverHandshake(r, w, guid, handshakeLimits{maxLineLength: DefaultMaxLineLength, maxLines: DefaultMaxLines})
}

// ClientHandshake writes the whole client handshake (mech with identity
// uid for EXTERNAL) in one write, as sd-bus servers need it, and reads the
// replies from r until OK. It returns the server's GUID; bytes after the
// OK line stay buffered in r.
func ClientHandshake(r *bufio.Reader, w io.Writer, mech Mechanism, uid string) (string, error) {
	return clientHandshake(r, w, mech, uid, handshakeLimits{maxLineLength: DefaultMaxLineLength, maxLines: DefaultMaxLines})
}
