// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// TestHostAddress checks config.md §4 step 3: IP literals as they are
// (IPv6 without brackets, a zone escaped), host names resolved by the
// system's resolver, an unknown name an error naming it.
func TestHostAddress(t *testing.T) {
	ctx := context.Background()
	for host, want := range map[string]string{
		"127.0.0.1":  "tcp:host=127.0.0.1,port=842",
		"::1":        "tcp:host=::1,port=842",
		"[::1]":      "tcp:host=::1,port=842",
		"fe80::1%lo": "tcp:host=fe80::1%25lo,port=842", // '%' escaped
	} {
		got, err := hostAddress(ctx, host, 842)
		if err != nil || got != want {
			t.Errorf("hostAddress(%q) = %q, %v; want %q", host, got, err, want)
		}
	}
	// A name: the resolver's first address (which one depends on the
	// host's resolver configuration).
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("tcp:host=%s,port=842", ips[0].Unmap())
	if got, err := hostAddress(ctx, "localhost", 842); err != nil || got != want {
		t.Errorf("hostAddress(localhost) = %q, %v; want %q", got, err, want)
	}
	// The address parses back to the same host.
	for _, host := range []string{"::1", "fe80::1%lo"} {
		addr, _ := hostAddress(ctx, host, 842)
		parsed, err := transport.ParseAddress(addr)
		if err != nil || parsed[0].Params["host"] != host {
			t.Errorf("%s: %q parses to %v, %v", host, addr, parsed, err)
		}
	}
	if _, err := hostAddress(ctx, "no-such-host.invalid", 842); err == nil || !strings.Contains(err.Error(), "no-such-host.invalid") {
		t.Errorf("unknown host: %v", err)
	}
	// A configured address is used verbatim, never resolved.
	addr, resolved, err := initialAddress(&config.Agent{ControllerAddress: "tcp:host=no-such-host.invalid,port=1", ControllerHost: "localhost"})
	if err != nil || resolved || addr != "tcp:host=no-such-host.invalid,port=1" {
		t.Errorf("initialAddress with ControllerAddress = %q, %v, %v", addr, resolved, err)
	}
	if _, _, err := initialAddress(&config.Agent{ControllerHost: "no-such-host.invalid", ControllerPort: 842}); err == nil {
		t.Error("initialAddress of an unknown host: no error")
	}
}
