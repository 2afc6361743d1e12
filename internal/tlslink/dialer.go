// SPDX-License-Identifier: Apache-2.0

package tlslink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/bluechi-go/bluechi/internal/tlsconfig"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// Dialer connects the agent to the controller with UseTLS=yes: TLS 1.3,
// the controller's certificate verified against TLSCA and ServerName,
// the agent's certificate offered. Each dial takes the Holder's current
// material, so after a reload the next (re)connection uses it.
type Dialer struct {
	Holder *tlsconfig.Holder
	// ServerName is the name the controller's certificate must carry
	// (TLSServerName). Empty: the host of the address dialed, i.e.
	// ControllerHost, or the host of ControllerAddress or of the address
	// SwitchController gave. An IP address is matched against the
	// certificate's IP SANs.
	ServerName string
	// HandshakeTimeout bounds the TLS handshake (0:
	// DefaultHandshakeTimeout; ctx's deadline when sooner).
	HandshakeTimeout time.Duration
	// Socket are the TCP options (nil: transport.DefaultSocketOptions()).
	Socket *transport.SocketOptions
}

// Dial connects to a D-Bus address (transport.ParseAddress syntax, the
// first entry that answers wins). TCP entries get the socket options and
// the TLS handshake; unix entries stay plain, as the controller's unix
// socket is. The result is ready for wireconn.Client.
func (d *Dialer) Dial(ctx context.Context, address string) (net.Conn, error) {
	so := transport.DefaultSocketOptions()
	if d.Socket != nil {
		so = *d.Socket
	}
	nc, err := transport.DialFirst(ctx, address, so, func(nc net.Conn, network string, a transport.Address) (net.Conn, error) {
		if network == "unix" {
			return nc, nil // local peers stay plain
		}
		c, err := d.Client(ctx, nc, a.Params["host"])
		if err != nil {
			// A refused certificate is not cured by the next entry.
			return nil, &transport.FinalError{Err: err}
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("tlslink: %w", err)
	}
	return nc, nil
}

// Client runs the TLS handshake on nc, a TCP connection to the
// controller at host (the host dialed: the server name when ServerName is
// empty). On error nc is closed and the error says what failed to verify.
func (d *Dialer) Client(ctx context.Context, nc net.Conn, host string) (*ClientConn, error) {
	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := d.ServerName
	if name == "" {
		name = strings.Trim(host, "[]")
	}
	if name == "" {
		nc.Close()
		return nil, errors.New("TLS: no server name to verify the controller against (set TLSServerName)")
	}
	m := d.Holder.Current()
	tc := tls.Client(nc, d.Holder.ClientConfig(name))
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with the controller at %s (server name %q, TLSCA %s): %w",
			peerAddr(nc), name, m.Files.CA, err)
	}
	return &ClientConn{Conn: tc, cert: m.Files.Certificate}, nil
}

// ClientConn is the agent's TLS connection to the controller.
type ClientConn struct {
	*tls.Conn
	cert string // TLSCertificate, for messages
}

// Read reads from the TLS stream. In TLS 1.3 the controller's verdict on
// the agent's certificate arrives after the agent's handshake is done, as
// an alert on the first read: such an error says so.
func (c *ClientConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	var oe *net.OpError
	if err != nil && errors.As(err, &oe) && oe.Op == "remote error" {
		err = fmt.Errorf("the controller at %s refused the TLS connection (TLSCertificate %s): %w", peerAddr(c), c.cert, err)
	}
	return n, err
}
