//go:build !linux

package transport

import "net"

// setRecvErr is a no-op where IP_RECVERR does not exist.
func setRecvErr(*net.TCPConn) error { return nil }

// PeerClosed cannot look at the socket here: the pump's end-of-file is the
// only sign of a closed peer.
func PeerClosed(net.Conn) bool { return false }
