// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// ServerConfig bounds the server half of the SASL handshake. The zero value
// uses the Default* limits and a fresh random GUID per connection.
type ServerConfig struct {
	// Timeout bounds the whole handshake (0: DefaultHandshakeTimeout).
	Timeout time.Duration
	// MaxLineLength bounds one line (0: DefaultMaxLineLength).
	MaxLineLength int
	// MaxLines bounds the lines before BEGIN (0: DefaultMaxLines).
	MaxLines int
	// GUID is the server GUID sent with OK: 32 hex digits, or "" for a
	// fresh random one per connection.
	GUID string
	// BeforeStart, if set, runs on each connection before godbus reads
	// from it; export the objects the peer's first call needs here.
	BeforeStart BeforeStartFunc
}

func (c ServerConfig) limits() handshakeLimits {
	lim := handshakeLimits{maxLineLength: c.MaxLineLength, maxLines: c.MaxLines}
	if lim.maxLineLength <= 0 {
		lim.maxLineLength = DefaultMaxLineLength
	}
	if lim.maxLines <= 0 {
		lim.maxLines = DefaultMaxLines
	}
	return lim
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Accept runs the server half of the SASL handshake on an accepted
// connection with the default ServerConfig and returns a started godbus
// connection (Hello is not called). opts are passed to godbus unchanged.
// On error nc is closed.
func Accept(nc net.Conn, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	return ServerConfig{}.Accept(context.Background(), nc, opts...)
}

// Accept runs the server half of the SASL handshake on nc within c's limits
// and returns a started godbus connection (Hello is not called). opts are
// passed to godbus unchanged. Cancelling ctx aborts the handshake, not the
// returned connection. On error nc is closed.
func (c ServerConfig) Accept(ctx context.Context, nc net.Conn, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	guid := c.GUID
	if guid == "" {
		var err error
		if guid, err = newGUID(); err != nil {
			_ = nc.Close()
			return nil, err
		}
	} else if !validGUID(guid) {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: server GUID %q is not 32 hex digits", guid)
	}
	r := bufio.NewReaderSize(newSysIO(nc), readBufferSize)
	err := withDeadline(ctx, nc, orDefault(c.Timeout, DefaultHandshakeTimeout), func() error {
		_, err := serverHandshake(r, nc, guid, c.limits())
		return err
	})
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: accepting %s: %w", describePeer(nc), err)
	}
	return startConn(nc, r, guid, opts, c.BeforeStart)
}

// withDeadline runs fn with a deadline of timeout (or ctx's, if earlier) on
// nc, aborting fn's I/O when ctx is cancelled, and clears the deadline
// afterwards.
func withDeadline(ctx context.Context, nc net.Conn, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := nc.SetDeadline(deadline); err != nil {
		return fmt.Errorf("setting handshake deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = nc.SetDeadline(time.Unix(1, 0))
	})
	err := fn()
	if !stop() {
		// ctx fired: whatever fn returned, report the cancellation.
		return fmt.Errorf("handshake aborted: %w", context.Cause(ctx))
	}
	if err != nil {
		return err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clearing handshake deadline: %w", err)
	}
	return nil
}

// describePeer names the remote end of nc for error messages.
func describePeer(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.Network() + " peer " + a.String()
	}
	if a := nc.LocalAddr(); a != nil {
		return a.Network() + " peer on " + a.String()
	}
	return "peer"
}

// Server accepts peer connections from a listener, authenticates each in
// its own goroutine and hands the started godbus connections to Handle. A
// failed handshake or accept error is reported and never stops it.
type Server struct {
	// Handshake bounds each SASL handshake.
	Handshake ServerConfig
	// Options returns the godbus options for one accepted socket, e.g.
	// dbus.WithHandler; may be nil.
	Options func(nc net.Conn) []dbus.ConnOption
	// Handle receives every authenticated connection together with its
	// socket (for PeerIP and credentials). It runs in the connection's
	// goroutine and Serve waits for it, so it should return promptly.
	// godbus is already reading: objects needed by the peer's first
	// message belong in Handshake.BeforeStart.
	Handle func(conn *dbus.Conn, nc net.Conn)
	// OnError, if set, is told about every failed accept (nc nil) and
	// handshake (nc already closed). It may be called concurrently.
	OnError func(nc net.Conn, err error)
}

// Serve accepts connections on l until ctx is done or l is closed, then
// closes l and waits for handshakes and Handle calls in progress. It
// returns nil after such a shutdown.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	defer l.Close()

	backoff := time.Duration(0)
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.report(nil, fmt.Errorf("transport: accepting on %s: %w", l.Addr(), err))
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		wg.Go(func() { s.serveConn(ctx, nc) })
	}
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	var opts []dbus.ConnOption
	if s.Options != nil {
		opts = s.Options(nc)
	}
	conn, err := s.Handshake.Accept(ctx, nc, opts...)
	if err != nil {
		s.report(nc, err)
		return
	}
	if s.Handle == nil {
		_ = conn.Close()
		return
	}
	s.Handle(conn, nc)
}

func (s *Server) report(nc net.Conn, err error) {
	if s.OnError != nil {
		s.OnError(nc, err)
	}
}
