// SPDX-License-Identifier: Apache-2.0

// Package wireconn is a D-Bus connection of our own, built on
// internal/wire, for the peer links between controller and agents (and any
// other stream where a bus library is not wanted): SASL (the handshake of
// internal/transport), framing, serials, method calls with their replies
// matched by serial, calls and signals dispatched in wire order, error
// replies, NO_REPLY_EXPECTED, the Hello/AddMatch shim and the
// Peer/Introspectable/Properties behaviour of a peer link
// (internal-protocol.md §2.3), and limits on what a peer may send.
//
// One goroutine reads each connection. It dispatches every message before
// it reads the next, so handlers see calls and signals one at a time in
// the order they were sent; a handler must not block (it may reply later
// from any goroutine) and must not wait for a call on its own connection.
// While the connection is idle it holds no read buffer: the reader waits
// for the socket to become readable and only then takes a buffer from a
// shared pool.
package wireconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Limits bound what the peer may send.
type Limits struct {
	// MaxMessageSize refuses (and closes the connection on) any message
	// whose header announces more bytes; 0 means wire.MaxMessageSize.
	MaxMessageSize int
	// StallTimeout closes the connection when a message has not arrived
	// whole this long after its first byte; 0 disables.
	StallTimeout time.Duration
	// MaxWriteQueue bounds what a connection with Options.QueueWrites
	// keeps for a peer that does not read: more than one message beyond
	// this many bytes closes the connection (0: DefaultMaxWriteQueue).
	MaxWriteQueue int
}

// The limits of the peer-link boundary (issue 13): strict until the peer
// has registered, the D-Bus maximum afterwards. A peer that does not read
// costs at most 4 kB of queued replies beyond one message before it
// registers, 4 MiB after (room for the subscription replay of some 25,000
// units: see the controller's registration).
var (
	UnregisteredLimits = Limits{MaxMessageSize: 64 << 10, StallTimeout: 10 * time.Second, MaxWriteQueue: 4 << 10}
	RegisteredLimits   = Limits{MaxMessageSize: wire.MaxMessageSize, MaxWriteQueue: 4 << 20}
)

// Errors that end a connection.
var (
	// ErrClosed is returned by calls on a connection closed by Close.
	ErrClosed = errors.New("wireconn: connection closed")
	// ErrStalled ends a connection whose peer left a message unfinished
	// for longer than the stall timeout.
	ErrStalled = errors.New("wireconn: partial message stalled")
)

// LimitError ends a connection whose peer announced a message bigger than
// its limit.
type LimitError struct{ Size, Max int }

func (e *LimitError) Error() string {
	return fmt.Sprintf("wireconn: peer announced a message of %d bytes, the limit is %d", e.Size, e.Max)
}

// Error is an error reply (or one to send).
type Error struct {
	Name    string // D-Bus error name
	Message string // first string argument, if any
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// DBusError returns the error's name and body, so that code reading
// D-Bus errors of godbus (its DBusError interface) reads this one too.
func (e *Error) DBusError() (string, []any) {
	if e.Message == "" {
		return e.Name, nil
	}
	return e.Name, []any{e.Message}
}

// Interface is one interface served on an object path.
type Interface struct {
	// Name is the interface name.
	Name string
	// Methods are the method names; calls of other members get
	// UnknownMethod without reaching Call.
	Methods []string
	// XML is the <interface> element Introspect returns for it.
	XML string
	// Call handles one method call of a member in Methods. It runs on
	// the reader goroutine; m.Body is valid only until it returns. It
	// answers with Reply or ReplyError, now or later.
	Call func(c *Conn, m *wire.Message)
}

// Options configure a connection.
type Options struct {
	// Signal, if set, receives every signal, in wire order, on the
	// reader goroutine; m.Body is valid only until it returns.
	Signal func(c *Conn, m *wire.Message)
	// Closed, if set, is called once when the connection has ended,
	// after pending calls failed, with the reason (ErrClosed after
	// Close, io.EOF when the peer hung up).
	Closed func(c *Conn, err error)
	// MethodCall, if set, receives every method call other than those of
	// org.freedesktop.DBus.Peer (answered by the connection), in wire
	// order, on the reader goroutine, in place of the interfaces Export
	// serves: an object server of its own (dbusrt) answers them.
	// m.Body is valid only until it returns.
	MethodCall func(c *Conn, m *wire.Message)
	// RefuseOverflow answers a call that finds MaxQueuedCalls waiting
	// with LimitsExceeded instead of closing the connection: on a
	// message-bus connection the calls come from many clients, and one
	// that floods must not cut the others off.
	RefuseOverflow bool
	// Sender, if set, is the SENDER field of every message sent.
	Sender string
	// BusShim answers org.freedesktop.DBus Hello (":1.0") and accepts
	// AddMatch/RemoveMatch at /org/freedesktop/DBus, for bus-minded
	// clients on a peer link.
	BusShim bool
	// Limits bound the peer; nil means UnregisteredLimits for Accept
	// (the peer is not trusted yet: see MarkRegistered) and
	// RegisteredLimits for Client.
	Limits *Limits
	// QueueWrites makes writes never wait: what the socket does not take
	// at once (on TLS, every write) is queued (at most one message beyond
	// Limits.MaxWriteQueue bytes) and written by a goroutine of its own,
	// each batch within WriteTimeout; a peer that lets the queue pass its
	// bound is cut off. Senders that hold locks other peers need (the
	// controller relaying to its agents) then never wait for one peer.
	// Close with bytes queued stops reading and lets them go out first,
	// within WriteTimeout (DefaultLinger when 0).
	QueueWrites bool
	// WriteTimeout, if set, bounds each write: a peer that stops reading
	// until the kernel's buffers are full is cut off after this long
	// instead of holding up every sender.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the SASL exchange (0: 10 s).
	HandshakeTimeout time.Duration
	// Mechanism and UID are the client's SASL identity (Client only;
	// "" is ANONYMOUS, EXTERNAL with UID "" claims the effective uid).
	Mechanism transport.Mechanism
	UID       string
	// VerifyPeer, if set, is called by Dial with each socket it opened
	// (network "unix" or "tcp"), before a byte is sent: an error refuses
	// the peer and ends the Dial.
	VerifyPeer func(nc net.Conn, network string) error
}

// Conn is one D-Bus connection. Its methods are safe for concurrent use.
type Conn struct {
	nc   net.Conn
	rc   syscall.RawConn // nil: plain reads (no file descriptor)
	opts Options

	maxSize atomic.Int64
	stall   atomic.Int64 // ns

	// wmu serialises writes: each message goes out whole, serials in
	// wire order. It is taken before mu, never after.
	wmu    sync.Mutex
	serial uint32      // last serial used; guarded by wmu
	held   []byte      // messages Hold encoded, written with the next write; guarded by wmu
	wq     *writeQueue // with QueueWrites, else nil

	mu         sync.Mutex // guards the fields below
	objects    map[string]*object
	pending    map[uint32]*pending
	closing    bool  // Close or a limit ended it
	cause      error // why, when closing
	registered bool
	release    func() // gives back an Admission slot; nil if none
	started    bool
	ended      bool // shutdown ran

	// stopRead is set when the connection is closed: the reader serves
	// nothing it reads after that (the socket may linger, see writeQueue).
	stopRead atomic.Bool

	done chan struct{} // closed when the connection has ended
	err  error         // the reason; written before done is closed

	// ctx is the parent of the contexts Serve makes; cancel ends it
	// when the connection ends.
	ctx    context.Context
	cancel context.CancelFunc

	qmu   sync.Mutex // guards queue; never held while taking mu or wmu
	queue serveQueue

	// Used by the reader goroutine only.
	ahead        []byte // bytes that came with the handshake
	hdr          [wire.HeaderSize]byte
	hn           int    // bytes in hdr of a message not yet framed
	frame        []byte // a message in progress, nil if none
	size         int    // frame's total size
	armed        bool   // a stall deadline is set
	needArm      bool   // a partial message began in the last read
	partialSince time.Time
	msg          wire.Message
}

type object struct {
	ifaces []*Interface
}

type pending struct {
	done func(*wire.Message, error)
	stop func() bool // stops the context watch
}

func newConn(nc net.Conn, opts Options, limits Limits) *Conn {
	c := &Conn{nc: nc, opts: opts, objects: map[string]*object{}, pending: map[uint32]*pending{}, done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	if opts.QueueWrites {
		c.wq = newWriteQueue(nc, c.rc)
	}
	if opts.Limits != nil {
		limits = *opts.Limits
	}
	c.SetLimits(limits)
	return c
}

// handshakeBuffer sizes the reader of the SASL lines; whatever it holds
// after BEGIN becomes the first input of the message reader.
const handshakeBuffer = 1024

// Accept runs the server half of the SASL handshake on nc and returns the
// connection, not yet reading: export the objects the peer's first call
// needs, then Start. ctx bounds the handshake. On error nc is closed.
func Accept(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	guid, err := transport.NewGUID()
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := newConn(nc, opts, UnregisteredLimits)
	err = c.handshake(ctx, func(r *bufio.Reader) error {
		_, err := transport.ServerHandshake(r, nc, guid)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wireconn: accepting %s: %w", peerName(nc), err)
	}
	return c, nil
}

// Client runs the client half of the SASL handshake on nc (the whole
// handshake in one write) and returns the connection, not yet reading:
// export objects, then Start. ctx bounds the handshake. On error nc is
// closed.
func Client(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	uid := opts.UID
	if opts.Mechanism == transport.MechanismExternal && uid == "" {
		uid = strconv.Itoa(os.Geteuid())
	}
	c := newConn(nc, opts, RegisteredLimits)
	err := c.handshake(ctx, func(r *bufio.Reader) error {
		_, err := transport.ClientHandshake(r, nc, opts.Mechanism, uid)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wireconn: authenticating to %s: %w", peerName(nc), err)
	}
	return c, nil
}

// Dial connects to a D-Bus address (transport.ParseAddress syntax, the
// first address that answers wins), applies transport's default socket
// options on TCP and runs Client.
func Dial(ctx context.Context, address string, opts Options) (*Conn, error) {
	c, err := transport.DialFirst(ctx, address, transport.DefaultSocketOptions(), func(nc net.Conn, network string, _ transport.Address) (*Conn, error) {
		if opts.VerifyPeer != nil {
			if err := opts.VerifyPeer(nc, network); err != nil {
				nc.Close()
				return nil, &transport.FinalError{Err: err}
			}
		}
		c, err := Client(ctx, nc, opts)
		if err != nil {
			return nil, &transport.FinalError{Err: err} // the peer answered: not the next entry's business
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wireconn: %w", err)
	}
	return c, nil
}

func (c *Conn) handshake(ctx context.Context, run func(*bufio.Reader) error) error {
	timeout := c.opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = transport.DefaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	r := bufio.NewReaderSize(c.nc, handshakeBuffer)
	err := run(r)
	if !stop() {
		err = fmt.Errorf("handshake aborted: %w", context.Cause(ctx))
	}
	if err == nil {
		err = c.nc.SetDeadline(time.Time{})
	}
	if err != nil {
		c.nc.Close()
		return err
	}
	if n := r.Buffered(); n > 0 {
		b, _ := r.Peek(n)
		c.ahead = append([]byte(nil), b...)
	}
	return nil
}

func peerName(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.Network() + " peer " + a.String()
	}
	return "peer"
}

// NetConn returns the socket (for the peer's address and credentials).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Start starts reading. Objects exported before Start serve the peer's
// first message, which may have come together with the handshake.
func (c *Conn) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	go c.read()
}

// SetLimits changes the limits for the messages that follow.
func (c *Conn) SetLimits(l Limits) {
	if l.MaxMessageSize <= 0 || l.MaxMessageSize > wire.MaxMessageSize {
		l.MaxMessageSize = wire.MaxMessageSize
	}
	c.maxSize.Store(int64(l.MaxMessageSize))
	if c.wq != nil {
		if l.MaxWriteQueue <= 0 {
			l.MaxWriteQueue = DefaultMaxWriteQueue
		}
		c.wq.mu.Lock()
		c.wq.max = l.MaxWriteQueue
		c.wq.mu.Unlock()
	}
	old := c.stall.Swap(int64(l.StallTimeout))
	if old > 0 && l.StallTimeout <= 0 {
		// Lift a stall deadline the reader may have set.
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// MarkRegistered tells the connection that its peer is trusted now: the
// limits become RegisteredLimits and an Admission slot is given back.
func (c *Conn) MarkRegistered() {
	c.SetLimits(RegisteredLimits)
	c.mu.Lock()
	c.registered = true
	release := c.release
	c.release = nil
	c.mu.Unlock()
	if release != nil {
		release()
	}
}

// Registered reports whether MarkRegistered was called.
func (c *Conn) Registered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registered
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection; pending calls fail with ErrClosed.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

// closeWith ends the connection for reason err (the first reason wins).
func (c *Conn) closeWith(err error) { c.end(err, false) }

// failWrite is closeWith for a write that failed, with wmu held: a
// connection not started yet is then ended on a goroutine of its own, so
// that its callbacks (Closed, pending calls) may write, or wait for a
// write, without the lock.
func (c *Conn) failWrite(err error) { c.end(err, true) }

func (c *Conn) end(err error, wmuHeld bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.cause = true, err
	// A connection not started yet is ended here, and Start must not
	// start a reader that would end it a second time.
	started := c.started
	c.started = true
	c.mu.Unlock()
	c.stopRead.Store(true)
	c.closeSocket()
	switch {
	case started:
	case wmuHeld:
		go c.shutdown(err)
	default:
		c.shutdown(err)
	}
}

// shutdown ends the connection after the reader stopped with err.
func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	if c.closing {
		err = c.cause
	}
	c.closing, c.ended = true, true
	pend := c.pending
	c.pending = map[uint32]*pending{}
	release := c.release
	c.release = nil
	c.mu.Unlock()
	c.closeSocket()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		err = io.EOF
	}
	if release != nil {
		release()
	}
	for _, p := range pend {
		p.stop()
		p.done(nil, ErrClosed)
	}
	c.err = err
	close(c.done)
	c.cancel()
	if c.opts.Closed != nil {
		c.opts.Closed(c, err)
	}
}
