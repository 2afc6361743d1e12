// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// The calls off the hot path (properties, unit files, transient units)
// carry variants and structs: their bodies are encoded and decoded by
// godbus's codec, through its public API only (a message encoded with
// EncodeTo, one decoded with DecodeMessage), while the connection itself
// is ours (wireconn).

// encodeArgs returns the signature and little-endian body of args.
func encodeArgs(args ...any) (string, []byte, error) {
	if len(args) == 0 {
		return "", nil, nil
	}
	for i, a := range args {
		args[i] = dbusrt.FixVariants(a) // forwarded struct-valued variants must re-encode
	}
	sig := dbus.SignatureOf(args...).String()
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(ManagerPath),
		dbus.FieldMember:    dbus.MakeVariant("M"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(args...)),
	}, Body: args}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return "", nil, fmt.Errorf("systemd: encoding %s: %w", sig, err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[8:12], 1) // a serial, for the parser
	var m wire.Message
	if err := wire.Parse(b, &m); err != nil {
		return "", nil, fmt.Errorf("systemd: encoding %s: %w", sig, err)
	}
	return sig, m.Body, nil
}

// decodeBody decodes a reply body of signature sig into godbus values
// (variants keep their signatures).
func decodeBody(sig string, body []byte, bigEndian bool) ([]any, error) {
	if sig == "" {
		return nil, nil
	}
	if bigEndian {
		le, err := toLittleEndian(sig, body)
		if err != nil {
			return nil, err
		}
		body = le
	}
	msg, err := dbus.DecodeMessage(bytes.NewReader(wire.AppendReturn(nil, 1, 1, "", sig, body)))
	if err != nil {
		return nil, fmt.Errorf("systemd: decoding a reply of signature %q: %w", sig, err)
	}
	return msg.Body, nil
}

// toLittleEndian re-encodes a big-endian body in little endian, value by
// value.
func toLittleEndian(sig string, body []byte) ([]byte, error) {
	r := wire.NewReader(body, true)
	var w wire.Writer
	for rest := sig; rest != ""; {
		n := 1
		for n < len(rest) && !wire.ValidSignature(rest[:n]) {
			n++
		}
		if err := wire.Copy(&w, &r, rest[:n]); err != nil {
			return nil, fmt.Errorf("systemd: reply of signature %q: %w", sig, err)
		}
		rest = rest[n:]
	}
	return w.Buf, r.Done()
}
