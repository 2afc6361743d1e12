// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rebootExit is systemd-nspawn's exit status when the container asked for
// a reboot.
const rebootExit = 133

// NodeOptions describe one node.
type NodeOptions struct {
	Name    string   // host name
	Machine string   // systemd-nspawn's machine name, unique on the host (default Name)
	Address string   // static address of host0 with prefix, e.g. 10.231.0.11/24
	Base    string   // the base root (EnsureBase)
	Dir     string   // the node's folder (must not exist); removed by Close
	Net     *Network // the network the node is plugged into
}

// Node is one booted machine. Its root is an overlay over the base, so
// files written into Root before Boot are seen by the node.
type Node struct {
	NodeOptions
	Root string // the node's root as the host sees it (the overlay)

	cgroups []string // the node's cgroup folder in each hierarchy
	mounted bool

	mu       sync.Mutex // guards the fields below
	cmd      *exec.Cmd  // the running systemd-nspawn, nil when not running
	exited   chan struct{}
	leader   int // the node's PID 1 as the host sees it, 0 until found
	stopping bool
	boots    int
	lastErr  error
}

// NewNode makes the node's folder and overlay and writes its identity
// (machine-id) and network configuration. It does not boot it.
func NewNode(o NodeOptions) (*Node, error) {
	if o.Machine == "" {
		o.Machine = o.Name
	}
	n := &Node{NodeOptions: o, Root: filepath.Join(o.Dir, "root")}
	for _, d := range []string{"upper", "work", "root", "dbus"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", o.Base, filepath.Join(o.Dir, "upper"), filepath.Join(o.Dir, "work"))
	if err := syscall.Mount("overlay", n.Root, "overlay", 0, opts); err != nil {
		_ = os.RemoveAll(o.Dir)
		return nil, fmt.Errorf("mount overlay for %s: %w", o.Name, err)
	}
	n.mounted = true
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	network := fmt.Sprintf("[Match]\nName=host0\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nConfigureWithoutCarrier=yes\nIgnoreCarrierLoss=yes\n", o.Address)
	for path, data := range map[string]string{
		"etc/machine-id":                       hex.EncodeToString(id) + "\n",
		"etc/systemd/network/10-host0.network": network,
	} {
		if err := n.WriteFile(path, data, 0o644); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	return n, nil
}

// WriteFile writes a file into the node's root (path relative to it).
func (n *Node) WriteFile(path, data string, mode os.FileMode) error {
	p := filepath.Join(n.Root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(data), mode)
}

// BusAddress is the node's system bus, reachable from the host (the node's
// /run/dbus is a folder of the host).
func (n *Node) BusAddress() string {
	return "unix:path=" + filepath.Join(n.Dir, "dbus", "system_bus_socket")
}

// ConsoleLog is the file that holds the node's console output.
func (n *Node) ConsoleLog() string { return filepath.Join(n.Dir, "console.log") }

// Boot starts systemd-nspawn for the node in the background. A reboot from
// inside the node boots it again; Close powers it off.
func (n *Node) Boot() error {
	if err := n.makeCgroups(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.startLocked()
}

func (n *Node) startLocked() error {
	log, err := os.OpenFile(n.ConsoleLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(log, "=== boot %d at %s\n", n.boots+1, time.Now().UTC().Format(time.RFC3339Nano))
	// The shell moves itself into the node's cgroups, then becomes
	// nsenter into the network namespace, which becomes systemd-nspawn.
	// (Not `ip netns exec`: it mounts a new /sys, without the cgroup
	// hierarchies nspawn needs.)
	script := `for f in ` + strings.Join(n.procsFiles(), " ") + `; do echo $$ > "$f" || exit 1; done; exec "$@"`
	args := []string{"-c", script, "sh", "nsenter", "--net=/run/netns/" + n.Net.Name, "--",
		"systemd-nspawn", "--boot", "--quiet",
		"--directory=" + n.Root, "--machine=" + n.Machine, "--hostname=" + n.Name,
		"--register=no", "--keep-unit", "--link-journal=no",
		"--network-bridge=" + BridgeName,
		"--bind=" + filepath.Join(n.Dir, "dbus") + ":/run/dbus",
		"--console=read-only", "--resolv-conf=off", "--timezone=off"}
	cmd := exec.Command("sh", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_COLOR=0"}
	// The node powers off when the test process dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start systemd-nspawn for %s: %w", n.Name, err)
	}
	n.boots++
	n.cmd, n.leader = cmd, 0
	exited := make(chan struct{})
	n.exited = exited
	go n.wait(cmd, exited)
	return nil
}

// wait reaps one systemd-nspawn and boots the node again when it rebooted.
func (n *Node) wait(cmd *exec.Cmd, exited chan struct{}) {
	err := cmd.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cmd, n.leader = nil, 0
	close(exited)
	var ee *exec.ExitError
	if !n.stopping && errors.As(err, &ee) && ee.ExitCode() == rebootExit {
		if err := n.startLocked(); err != nil {
			n.lastErr = err
		}
		return
	}
	if !n.stopping {
		n.lastErr = fmt.Errorf("systemd-nspawn for %s ended: %v (see %s)", n.Name, err, n.ConsoleLog())
	}
}

// Boots counts how often the node was booted.
func (n *Node) Boots() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.boots
}

// Leader returns the node's PID 1 as the host sees it.
func (n *Node) Leader() (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		if n.lastErr != nil {
			return 0, n.lastErr
		}
		return 0, fmt.Errorf("node %s is not running", n.Name)
	}
	if n.leader != 0 {
		return n.leader, nil
	}
	pid, err := findLeader(n.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.leader = pid
	return pid, nil
}

// findLeader finds the child of systemd-nspawn that is PID 1 of its own
// PID namespace.
func findLeader(nspawn int) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	want := strconv.Itoa(nspawn)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var ppid, nspid []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) > 1 && fs[0] == "PPid:" {
				ppid = fs[1:]
			}
			if len(fs) > 1 && fs[0] == "NSpid:" {
				nspid = fs[1:]
			}
		}
		f.Close()
		if len(ppid) == 1 && ppid[0] == want && len(nspid) > 1 && nspid[len(nspid)-1] == "1" {
			return pid, nil
		}
	}
	return 0, errors.New("its PID 1 is not there yet")
}

// Command runs a program inside the node (its mount, PID, UTS, IPC and
// network namespaces, as root) with a plain environment.
func (n *Node) Command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	pid, err := n.Leader()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-m", "-p", "-u", "-i", "-n", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "TERM=dumb"}
	return cmd, nil
}

// Run runs a program inside the node and returns its standard output and
// error; err is set when it did not exit 0.
func (n *Node) Run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	cmd, err := n.Command(ctx, args...)
	if err != nil {
		return "", "", err
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s on %s: %w", strings.Join(args, " "), n.Name, err)
	}
	return o.String(), e.String(), err
}

// WaitBooted waits until the node's systemd reports running (or degraded,
// returned as an error naming the failed units).
func (n *Node) WaitBooted(ctx context.Context) error {
	var last string
	for {
		if _, err := n.Leader(); err == nil {
			out, _, _ := n.Run(ctx, "systemctl", "is-system-running")
			last = strings.TrimSpace(out)
			switch last {
			case "running":
				return nil
			case "degraded":
				failed, _, _ := n.Run(ctx, "systemctl", "--failed", "--no-legend", "--plain")
				return fmt.Errorf("node %s booted degraded: %s", n.Name, strings.TrimSpace(failed))
			}
		} else {
			n.mu.Lock()
			lastErr := n.lastErr
			n.mu.Unlock()
			if lastErr != nil {
				return lastErr
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not booted (state %q): %w (console: %s)", n.Name, last, ctx.Err(), n.ConsoleLog())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Poweroff stops the node: SIGTERM to systemd-nspawn powers the node off
// cleanly; after timeout every process left in its cgroups is killed.
func (n *Node) Poweroff(timeout time.Duration) error {
	n.mu.Lock()
	n.stopping = true
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
	}
	_ = cmd.Process.Kill()
	for _, pid := range n.cgroupPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-exited:
		return fmt.Errorf("node %s did not power off within %v: killed", n.Name, timeout)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("node %s: systemd-nspawn did not end even when killed", n.Name)
	}
}

// Close powers the node off, unmounts its overlay and removes its folder
// and cgroups. It reports the first failure but does all it can.
func (n *Node) Close() error {
	errs := []error{n.Poweroff(20 * time.Second)}
	if n.mounted {
		err := syscall.Unmount(n.Root, 0)
		for i := 0; err == syscall.EBUSY && i < 50; i++ {
			time.Sleep(100 * time.Millisecond) // the last processes of the node are being reaped
			err = syscall.Unmount(n.Root, 0)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w (detached)", n.Root, err))
			_ = syscall.Unmount(n.Root, syscall.MNT_DETACH)
		}
		n.mounted = false
	}
	errs = append(errs, n.removeCgroups())
	if n.Dir != "" {
		errs = append(errs, os.RemoveAll(n.Dir))
	}
	return errors.Join(errs...)
}

// SetLink sets the host side of the node's veth down (a pulled cable) or
// up again.
func (n *Node) SetLink(ctx context.Context, up bool) error {
	return n.Net.SetLink(ctx, n.Machine, up)
}
