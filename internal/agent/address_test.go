// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/bluechi-go/bluechi/internal/config"
)

// TestHostAddress checks config.md §4 step 3: IP literals as they are
// (IPv6 without brackets), host names resolved by the system's resolver
// (/etc/hosts holds localhost), an unknown name an error naming it.
func TestHostAddress(t *testing.T) {
	ctx := context.Background()
	for host, want := range map[string]string{
		"127.0.0.1": "tcp:host=127.0.0.1,port=842",
		"::1":       "tcp:host=::1,port=842",
		"[::1]":     "tcp:host=::1,port=842",
		"localhost": "tcp:host=127.0.0.1,port=842",
	} {
		got, err := hostAddress(ctx, host, 842)
		if err != nil || got != want {
			t.Errorf("hostAddress(%q) = %q, %v; want %q", host, got, err, want)
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
