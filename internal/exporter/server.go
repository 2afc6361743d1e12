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
	// connections cost about 3 MB. A connection that comes while all are
	// taken closes the one idle the longest (a kept-alive connection
	// between requests), so idle connections cannot keep a scrape out;
	// when none is idle it waits, with the ones behind it in the kernel's
	// listen backlog, until a connection closes: at the latest when the
	// timeouts below close one. Waiting, not refusing, means a scrape that
	// arrives during a burst is late rather than failed, and memory stays
	// bounded either way.
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

// newServer returns an HTTP server for h with the timeouts of lim, to be
// served on ll (limitListener(ln, lim.maxConns)): it tells ll which of its
// connections are idle.
func newServer(h http.Handler, lim serverLimits, ll *connLimitListener) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		ConnState:         ll.connState,
	}
}

// connLimitListener serves at most cap(slots) connections at a time: a
// connection takes a slot when it is accepted and gives it back when it is
// closed. A connection accepted while every slot is taken closes the
// connection idle the longest, if there is one, and waits for a slot; the
// connections behind it stay in the kernel's backlog meanwhile.
type connLimitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	onFull    func() // tests: called when a connection finds every slot taken

	mu   sync.Mutex                 // guards idle
	idle map[*limitedConn]time.Time // connections between requests, since when
}

// limitListener returns ln limited to n connections at a time.
func limitListener(ln net.Listener, n int) *connLimitListener {
	return &connLimitListener{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{}),
		idle: map[*limitedConn]time.Time{}}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		if l.onFull != nil {
			l.onFull()
		}
		l.closeOldestIdle()
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			c.Close()
			return nil, net.ErrClosed
		}
	}
	lc := &limitedConn{Conn: c}
	lc.release = func() {
		l.setIdle(lc, false)
		<-l.slots
	}
	return lc, nil
}

// connState is the server's ConnState hook: it keeps track of the idle
// connections.
func (l *connLimitListener) connState(c net.Conn, st http.ConnState) {
	if lc, ok := c.(*limitedConn); ok {
		l.setIdle(lc, st == http.StateIdle)
	}
}

func (l *connLimitListener) setIdle(c *limitedConn, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if idle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// closeOldestIdle closes the connection idle the longest, if any: its slot
// comes free. (A request that arrives on it at that moment fails; an HTTP
// client sends it again on a new connection.)
func (l *connLimitListener) closeOldestIdle() {
	l.mu.Lock()
	var oldest *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

// Close closes the listener and ends an Accept waiting for a slot.
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
