// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// The calls off the hot path (properties, unit files, transient units)
// carry variants and structs: their bodies go through dbusrt's codec
// bridge (godbus's codec through its public API only), while the
// connection itself is ours (wireconn).

// encodeArgs returns the signature and little-endian body of args.
func encodeArgs(args ...any) (string, []byte, error) {
	for i, a := range args {
		args[i] = dbusrt.FixVariants(a) // forwarded struct-valued variants must re-encode
	}
	sig := dbus.SignatureOf(args...).String()
	body, err := dbusrt.EncodeBody(sig, args...)
	if err != nil {
		return "", nil, fmt.Errorf("systemd: %w", err)
	}
	return sig, body, nil
}

// decodeBody decodes a reply body of signature sig into godbus values
// (variants keep their signatures).
func decodeBody(sig string, body []byte, bigEndian bool) ([]any, error) {
	vals, err := dbusrt.DecodeBody(sig, body, bigEndian)
	if err != nil {
		return nil, fmt.Errorf("systemd: reply: %w", err)
	}
	return vals, nil
}
