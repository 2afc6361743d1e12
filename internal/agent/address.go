// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/bluechi-go/bluechi/internal/config"
)

// ResolveTimeout bounds one resolution of ControllerHost.
const ResolveTimeout = 10 * time.Second

// hostAddress is the controller address of ControllerHost and
// ControllerPort (config.md §4 step 3): an IP literal is used as it is,
// a host name is resolved and its first address used. IPv6 addresses are
// written without brackets (tcp:host=::1,port=842).
func hostAddress(ctx context.Context, host string, port uint16) (string, error) {
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
		defer cancel()
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return "", fmt.Errorf("resolve controller host %q: %w", host, lerr)
		}
		if len(ips) == 0 {
			return "", fmt.Errorf("resolve controller host %q: no address", host)
		}
		ip = ips[0]
	}
	// '%' starts an escape in D-Bus addresses: a zone (fe80::1%eth0) is
	// written %25.
	return fmt.Sprintf("tcp:host=%s,port=%d", strings.ReplaceAll(ip.Unmap().String(), "%", "%25"), port), nil
}

// initialAddress is the controller address at start: the configured
// ControllerAddress (or -a) verbatim, else ControllerHost resolved; a
// host that does not resolve is an error. resolved tells which.
func initialAddress(cfg *config.Agent) (address string, resolved bool, err error) {
	if cfg.ControllerAddress != "" {
		return cfg.ControllerAddress, false, nil
	}
	address, err = hostAddress(context.Background(), cfg.ControllerHost, cfg.ControllerPort)
	return address, true, err
}

// dialAddress returns the address for the next connection attempt and the
// name TLS verifies the controller against ("": the address's host). While
// the address comes from ControllerHost it is resolved again before every
// attempt but the first, so that a controller that moved is found; a new
// result is announced as a ControllerAddress change.
func (a *Agent) dialAddress(ctx context.Context) (address, tlsName string, err error) {
	a.mu.Lock()
	address, resolve, fresh := a.address, a.resolveHost, a.freshAddress
	a.freshAddress = false
	a.mu.Unlock()
	if !resolve {
		return address, "", nil
	}
	tlsName = a.cfg.ControllerHost
	if fresh { // resolved in New, moments ago
		return address, tlsName, nil
	}
	next, err := hostAddress(ctx, a.cfg.ControllerHost, a.cfg.ControllerPort)
	if err != nil {
		return "", "", err
	}
	// Held from the check to the announcement, as SwitchController holds
	// it: a switch cannot slip in between and be overwritten by this
	// result. Not during the lookup, which may take seconds.
	a.addrMu.Lock()
	defer a.addrMu.Unlock()
	a.mu.Lock()
	if !a.resolveHost { // SwitchController came meanwhile: its address
		address = a.address
		a.mu.Unlock()
		return address, "", nil
	}
	changed := next != a.address
	a.address = next
	a.mu.Unlock()
	if !changed {
		return next, tlsName, nil
	}
	a.slog().Info("controller host resolves to a new address", "host", a.cfg.ControllerHost, "address", next, "was", address)
	if a.pub != nil {
		a.pub.SetControllerAddress(next)
	}
	return next, tlsName, nil
}
