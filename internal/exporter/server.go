// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the HTTP server. Every accepted connection costs the exporter
// about 50 kB (a goroutine and its buffers); without these limits idle
// keep-alive connections pile up until the service's MemoryMax=64M kills it.
const (
	// MaxConnections is the number of connections served at once. A
	// Prometheus server keeps one connection per target, so a few HA
	// replicas, a dashboard and someone with curl fit easily; 64
	// connections cost about 3 MB. Further connections are not accepted:
	// they wait in the kernel's listen backlog, which costs the exporter
	// nothing, and are served in arrival order as soon as a connection
	// closes: at the latest when the timeouts below close one. Waiting,
	// not refusing, means a scrape that arrives during a burst is late
	// rather than failed, and memory stays bounded either way.
	MaxConnections = 64

	// IdleTimeout closes a keep-alive connection that has carried no
	// request for this long, which frees its slot. It is above the usual
	// scrape intervals of 15 s and 30 s, so Prometheus keeps its
	// connection between scrapes; a client that scrapes less often just
	// reconnects.
	IdleTimeout = 60 * time.Second

	// ReadHeaderTimeout bounds the reading of a request's headers, which
	// is all a scrape sends.
	ReadHeaderTimeout = 10 * time.Second

	// ReadTimeout bounds the reading of a whole request, body included.
	ReadTimeout = 15 * time.Second

	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response, and so the time a client that does not read holds a
	// connection. A scrape reads only the kept state and takes
	// milliseconds, but the limit is twice the default bus-call timeout
	// (Options.CallTimeout) so that a handler that ever waits for the
	// controller fails by that timeout, with an answer, and not by a
	// connection cut halfway.
	WriteTimeout = 2 * defaultCallTimeout
)

// serverLimits are the limits of one HTTP server; tests shorten them.
type serverLimits struct {
	maxConns                      int
	idle, readHeader, read, write time.Duration
}

var defaultLimits = serverLimits{
	maxConns:   MaxConnections,
	idle:       IdleTimeout,
	readHeader: ReadHeaderTimeout,
	read:       ReadTimeout,
	write:      WriteTimeout,
}

// newServer returns an HTTP server for h with the timeouts of lim; serve it
// on limitListener(ln, lim.maxConns).
func newServer(h http.Handler, lim serverLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
	}
}

// connLimitListener accepts at most cap(slots) connections at a time: Accept
// takes a slot before it accepts, and closing the connection gives it back.
// While every slot is taken, Accept waits and new connections stay in the
// kernel's backlog.
type connLimitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	onFull    func() // tests: called when Accept finds every slot taken
}

// limitListener returns ln limited to n connections at a time.
func limitListener(ln net.Listener, n int) *connLimitListener {
	return &connLimitListener{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.onFull != nil {
			l.onFull()
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and ends a waiting Accept.
func (l *connLimitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// CloseWrite lets the server half-close the connection before closing it
// after an error response, as it does with a bare TCP connection.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
