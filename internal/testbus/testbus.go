// SPDX-License-Identifier: Apache-2.0

// Package testbus starts private dbus-daemon instances for tests. A missing
// dbus-daemon is a test failure, never a skip: the tests prove behaviour
// against the real daemon.
package testbus

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bus is a running private message bus.
type Bus struct {
	// Address is the D-Bus address clients connect to.
	Address string
	cmd     *exec.Cmd
}

const config = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
%s</busconfig>
`

// Start runs a dbus-daemon for the test and stops it when the test ends.
func Start(tb testing.TB) *Bus {
	tb.Helper()
	b, err := StartDaemon(tb.TempDir())
	if err != nil {
		tb.Fatalf("testbus: %v", err)
	}
	tb.Cleanup(b.Stop)
	return b
}

// StartWithPolicy is Start with extra <policy> elements after the default
// policy that allows everything (so a deny in them wins).
func StartWithPolicy(tb testing.TB, policy string) *Bus {
	tb.Helper()
	b, err := startDaemon(tb.TempDir(), policy)
	if err != nil {
		tb.Fatalf("testbus: %v", err)
	}
	tb.Cleanup(b.Stop)
	return b
}

// StartDaemon runs a dbus-daemon whose socket and config live in dir.
func StartDaemon(dir string) (*Bus, error) { return startDaemon(dir, "") }

func startDaemon(dir, policy string) (*Bus, error) {
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		return nil, fmt.Errorf("dbus-daemon not found (install Debian package dbus-daemon): %w", err)
	}
	sock := filepath.Join(dir, "bus")
	cfg := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(config, sock, policy)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config-file="+cfg, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = nil // dbus-daemon warns about fd limits when not privileged; noise
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dbus-daemon: %w", err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		l, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(l)
		// keep draining so the daemon never blocks on stdout
		_, _ = r.WriteTo(discard{})
	}()
	select {
	case addr := <-lines:
		if addr == "" {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("dbus-daemon printed no address")
		}
		return &Bus{Address: addr, cmd: cmd}, nil
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("dbus-daemon did not start within 20s")
	}
}

// Stop ends the daemon.
func (b *Bus) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
