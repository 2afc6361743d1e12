// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// FinalError marks an error of DialFirst's setup that the next address
// would not cure (a refused certificate): the attempt ends with it.
type FinalError struct{ Err error }

func (e *FinalError) Error() string { return e.Err.Error() }
func (e *FinalError) Unwrap() error { return e.Err }

// DialFirst connects to the entries of a D-Bus address (ParseAddress
// syntax) in order, each without Go's own keep-alive and with so applied
// on TCP, and returns what setup makes of the first connection it
// accepts. setup gets the connection (which it closes on error), the
// network ("tcp" or "unix") and the entry. A *FinalError from setup, or
// ctx ending, ends the attempt; otherwise the next entry is tried, and the
// error names every failure.
func DialFirst[T any](ctx context.Context, address string, so SocketOptions, setup func(nc net.Conn, network string, a Address) (T, error)) (T, error) {
	var zero T
	addrs, err := ParseAddress(address)
	if err != nil {
		return zero, err
	}
	var errs []error
	for _, a := range addrs {
		network, target, err := a.Network()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nd := net.Dialer{KeepAlive: -1} // keep-alive as so says
		nc, err := nd.DialContext(ctx, network, target)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err := ApplySocketOptions(nc, so); err != nil {
			nc.Close()
			errs = append(errs, err)
			continue
		}
		v, err := setup(nc, network, a)
		if err == nil {
			return v, nil
		}
		if fe := (*FinalError)(nil); errors.As(err, &fe) {
			return zero, fe.Err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return zero, fmt.Errorf("connecting to %q: %w", address, errors.Join(errs...))
}
