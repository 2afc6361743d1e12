// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// BridgeName is the bridge inside a Network's namespace.
const BridgeName = "br0"

// Network is a network namespace made for one test run, holding the bridge
// the nodes' veths are plugged into. Nodes reach each other through it and
// nothing else: the namespace has no route out.
type Network struct {
	Name string // the namespace, as `ip netns` names it
}

// NewNetwork makes the namespace name (which must not exist) with its
// bridge up.
func NewNetwork(ctx context.Context, name string) (*Network, error) {
	n := &Network{Name: name}
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", BridgeName, "type", "bridge"},
		{"link", "set", BridgeName, "up"},
	} {
		if err := n.IP(ctx, args...); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	return n, nil
}

// IP runs `ip -n NAME args...`.
func (n *Network) IP(ctx context.Context, args ...string) error {
	return run(ctx, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Veth is the name of the host side of a node's veth (systemd-nspawn names
// it vb- and the machine name, cut to 15 characters).
func Veth(machine string) string {
	v := "vb-" + machine
	if len(v) > 15 {
		v = v[:15]
	}
	return v
}

// SetLink sets the host side of a node's veth up or down: down cuts the
// node off the bridge as a pulled cable would.
func (n *Network) SetLink(ctx context.Context, machine string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return n.IP(ctx, "link", "set", Veth(machine), state)
}

// Close deletes the namespace (and so the bridge and any veth left in it).
func (n *Network) Close() error {
	if _, err := os.Stat("/run/netns/" + n.Name); os.IsNotExist(err) {
		return nil
	}
	return run(context.Background(), "ip", "netns", "del", n.Name)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
