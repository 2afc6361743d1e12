// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package transport

import (
	"errors"
	"net"
)

// setRecvErr is a no-op where IP_RECVERR does not exist.
func setRecvErr(*net.TCPConn) error { return nil }

// PeerClosed cannot look at the socket here: the pump's end-of-file is the
// only sign of a closed peer.
func PeerClosed(net.Conn) bool { return false }

// PeerSecurityContext is unavailable here: no peer has a label.
func PeerSecurityContext(net.Conn) (string, error) { return "", errors.ErrUnsupported }
