// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"fmt"
	"net"
	"time"
)

// SocketOptions are the options applied to every new TCP peer connection,
// on both ends (see the BlueChi configuration keys IPReceiveErrors and
// TCPKeepAlive*). Unix sockets get none of them. Keep-alive is always
// enabled; a zero (or negative) field leaves the kernel default.
type SocketOptions struct {
	// KeepAliveTime is TCP_KEEPIDLE, rounded up to whole seconds.
	KeepAliveTime time.Duration
	// KeepAliveInterval is TCP_KEEPINTVL, rounded up to whole seconds.
	KeepAliveInterval time.Duration
	// KeepAliveCount is TCP_KEEPCNT.
	KeepAliveCount int
	// IPReceiveErrors sets IP_RECVERR (and IPV6_RECVERR on IPv6 sockets).
	IPReceiveErrors bool
}

// DefaultSocketOptions returns upstream's defaults: keep-alive after 1 s
// idle, probes every 1 s, 6 probes, IP_RECVERR on.
func DefaultSocketOptions() SocketOptions {
	return SocketOptions{
		KeepAliveTime:     time.Second,
		KeepAliveInterval: time.Second,
		KeepAliveCount:    6,
		IPReceiveErrors:   true,
	}
}

// ApplySocketOptions sets TCP_NODELAY, the keep-alive options of o and,
// if asked, IP_RECVERR on nc when it is a TCP connection. Other
// connections are left alone and yield nil.
func ApplySocketOptions(nc net.Conn, o SocketOptions) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	if err := tc.SetNoDelay(true); err != nil {
		return fmt.Errorf("transport: setting TCP_NODELAY: %w", err)
	}
	cfg := net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
	if o.KeepAliveTime > 0 {
		cfg.Idle = o.KeepAliveTime
	}
	if o.KeepAliveInterval > 0 {
		cfg.Interval = o.KeepAliveInterval
	}
	if o.KeepAliveCount > 0 {
		cfg.Count = o.KeepAliveCount
	}
	if err := tc.SetKeepAliveConfig(cfg); err != nil {
		return fmt.Errorf("transport: setting TCP keep-alive options: %w", err)
	}
	if o.IPReceiveErrors {
		if err := setRecvErr(tc); err != nil {
			return fmt.Errorf("transport: setting IP_RECVERR: %w", err)
		}
	}
	return nil
}

// PeerIP returns the textual IP address of the remote end of a TCP
// connection, or "" for any other connection (unix sockets). IPv4 peers of
// a dual-stack listener are shown in plain dotted form, not as ::ffff:a.b.c.d.
func PeerIP(nc net.Conn) string {
	if nc == nil {
		return ""
	}
	addr, ok := nc.RemoteAddr().(*net.TCPAddr)
	if !ok || addr == nil || addr.IP == nil {
		return ""
	}
	if addr.Zone != "" {
		return addr.IP.String() + "%" + addr.Zone
	}
	return addr.IP.String()
}
