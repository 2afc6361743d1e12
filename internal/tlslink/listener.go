// SPDX-License-Identifier: Apache-2.0

// Package tlslink puts the agent link on mutual TLS 1.3 (UseTLS=yes): a
// listener for the controller's TCP port that hands out connections only
// after a verified handshake, the agent's dialer, the node-name check of
// Register, and the daemons' loading, reloading and daily expiry warnings
// of the TLS files (internal/tlsconfig holds the material).
//
// The connections it returns are ordinary net.Conns for internal/wireconn.
// They deliberately do not implement syscall.Conn: wireconn reads a socket
// that has one with raw system calls, which would bypass TLS.
package tlslink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// Defaults of ListenerOptions.
const (
	// DefaultHandshakeTimeout bounds one TLS handshake, the first byte
	// included: a peer that connects and says nothing is cut off then.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxHandshakes bounds the handshakes in progress at once
	// (as MaxUnregisteredPeers bounds the connections after them).
	DefaultMaxHandshakes = 64
)

// recordTypeHandshake is the first byte of a TLS ClientHello record.
const recordTypeHandshake = 0x16

// ListenerOptions tune a Listener. The zero value uses the defaults and
// discards the log.
type ListenerOptions struct {
	HandshakeTimeout time.Duration // 0: DefaultHandshakeTimeout
	MaxHandshakes    int           // 0: DefaultMaxHandshakes
	// Log receives one line per refused connection (plain D-Bus, failed
	// handshake, too many handshakes), each naming the peer's address.
	Log *slog.Logger
}

// Listener is the controller's TCP listener with UseTLS=yes: TLS 1.3
// only, a client certificate required and verified against TLSCA. Each
// handshake runs in a goroutine of its own, off the accept loop, with a
// deadline; Accept returns only connections whose handshake succeeded,
// as *Conn. The material comes from a tlsconfig.Holder per handshake, so
// a reload (SIGHUP) applies to new connections only.
type Listener struct {
	inner   net.Listener
	cfg     *tls.Config
	timeout time.Duration
	max     int
	log     *slog.Logger

	ready  chan accepted // handshaken connections and accept errors
	closed chan struct{} // closed by Close
	once   sync.Once
	wg     sync.WaitGroup // the accept loop and the handshakes

	mu      sync.Mutex            // guards pending
	pending map[net.Conn]struct{} // raw connections in their handshake
}

type accepted struct {
	c   *Conn
	err error
}

// NewListener wraps inner (e.g. a transport.Listener, which sets the TCP
// socket options, or a socket passed by systemd) and starts accepting.
// Close it to stop; it closes inner.
func NewListener(inner net.Listener, h *tlsconfig.Holder, opts ListenerOptions) *Listener {
	l := &Listener{
		inner:   inner,
		cfg:     h.ServerConfig(),
		timeout: opts.HandshakeTimeout,
		max:     opts.MaxHandshakes,
		log:     opts.Log,
		ready:   make(chan accepted),
		closed:  make(chan struct{}),
		pending: map[net.Conn]struct{}{},
	}
	if l.timeout <= 0 {
		l.timeout = DefaultHandshakeTimeout
	}
	if l.max <= 0 {
		l.max = DefaultMaxHandshakes
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.wg.Add(1)
	go l.loop()
	return l
}

// Accept returns the next connection whose TLS handshake succeeded (a
// *Conn), or an accept error of the inner listener (the caller backs off
// as for any listener), or net.ErrClosed after Close.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.ready:
		if a.err != nil {
			return nil, a.err
		}
		return a.c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting, closes the inner listener and the connections
// still in their handshake, and waits for the listener's goroutines.
// Connections Accept returned are the caller's and stay open.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.inner.Close()
		l.mu.Lock()
		for nc := range l.pending {
			nc.Close()
		}
		l.mu.Unlock()
	})
	l.wg.Wait()
	return err
}

func (l *Listener) loop() {
	defer l.wg.Done()
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				// Closed under us: Accept reports it from now on.
				l.once.Do(func() { close(l.closed) })
				return
			}
			// Handed on; the caller's back-off paces this loop.
			select {
			case l.ready <- accepted{err: err}:
			case <-l.closed:
				return
			}
			continue
		}
		if !l.track(nc) {
			continue
		}
		l.wg.Add(1)
		go l.handshake(nc)
	}
}

// track registers a connection for its handshake, or closes it when the
// listener is closed or MaxHandshakes are in progress.
func (l *Listener) track(nc net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		nc.Close()
		return false
	default:
	}
	if len(l.pending) >= l.max {
		nc.Close()
		l.log.Warn("TLS: too many handshakes in progress, connection closed", "peer", peerAddr(nc), "max", l.max)
		return false
	}
	l.pending[nc] = struct{}{}
	return true
}

func (l *Listener) untrack(nc net.Conn) {
	l.mu.Lock()
	delete(l.pending, nc)
	l.mu.Unlock()
}

// handshake runs the server side of one TLS handshake and hands the
// connection to Accept, or closes it with a log line.
func (l *Listener) handshake(nc net.Conn) {
	defer l.wg.Done()
	c, err := l.serverHandshake(nc)
	l.untrack(nc)
	if err != nil {
		nc.Close()
		return
	}
	select {
	case l.ready <- accepted{c: c}:
	case <-l.closed:
		c.Close()
	}
}

func (l *Listener) serverHandshake(nc net.Conn) (*Conn, error) {
	peer := peerAddr(nc)
	if err := nc.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		return nil, err
	}
	first, tlsNC, err := peekFirst(nc)
	if err != nil {
		if errors.Is(err, io.EOF) {
			l.log.Debug("TLS: connection closed before the handshake", "peer", peer)
		} else {
			l.log.Warn("TLS: no handshake, connection closed", "peer", peer, "error", err)
		}
		return nil, err
	}
	switch first {
	case recordTypeHandshake:
	case 0, 'A':
		// A D-Bus client starts with a NUL byte (credentials) and AUTH.
		l.log.Warn("TLS: plain D-Bus connection refused, this port speaks TLS only (UseTLS=yes)", "peer", peer)
		return nil, errPlain
	default:
		l.log.Warn("TLS: connection refused, not a TLS handshake", "peer", peer, "first_byte", fmt.Sprintf("%#02x", first))
		return nil, errNotTLS
	}
	tc := tls.Server(tlsNC, l.cfg)
	if err := tc.Handshake(); err != nil {
		select {
		case <-l.closed: // cut off by Close: nothing to report
		default:
			l.log.Warn("TLS: handshake failed, connection closed", "peer", peer, "error", err)
		}
		return nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	cs := tc.ConnectionState()
	c := &Conn{Conn: tc}
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		c.leaf = cs.VerifiedChains[0][0]
	}
	l.log.Debug("TLS: handshake done", "peer", peer, "names", c.PeerNames())
	return c, nil
}

var (
	errPlain  = errors.New("tlslink: plain D-Bus on the TLS port")
	errNotTLS = errors.New("tlslink: not a TLS handshake")
)

func peerAddr(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return "?"
}

// peekFirst returns the first byte the peer sent and the connection to
// run TLS on. On a socket the byte is peeked (MSG_PEEK), so TLS runs on
// the socket itself and tls.Conn.NetConn() gives it back (PeerClosed needs
// it); on anything else it is read and given back by a prefixConn. The
// connection's read deadline applies.
func peekFirst(nc net.Conn) (byte, net.Conn, error) {
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			var b [1]byte
			var n int
			var perr error
			err := rc.Read(func(fd uintptr) bool {
				for {
					n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
					if perr != unix.EINTR {
						return perr != unix.EAGAIN
					}
				}
			})
			switch {
			case err != nil:
				return 0, nil, err
			case perr != nil:
				return 0, nil, perr
			case n == 0:
				return 0, nil, io.EOF
			}
			return b[0], nc, nil
		}
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return 0, nil, err
	}
	return b[0], &prefixConn{Conn: nc, first: b[0], has: true}, nil
}

// prefixConn gives back the byte read to tell TLS from plain D-Bus.
// Only the handshake goroutine reads it before the Conn is handed out.
type prefixConn struct {
	net.Conn
	first byte
	has   bool
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0] = p.first
		p.has = false
		return 1, nil
	}
	return p.Conn.Read(b)
}

// Conn is a connection accepted by a Listener, its client certificate
// verified. It is a net.Conn (the TLS stream) for wireconn.Accept.
type Conn struct {
	*tls.Conn
	leaf *x509.Certificate // the verified client certificate
}

// PeerCertificate returns the peer's verified certificate.
func (c *Conn) PeerCertificate() *x509.Certificate { return c.leaf }

// PeerNames returns the node names the peer's certificate carries: its
// DNS SANs, or, for a certificate without any SAN, its CN (see
// tlsconfig.CertificateNames).
func (c *Conn) PeerNames() []string { return certificateNames(c.leaf) }

func certificateNames(cert *x509.Certificate) []string {
	if cert == nil {
		return nil
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) > 0 {
		return append([]string(nil), cert.DNSNames...)
	}
	if cert.Subject.CommonName == "" {
		return nil
	}
	return []string{cert.Subject.CommonName}
}

// NodeNameNotAllowed is the text of the AccessDenied error Register
// answers when the certificate does not name the node.
const NodeNameNotAllowed = "Node name not allowed"

// NameError is CheckNodeName's refusal. Its text is for the log; as a
// D-Bus reply (dbusrt.ErrorName, dbusrt.ErrorMessage) it is
// org.freedesktop.DBus.Error.AccessDenied "Node name not allowed".
type NameError struct {
	Name   string // the name asked for
	Peer   string // the peer's address
	Reason error  // what the certificate names instead
}

func (e *NameError) Error() string {
	return fmt.Sprintf("node name %q refused for TLS peer %s: %v", e.Name, e.Peer, e.Reason)
}

// Unwrap gives the D-Bus error of the reply and the reason.
func (e *NameError) Unwrap() []error {
	return []error{dbusrt.NewError(dbusrt.ErrAccessDenied, NodeNameNotAllowed), e.Reason}
}

// CheckNodeName is Register's identity check: nil when nc is not a TLS
// connection of a Listener (the unix socket, or TCP with UseTLS=no: the
// check does not apply), or when its verified certificate names name;
// otherwise a *NameError, to be logged and answered, and the connection
// closed.
func CheckNodeName(nc net.Conn, name string) error {
	c, ok := nc.(*Conn)
	if !ok {
		return nil
	}
	if err := tlsconfig.CheckNodeName(c.ConnectionState(), name); err != nil {
		return &NameError{Name: name, Peer: peerAddr(c), Reason: err}
	}
	return nil
}

// PeerClosed is transport.PeerClosed for any connection Register sees:
// for a TLS connection it asks the socket under the TLS stream (without
// reading from it).
func PeerClosed(nc net.Conn) bool {
	switch c := nc.(type) {
	case *Conn:
		return transport.PeerClosed(c.NetConn())
	case *ClientConn:
		return transport.PeerClosed(c.NetConn())
	}
	return transport.PeerClosed(nc)
}
