// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// wireClient is a bus client without godbus: it sends method calls and
// waits for the whole reply frame, parsing its header only. Timing calls
// through it shows what the controller and the bus take, without the
// client's own decoding (godbus's reflection costs about as much as the
// controller's encoding for a 1000-node ListNodes).
type wireClient struct {
	nc     net.Conn
	r      *bufio.Reader
	serial uint32
	out    []byte
}

func dialWireClient(address string) (*wireClient, error) {
	addrs, err := transport.ParseAddress(address)
	if err != nil {
		return nil, err
	}
	network, addr, err := addrs[0].Network()
	if err != nil {
		return nil, err
	}
	nc, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	c := &wireClient{nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	if _, err := transport.ClientHandshake(c.r, nc, transport.MechanismExternal, strconv.Itoa(os.Getuid())); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus handshake: %w", err)
	}
	if _, err := c.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"); err != nil {
		nc.Close()
		return nil, fmt.Errorf("Hello: %w", err)
	}
	return c, nil
}

// call sends a call without arguments and returns the size of its reply.
func (c *wireClient) call(dest, path, iface, member string) (int, error) {
	c.serial++
	serial := c.serial
	c.out = wire.AppendCall(c.out[:0], serial, dest, path, iface, member, "", nil)
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(c.out); err != nil {
		return 0, err
	}
	var m wire.Message
	for {
		frame, err := readFrame(c.r)
		if err != nil {
			return 0, err
		}
		if err := wire.Parse(frame, &m); err != nil {
			return 0, err
		}
		if m.ReplySerial != serial || (m.Type != wire.TypeMethodReturn && m.Type != wire.TypeError) {
			continue // NameAcquired and other signals
		}
		if m.Type == wire.TypeError {
			return 0, fmt.Errorf("%s.%s: %s", iface, member, m.ErrorName)
		}
		return len(frame), nil
	}
}

// listNodes calls Controller.ListNodes.
func (c *wireClient) listNodes() (int, error) {
	return c.call(bluechi.ControllerBusName, string(bluechi.ControllerPath), bluechi.ControllerInterface, bluechi.ControllerMethodListNodes)
}

func (c *wireClient) Close() { c.nc.Close() }
