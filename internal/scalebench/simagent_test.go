// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluechi-go/bluechi/internal/tlslink"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Names of the internal protocol the simulated agent uses
// (internal-protocol.md §3-§5). They are restated here on purpose: the
// agent is a fake for scale measurements only, and the generated internal
// bindings are on their way out of the public package.
const (
	busName           = "org.eclipse.bluechi"
	controllerPath    = "/org/eclipse/bluechi/internal"
	controllerIface   = "org.eclipse.bluechi.internal.Controller"
	agentPath         = "/org/eclipse/bluechi/internal/agent"
	agentIface        = "org.eclipse.bluechi.internal.Agent"
	unitListSignature = "a(ssssssouso)"
)

// saslHello is a whole pipelined client handshake (ANONYMOUS), as the real
// agent sends it.
const saslHello = "\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n"

// heartbeatEvery is the agent's default HeartbeatInterval.
const heartbeatEvery = 2 * time.Second

// unitsBody is the body of a ListUnits reply with 20 units, built once.
var unitsBody = func() []byte {
	var w wire.Writer
	arr := w.BeginArray(8)
	for i := range 20 {
		name := fmt.Sprintf("unit%02d.service", i)
		w.Align(8)
		for _, s := range []string{name, "Simulated unit " + name, "loaded", "active", "running", ""} {
			w.String(s)
		}
		w.ObjectPath("/org/freedesktop/systemd1/unit/unit" + fmt.Sprintf("%02d", i) + "_2eservice")
		w.Uint32(0)
		w.String("")
		w.ObjectPath("/")
	}
	w.EndArray(arr)
	return w.Buf
}()

// simAgent is one simulated agent: a TCP connection (over TLS with
// UseTLS=yes), a reader goroutine and a heartbeat timer.
type simAgent struct {
	name string
	nc   net.Conn

	wmu    sync.Mutex // guards out, serial and writes to nc
	out    []byte
	serial uint32

	hb   *time.Timer
	done chan struct{} // closed when the reader ends
	err  error         // why the reader ended; read after done
}

// dialAgent connects to the controller at addr (with tlsd, over mutual
// TLS as the real agent's dialer does it), authenticates, registers as
// name and starts heartbeating. It returns once Register was answered.
func dialAgent(ctx context.Context, addr, name string, tlsd *tlslink.Dialer) (*simAgent, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsd != nil {
		host, _, _ := net.SplitHostPort(addr)
		tc, err := tlsd.Client(ctx, nc, host) // closes nc on error
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		nc = tc
	}
	a := &simAgent{name: name, nc: nc, done: make(chan struct{})}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(nc, 4096)
	if _, err := io.WriteString(nc, saslHello); err != nil {
		nc.Close()
		return nil, err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: SASL: %w", name, err)
		}
		if strings.HasPrefix(line, "OK ") {
			break
		}
		if !strings.HasPrefix(line, "DATA") {
			nc.Close()
			return nil, fmt.Errorf("%s: SASL: unexpected %q", name, line)
		}
	}
	var w wire.Writer
	w.String(name)
	a.wmu.Lock()
	a.serial++
	regSerial := a.serial
	a.out = wire.AppendCall(a.out[:0], regSerial, busName, controllerPath, controllerIface, "Register", "s", w.Buf)
	_, err = nc.Write(a.out)
	a.wmu.Unlock()
	if err != nil {
		nc.Close()
		return nil, err
	}
	var m wire.Message
	for {
		frame, err := readFrame(r)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: waiting for the Register reply: %w", name, err)
		}
		if err := wire.Parse(frame, &m); err != nil {
			nc.Close()
			return nil, err
		}
		if m.ReplySerial == regSerial {
			if m.Type == wire.TypeError {
				nc.Close()
				return nil, fmt.Errorf("%s: Register failed: %s", name, m.ErrorName)
			}
			break
		}
		a.handle(&m)
	}
	_ = nc.SetDeadline(time.Time{})
	// Armed only once a.hb is set: heartbeat re-arms it through a.hb.
	a.hb = time.AfterFunc(time.Hour, a.heartbeat)
	a.hb.Reset(rand.N(heartbeatEvery))
	go a.read(r)
	return a, nil
}

// readFrame reads one whole message.
func readFrame(r *bufio.Reader) ([]byte, error) {
	hdr, err := r.Peek(wire.HeaderSize)
	if err != nil {
		return nil, err
	}
	size, _, err := wire.FrameSize(hdr)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, size)
	_, err = io.ReadFull(r, frame)
	return frame, err
}

func (a *simAgent) read(r *bufio.Reader) {
	defer close(a.done)
	var m wire.Message
	for {
		frame, err := readFrame(r)
		if err != nil {
			a.err = err
			return
		}
		if err := wire.Parse(frame, &m); err != nil {
			a.err = err
			return
		}
		a.handle(&m)
	}
}

// handle answers a method call: ListUnits with the 20 units, anything else
// (Subscribe, Ping, ...) with an empty return, unless no reply is expected.
func (a *simAgent) handle(m *wire.Message) {
	if m.Type != wire.TypeMethodCall || m.Flags&0x1 != 0 {
		return
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.serial++
	if m.Member == "ListUnits" {
		a.out = wire.AppendReturn(a.out[:0], a.serial, m.Serial, "", unitListSignature, unitsBody)
	} else {
		a.out = wire.AppendReturn(a.out[:0], a.serial, m.Serial, "", "", nil)
	}
	_, _ = a.nc.Write(a.out)
}

// heartbeat sends the agent's Heartbeat signal and re-arms the timer.
func (a *simAgent) heartbeat() {
	select {
	case <-a.done:
		return
	default:
	}
	a.wmu.Lock()
	a.serial++
	a.out = wire.AppendSignal(a.out[:0], a.serial, agentPath, agentIface, "Heartbeat", "", "", nil)
	_, err := a.nc.Write(a.out)
	a.wmu.Unlock()
	if err == nil {
		a.hb.Reset(heartbeatEvery)
	}
}

// Close ends the agent's connection and waits for its reader.
func (a *simAgent) Close() {
	a.hb.Stop()
	a.nc.Close()
	<-a.done
}
