// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
)

// readBufferSize is the size of the per-connection read buffer shared by the
// handshake and the message decoder.
const readBufferSize = 16 * 1024

// errLocalAuth is returned to godbus when its local handshake goes off the
// rails; it only shows up wrapped in the error of startConn.
var errLocalAuth = errors.New("transport: unexpected read during local godbus handshake")

// peerConn is the io.ReadWriteCloser handed to godbus after the real SASL
// exchange is over. Until godbus writes BEGIN, it plays an SASL server to
// godbus's own client handshake without touching the socket; afterwards
// reads come from the handshake's buffer (which may already hold message
// bytes) and writes go straight to the socket.
type peerConn struct {
	net.Conn
	r    *bufio.Reader
	w    io.Writer // raw writes to the socket (sysIO)
	guid string

	open atomic.Bool // true once godbus wrote BEGIN: pass everything through

	mu      sync.Mutex // guards the local exchange below
	partial []byte     // incomplete line written by godbus
	pending []byte     // local replies not yet read by godbus

	wmu  sync.Mutex // serialises whole messages of godbus and of the tap
	out  []byte     // messages the tap queued, guarded by wmu
	tap  *Tap       // set before godbus starts reading; nil without a tap
	pump *pump      // reads a tapped connection; started by the first Read
}

// Read implements io.Reader.
func (c *peerConn) Read(p []byte) (int, error) {
	if c.open.Load() {
		if c.pump != nil {
			return c.pumped(p)
		}
		return c.r.Read(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		// godbus reads only after writing a line that gets a reply, so an
		// empty queue means the exchange went wrong; blocking would hang.
		return 0, errLocalAuth
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write implements io.Writer.
// godbus writes each message with one call.
func (c *peerConn) Write(p []byte) (int, error) {
	if c.open.Load() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if err := c.writeLocked(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for !c.open.Load() {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(c.partial[:i], []byte{'\r'})
		c.partial = c.partial[i+1:]
		c.answerLocally(string(bytes.TrimLeft(line, "\x00")))
	}
	if c.open.Load() && len(c.partial) > 0 {
		// Not expected from godbus, but whatever followed BEGIN is traffic.
		rest := c.partial
		c.partial = nil
		c.wmu.Lock()
		_, err := c.w.Write(rest)
		c.wmu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close implements io.Closer and detaches a tap.
func (c *peerConn) Close() error {
	if c.tap != nil {
		c.tap.detach(c)
	}
	err := c.Conn.Close()
	if c.pump != nil {
		c.pump.stop()
	}
	return err
}

// answerLocally queues the reply a server would give to one line of
// godbus's client handshake. Only ANONYMOUS is offered, which godbus
// finishes without DATA round trips.
func (c *peerConn) answerLocally(line string) {
	cmd, _, _ := strings.Cut(line, " ")
	var reply string
	switch cmd {
	case "":
		return // the lone NUL byte
	case "AUTH":
		if line == "AUTH" {
			reply = "REJECTED ANONYMOUS"
		} else {
			reply = "OK " + c.guid
		}
	case "DATA":
		reply = "OK " + c.guid
	case "BEGIN":
		c.open.Store(true)
		return
	default: // NEGOTIATE_UNIX_FD, CANCEL, ...
		reply = "ERROR"
	}
	c.pending = append(c.pending, reply+"\r\n"...)
}

// BeforeStartFunc is called with a new godbus connection and its socket
// after authentication, before godbus starts reading messages: objects it
// exports are in place for the first incoming message, which may have
// arrived together with the handshake. It must not send messages. An error
// closes the connection.
type BeforeStartFunc func(conn *dbus.Conn, nc net.Conn) error

// startConn hands an authenticated socket to godbus: it wraps nc (whose
// remaining input is in r), runs before, lets godbus run its handshake
// against the wrapper (which starts godbus's reader) and returns the
// started connection. It does not call Hello. On error nc is closed.
func startConn(nc net.Conn, r *bufio.Reader, guid string, opts []dbus.ConnOption, before BeforeStartFunc) (*dbus.Conn, error) {
	pc := &peerConn{Conn: nc, r: r, w: newSysIO(nc), guid: guid}
	conn, err := dbus.NewConn(pc, opts...)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: creating D-Bus connection: %w", err)
	}
	if t := tapFrom(conn); t != nil {
		t.attach(pc)
	}
	if before != nil {
		if err := before(conn, nc); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("transport: preparing D-Bus connection: %w", err)
		}
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthAnonymous()}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("transport: starting D-Bus connection: %w", err)
	}
	return conn, nil
}
