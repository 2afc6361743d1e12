// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Suite is the Debian release the base root is made of.
const Suite = "bookworm"

// basePackages are installed into the base root on top of debootstrap's
// minbase variant: systemd as PID 1, the system bus, and the tools the tests
// run inside a node (ip, nft for packet drops).
var basePackages = []string{"systemd", "systemd-sysv", "dbus", "iproute2", "nftables"}

// baseVersion changes when the post-processing of the base changes, so a
// cached base made by an older version is not reused.
const baseVersion = "2"

// Mirror returns the Debian mirror apt uses on this machine: the first URI
// of a deb entry for suite in /etc/apt/sources.list.d/*.sources (deb822) or
// /etc/apt/sources.list (one-line format). debootstrap reaches the mirror
// as apt does.
func Mirror(suite string) (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(data), "\n\n") {
			fields := map[string]string{}
			for _, line := range strings.Split(stanza, "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
					fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			if !hasWord(fields["Types"], "deb") || !hasWord(fields["Suites"], suite) {
				continue
			}
			if uris := strings.Fields(fields["URIs"]); len(uris) > 0 {
				return uris[0], nil
			}
		}
	}
	if f, err := os.Open("/etc/apt/sources.list"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			w := strings.Fields(sc.Text())
			// deb [options] URI suite components...
			if len(w) < 3 || w[0] != "deb" {
				continue
			}
			w = w[1:]
			if strings.HasPrefix(w[0], "[") {
				for len(w) > 0 && !strings.HasSuffix(w[0], "]") {
					w = w[1:]
				}
				if len(w) > 0 {
					w = w[1:]
				}
			}
			if len(w) >= 2 && w[1] == suite {
				return w[0], nil
			}
		}
	}
	return "", fmt.Errorf("no apt source for Debian %s in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list", suite)
}

func hasWord(s, w string) bool {
	for _, x := range strings.Fields(s) {
		if x == w {
			return true
		}
	}
	return false
}

// EnsureBase returns a Debian root for nodes under cacheDir, making it with
// debootstrap when no complete one for the current parameters is there. The
// base is never booted itself; nodes mount it as an overlay's lower layer.
// Progress goes to log.
func EnsureBase(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	mirror, err := Mirror(Suite)
	if err != nil {
		return "", err
	}
	for _, tool := range []string{"debootstrap", "systemd-nspawn", "nsenter", "ip", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is missing (Debian packages debootstrap, systemd-container, util-linux, iproute2; .ci/run installs them): %w", tool, err)
		}
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{baseVersion, Suite, mirror, strings.Join(basePackages, ",")}, "\n")))
	dir := filepath.Join(cacheDir, "base-"+Suite+"-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	// One builder at a time (several test runs may share the cache).
	lock, err := os.OpenFile(filepath.Join(cacheDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", cacheDir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "sysmode: debootstrap %s from %s into %s\n", Suite, mirror, tmp)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(basePackages, ","), Suite, tmp, mirror)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := out
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return "", fmt.Errorf("debootstrap: %w\n%s", err, tail)
	}
	if err := prepareBase(tmp); err != nil {
		return "", fmt.Errorf("prepare base: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(mirror+"\n"), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	// Older bases are of no use any more.
	old, _ := filepath.Glob(filepath.Join(cacheDir, "base-*"))
	for _, o := range old {
		if o != dir {
			_ = os.RemoveAll(o)
		}
	}
	return dir, nil
}

// prepareBase makes the debootstrap'ed root fit for many nodes: every node
// gets its own machine-id and hostname, boots are quiet (no timers, no
// services that have nothing to do in a container), systemd-networkd brings
// up the node's static address, and journald keeps its journal in memory.
func prepareBase(root string) error {
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
	_ = os.Remove(filepath.Join(root, "etc/hostname"))
	sys := filepath.Join(root, "etc/systemd/system")
	for _, u := range []string{"e2scrub_reap.service", "systemd-pstore.service", "apt-daily.service",
		"apt-daily-upgrade.service", "systemd-networkd-wait-online.service", "getty@.service", "console-getty.service"} {
		p := filepath.Join(sys, u)
		_ = os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	timers, _ := filepath.Glob(filepath.Join(sys, "timers.target.wants", "*"))
	for _, t := range timers {
		if err := os.Remove(t); err != nil {
			return err
		}
	}
	wants := filepath.Join(sys, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := filepath.Join(wants, "systemd-networkd.service")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("/lib/systemd/system/systemd-networkd.service", link); err != nil {
			return err
		}
	}
	conf := filepath.Join(root, "etc/systemd/journald.conf.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(conf, "sysmode.conf"), []byte("[Journal]\nStorage=volatile\nRateLimitBurst=0\n"), 0o644)
}
