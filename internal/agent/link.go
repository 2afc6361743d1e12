// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/tlslink"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// dialController connects to the controller's D-Bus address (the first
// address that answers wins) and authenticates: EXTERNAL on a unix socket,
// ANONYMOUS on TCP. so applies to TCP sockets. The connection is not read
// from yet (wireconn's Start).
//
// With tlsd, TCP connections run TLS (tlslink.Dialer) under D-Bus,
// verifying the controller as tlsName (the configured host name of a
// resolved address) or, when empty, the address's host; the unix socket
// stays plain.
func dialController(ctx context.Context, address, tlsName string, so transport.SocketOptions, tlsd *tlslink.Dialer, opts wireconn.Options) (*wireconn.Conn, *batchConn, error) {
	type link struct {
		conn *wireconn.Conn
		bc   *batchConn
	}
	l, err := transport.DialFirst(ctx, address, so, func(nc net.Conn, network string, a transport.Address) (link, error) {
		if tlsd != nil && network != "unix" {
			name := tlsName
			if name == "" {
				name = a.Params["host"]
			}
			tc, err := tlsd.Client(ctx, nc, name)
			if err != nil {
				return link{}, err
			}
			nc = tc
		}
		o := opts
		o.Mechanism = transport.MechanismAnonymous
		if network == "unix" {
			o.Mechanism = transport.MechanismExternal
		}
		bc := &batchConn{Conn: nc}
		if sc, ok := nc.(syscall.Conn); ok {
			bc.rc, _ = sc.SyscallConn()
		}
		conn, err := wireconn.Client(ctx, bc, o)
		if err != nil {
			return link{}, err
		}
		bc.armed = true
		return link{conn, bc}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return l.conn, l.bc, nil
}

// batchConn is the controller connection's socket. It holds back the
// messages of real unit events (and JobStateChanged) instead of writing
// them: they leave with the next other message written (a job event, a
// reply, a heartbeat), in front of it and in one write, or when the
// events loop flushes (unitEventWindow). systemd's signals of one unit
// change come a few milliseconds apart, and sending them together wakes
// the controller once instead of several times. wireconn writes every
// message whole with one Write, which is what makes the messages visible
// here.
type batchConn struct {
	net.Conn
	rc    syscall.RawConn // the socket's, for raw writes (wireconn.WriteRaw); nil: Conn.Write
	armed bool            // the handshake is over: writes are messages; set before the reader starts

	mu   sync.Mutex
	held []byte // messages held back, in order; guarded by mu
}

// heldMembers are the signals batchConn holds back.
var heldMembers = map[string]bool{
	daemonapi.InternalAgentSignalUnitNew:               true,
	daemonapi.InternalAgentSignalUnitRemoved:           true,
	daemonapi.InternalAgentSignalUnitStateChanged:      true,
	daemonapi.InternalAgentSignalUnitPropertiesChanged: true,
	daemonapi.InternalAgentSignalJobStateChanged:       true,
}

// maxHeld bounds what is held back: more goes out at once.
const maxHeld = 64 << 10

// Write writes p, a whole message, or holds it back (see batchConn).
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && held(p) && len(b.held)+len(p) <= maxHeld {
		b.held = append(b.held, p...)
		return len(p), nil
	}
	if len(b.held) == 0 {
		return b.write(p)
	}
	b.held = append(b.held, p...) // one write for both
	_, err := b.write(b.held)
	b.drop()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (b *batchConn) write(p []byte) (int, error) {
	if b.rc != nil {
		return wireconn.WriteRaw(b.rc, p)
	}
	return b.Conn.Write(p)
}

// Flush writes the messages held back.
func (b *batchConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.held) == 0 {
		return nil
	}
	_, err := b.write(b.held)
	b.drop()
	return err
}

// keepHeld is the biggest buffer of held messages kept for the next
// burst; a bigger one is not kept while idle.
const keepHeld = 4 << 10

// drop empties the held messages. Call with mu held.
func (b *batchConn) drop() {
	if cap(b.held) > keepHeld {
		b.held = nil
	} else {
		b.held = b.held[:0]
	}
}

// Pending reports whether messages are held back.
func (b *batchConn) Pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held) > 0
}

// SyscallConn gives wireconn's reader the socket's file descriptor.
func (b *batchConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := b.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("agent: socket has no file descriptor")
	}
	return sc.SyscallConn()
}

// held reports whether message p is a signal batchConn holds back.
func held(p []byte) bool {
	if len(p) < wire.HeaderSize || p[1] != wire.TypeSignal {
		return false
	}
	var m wire.Message
	if wire.Parse(p, &m) != nil {
		return false
	}
	return m.Interface == daemonapi.InternalAgentInterface && heldMembers[m.Member]
}
