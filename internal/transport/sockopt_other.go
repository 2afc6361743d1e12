//go:build !linux

package transport

import "net"

// setRecvErr is a no-op where IP_RECVERR does not exist.
func setRecvErr(*net.TCPConn) error { return nil }
