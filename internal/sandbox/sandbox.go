// SPDX-License-Identifier: Apache-2.0

// Package sandbox runs several "nodes" on one machine for tests: each node is
// a real `systemd --user` manager running as root in its own mount namespace
// and its own cgroup, with its own session bus, runtime and configuration
// folders. It needs root, a cgroup2 (or v1 name=systemd) hierarchy, and the
// binaries systemd, dbus-daemon, nsenter, mount and umount; a missing one is
// an error (tests fail, they never skip).
//
// What each node gets (see the notes in /work/shared/notes/dbus-in-go.md):
//   - a private mount namespace with a tmpfs on /run/systemd holding
//     /run/systemd/system (so systemd believes it was booted with systemd),
//     a pty bound over /dev/console (systemd's own log, copied into
//     <Dir>/systemd.log; never the host's console), a private tmpfs on
//     /run/bluechi, an
//     empty /etc/systemd/user (host user units stay out of the unit list) and
//     irrelevant host mounts (/mnt, /media, /boot, ...) unmounted;
//   - a cgroup <own cgroup>/bluechi-sandbox/<name>-<pid>-<rand> in the unified
//     and the name=systemd hierarchy, with systemd in its "manager" child and
//     processes run through Node.Command in its "exec" child;
//   - XDG_RUNTIME_DIR, XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_STATE_HOME and
//     XDG_CACHE_HOME under <BaseDir>/<Name>;
//   - a session bus at $XDG_RUNTIME_DIR/bus owned by the node's own systemd
//     through its own dbus.socket and dbus.service.
//
// Nothing of this is visible in the host's mount namespace, except that an
// empty /run/bluechi folder is created as a mount point when it is missing.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/busnames"
)

// SystemdBusName is the name the node's systemd owns on its bus once ready.
const SystemdBusName = busnames.Systemd1ManagerBusName

// Options describe one node.
type Options struct {
	// BaseDir is the folder that receives the node's folder <BaseDir>/<Name>.
	// Empty: a new short temporary folder, removed by Stop. Keep it short:
	// unix socket paths are limited to 107 bytes.
	BaseDir string
	// Name of the node: letters, digits, '.', '_' and '-'. Required.
	Name string
	// Units maps unit file names to their contents; they are written to
	// $XDG_CONFIG_HOME/systemd/user before systemd starts.
	Units map[string]string
	// Env adds environment variables (KEY=value) for the node's systemd and
	// therefore for every unit it starts.
	Env []string
	// KeepHostMounts leaves host mounts such as /mnt/* mounted in the node
	// (they show up as mount units).
	KeepHostMounts bool
	// KeepHostUserUnits leaves /etc/systemd/user visible to the node.
	KeepHostUserUnits bool
	// UnifiedCgroups, on a host whose /sys/fs/cgroup is not cgroup2 (the
	// hybrid layout: v1 controllers, the unified hierarchy beside them),
	// runs the node's systemd in a cgroup namespace rooted at the node's
	// cgroup with cgroup2 mounted on /sys/fs/cgroup: it then runs in pure
	// cgroup v2 mode and can freeze units (the v2 freezer). No effect
	// where /sys/fs/cgroup is cgroup2 already. Needs unshare (util-linux).
	UnifiedCgroups bool
}

// Node is a running sandboxed systemd user manager.
type Node struct {
	Name string
	// Dir is <BaseDir>/<Name>, holding every folder below and systemd.log.
	Dir string
	// BusAddress is the node's session bus, "unix:path=<RuntimeDir>/bus".
	BusAddress string
	// RuntimeDir is the node's XDG_RUNTIME_DIR (systemd's %t).
	RuntimeDir string
	// ConfigDir is the node's XDG_CONFIG_HOME.
	ConfigDir string
	// UnitDir is ConfigDir/systemd/user, where unit files go.
	UnitDir string
	// LogPath receives systemd's own log (through a pty bound over
	// /dev/console in the node) and its stdout and stderr.
	LogPath string
	// PID is the process id of the node's systemd (as the host sees it).
	PID int
	// Cgroups are the node's cgroup folders, one per cgroup hierarchy.
	Cgroups []string

	cg      *nodeCgroup
	console *console
	consf   *os.File
	cmd     *exec.Cmd
	sh      string
	ownBase string // BaseDir to remove on Stop, if we made it
	done    chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Start launches a node. It does not wait until the node is ready: call
// WaitReady (StartT does both).
func Start(ctx context.Context, opts Options) (_ *Node, err error) {
	if !validName.MatchString(opts.Name) {
		return nil, fmt.Errorf("sandbox: invalid node name %q", opts.Name)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("sandbox: needs root (mount namespaces, cgroups)")
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	if err := raiseInotify(); err != nil {
		return nil, err
	}
	hs, err := findHierarchies()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	sweepOnce.Do(func() {
		sweepStale(hs)
		sweepTempDirs()
	})

	n := &Node{Name: opts.Name, done: make(chan struct{})}
	base := opts.BaseDir
	if base == "" {
		base, err = os.MkdirTemp("", fmt.Sprintf("bcsb-%d-", os.Getpid()))
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		n.ownBase = base
	}
	defer func() {
		if err != nil {
			n.closeConsole()
			n.cleanupFiles()
			if n.cg != nil {
				_ = n.cg.remove()
			}
		}
	}()
	if base, err = filepath.Abs(base); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	n.Dir = filepath.Join(base, opts.Name)
	n.RuntimeDir = filepath.Join(n.Dir, "rt")
	n.ConfigDir = filepath.Join(n.Dir, "config")
	n.UnitDir = filepath.Join(n.ConfigDir, "systemd", "user")
	n.LogPath = filepath.Join(n.Dir, "systemd.log")
	n.BusAddress = "unix:path=" + filepath.Join(n.RuntimeDir, "bus")
	// systemd also binds %t/systemd/notify and %t/systemd/private.
	if len(filepath.Join(n.RuntimeDir, "systemd", "private")) > 107 {
		return nil, fmt.Errorf("sandbox: runtime folder %s is too long for unix sockets; use a shorter BaseDir", n.RuntimeDir)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Mkdir(n.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: node folder: %w", err)
	}
	if err := os.Mkdir(n.RuntimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	for _, d := range []string{"data", "state", "cache"} {
		if err := os.Mkdir(filepath.Join(n.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	if err := writeBaseUnits(n.UnitDir, bins.dbusDaemon); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	for name, content := range opts.Units {
		if err := n.WriteUnit(name, content); err != nil {
			return nil, err
		}
	}

	cgName := fmt.Sprintf("%s-%d-%s", opts.Name, os.Getpid(), randHex(4))
	if n.cg, err = createCgroup(hs, cgName); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	n.Cgroups = n.cg.dirs

	var unmount []string
	if !opts.KeepHostMounts {
		unmount = irrelevantMounts(base)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer logf.Close()
	consf, err := os.OpenFile(n.LogPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if n.console, err = openConsole(consf); err != nil {
		consf.Close()
		return nil, fmt.Errorf("sandbox: console: %w", err)
	}
	n.consf = consf
	script := startScript(n.cg.procsFiles(cgManager), unmount, !opts.KeepHostUserUnits, opts.UnifiedCgroups, bins.systemd, n.console.path)
	cmd := exec.Command(bins.sh, "-c", script, "sandbox-"+opts.Name)
	cmd.Dir = "/"
	cmd.Env = append([]string{
		"PATH=" + envOr("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		"HOME=" + envOr("HOME", "/root"),
		"LANG=C.UTF-8",
		"USER=root",
		"LOGNAME=root",
		"XDG_RUNTIME_DIR=" + n.RuntimeDir,
		"XDG_CONFIG_HOME=" + n.ConfigDir,
		"XDG_DATA_HOME=" + filepath.Join(n.Dir, "data"),
		"XDG_STATE_HOME=" + filepath.Join(n.Dir, "state"),
		"XDG_CACHE_HOME=" + filepath.Join(n.Dir, "cache"),
		// The pty bound over /dev/console: not the kernel log (auto's
		// fallback) and not the missing journal.
		"SYSTEMD_LOG_TARGET=console",
		"SYSTEMD_COLORS=0",
	}, opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Go makes the new namespace's mounts private (MS_REC|MS_PRIVATE on /).
		Unshareflags: syscall.CLONE_NEWNS,
		Setsid:       true,
		// If the test binary dies, its nodes' managers die with it; leftover
		// services are swept by the next Start (sweepStale).
		Pdeathsig: syscall.SIGKILL,
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("sandbox: start systemd: %w", err)
	}
	n.cmd = cmd
	n.sh = bins.sh
	n.PID = cmd.Process.Pid
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	return n, nil
}

var sweepOnce sync.Once

// sweepTempDirs removes the temporary base folders (bcsb-<pid>-*) of test
// binaries that died without stopping their nodes.
func sweepTempDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "bcsb-*-*"))
	for _, d := range dirs {
		parts := strings.Split(filepath.Base(d), "-")
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// spawner starts the nodes' managers from one OS thread that never exits:
// Pdeathsig fires when the *thread* that forked a child ends, and Go may end
// a thread whose goroutine locked it (runtime.LockOSThread) and returned.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.err
}

type binaries struct{ sh, systemd, dbusDaemon string }

func findBinaries() (binaries, error) {
	var b binaries
	var missing []string
	look := func(name string, candidates ...string) string {
		for _, c := range candidates {
			if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
				return c
			}
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		missing = append(missing, name)
		return ""
	}
	b.sh = look("sh", "/bin/sh")
	b.systemd = look("systemd", "/usr/lib/systemd/systemd", "/lib/systemd/systemd")
	b.dbusDaemon = look("dbus-daemon", "/usr/bin/dbus-daemon")
	look("nsenter")
	look("mount")
	look("umount")
	if len(missing) > 0 {
		return b, fmt.Errorf("sandbox: missing binaries %v (Debian packages systemd, dbus-daemon, util-linux, mount)", missing)
	}
	return b, nil
}

// raiseInotify makes room for many managers: each takes about 5 inotify
// instances and the default limit of 128 is shared by all root processes;
// systemd exits 1 without a message when it runs out.
func raiseInotify() error {
	inotifyOnce.Do(func() {
		const path, want = "/proc/sys/fs/inotify/max_user_instances", 8192
		data, err := os.ReadFile(path)
		if err != nil {
			inotifyErr = fmt.Errorf("sandbox: %w", err)
			return
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err == nil && cur >= want {
			return
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0); err != nil {
			inotifyErr = fmt.Errorf("sandbox: raise %s: %w", path, err)
		}
	})
	return inotifyErr
}

var (
	inotifyOnce sync.Once
	inotifyErr  error
)

const dbusSocketUnit = `[Unit]
Description=D-Bus User Message Bus Socket (sandbox node)

[Socket]
ListenStream=%t/bus
`

const dbusServiceUnit = `[Unit]
Description=D-Bus User Message Bus (sandbox node)
Requires=dbus.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart=%s --session --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only
`

// writeBaseUnits installs the node's own dbus.socket and dbus.service, so
// that the node's systemd owns its session bus.
func writeBaseUnits(unitDir, dbusDaemon string) error {
	wants := filepath.Join(unitDir, "sockets.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(unitDir, "dbus.socket"), []byte(dbusSocketUnit), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(unitDir, "dbus.service"), []byte(fmt.Sprintf(dbusServiceUnit, dbusDaemon)), 0o644); err != nil {
		return err
	}
	return os.Symlink("../dbus.socket", filepath.Join(wants, "dbus.socket"))
}

// WriteUnit writes a unit file into the node's UnitDir (systemd sees it after
// its next Reload, or at start when written before).
func (n *Node) WriteUnit(name, content string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("sandbox: invalid unit file name %q", name)
	}
	if err := os.MkdirAll(n.UnitDir, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(n.UnitDir, name), []byte(content), 0o644); err != nil {
		return fmt.Errorf("sandbox: write unit: %w", err)
	}
	return nil
}

// startScript is run by /bin/sh inside the new mount namespace; it ends by
// exec'ing systemd, so the shell's PID is systemd's.
func startScript(cgProcs, unmount []string, hideUserUnits, unified bool, systemd, console string) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, f := range cgProcs {
		fmt.Fprintf(&b, "echo $$ > %s\n", shQuote(f))
	}
	b.WriteString("mount -t tmpfs -o mode=0755,size=16m sandbox /run/systemd\n")
	b.WriteString("mkdir /run/systemd/system\n")
	b.WriteString("mkdir -p /run/bluechi\n")
	b.WriteString("mount -t tmpfs -o mode=0755,size=16m sandbox /run/bluechi\n")
	// A user manager reopens /dev/console for its log: never the host's.
	fmt.Fprintf(&b, "if [ -e /dev/console ]; then mount --bind %s /dev/console; fi\n", shQuote(console))
	if hideUserUnits {
		b.WriteString("if [ -d /etc/systemd/user ]; then mount -t tmpfs -o ro,mode=0755,size=64k sandbox /etc/systemd/user; fi\n")
	}
	for _, m := range unmount {
		fmt.Fprintf(&b, "umount -l %s 2>/dev/null || true\n", shQuote(m))
	}
	if unified {
		// A cgroup namespace rooted at the node's cgroup, with cgroup2 on
		// /sys/fs/cgroup: systemd sees a pure v2 host. systemd 252 also
		// wants /sys/fs/cgroup/init.scope/cgroup.freeze to allow freezing.
		fmt.Fprintf(&b, "if [ \"$(stat -fc %%T /sys/fs/cgroup)\" != cgroup2fs ]; then exec unshare --cgroup /bin/sh -c %s; fi\n",
			shQuote("set -e; mount -t cgroup2 cgroup2 /sys/fs/cgroup; mkdir -p /sys/fs/cgroup/init.scope; exec "+shQuote(systemd)+" --user"))
	}
	fmt.Fprintf(&b, "exec %s --user\n", shQuote(systemd))
	return b.String()
}

// irrelevantPrefixes are host mount points of no use to a node; their mount
// units would only lengthen unit lists and make nodes differ from each other.
var irrelevantPrefixes = []string{
	"/mnt", "/media", "/boot", "/snap", "/srv", "/home",
	"/run/user", "/run/docker", "/run/containerd", "/run/netns", "/run/credentials", "/run/snapd",
	"/var/lib/docker", "/var/lib/containers", "/var/lib/kubelet", "/var/snap",
}

// irrelevantMounts lists host mount points to unmount in a node, deepest
// first, never one that holds keep (the node folders) or the current folder.
func irrelevantMounts(keep string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	cwd, _ := os.Getwd()
	holds := func(mnt, p string) bool {
		return p != "" && (p == mnt || strings.HasPrefix(p, mnt+"/"))
	}
	var out []string
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) < 5 {
			continue
		}
		mnt := unescapeMount(f[4])
		match := false
		for _, p := range irrelevantPrefixes {
			if holds(p, mnt) {
				match = true
				break
			}
		}
		if !match || holds(mnt, keep) || holds(mnt, cwd) || holds(mnt, os.TempDir()) {
			continue
		}
		out = append(out, mnt)
	}
	return out
}

// WaitReady waits until the node's systemd owns org.freedesktop.systemd1 on
// the node's bus (event-driven through NameOwnerChanged). Only then may
// clients call systemd: an earlier call triggers bus activation and blocks
// for the whole call timeout.
func (n *Node) WaitReady(ctx context.Context) error {
	conn, err := n.dialRetry(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch := make(chan *dbus.Signal, 16)
	conn.Signal(ch)
	if err := conn.AddMatchSignalContext(ctx,
		dbus.WithMatchSender(busnames.DBusBusName),
		dbus.WithMatchInterface(busnames.DBusInterface),
		dbus.WithMatchMember(busnames.DBusSignalNameOwnerChanged),
		dbus.WithMatchArg(0, SystemdBusName)); err != nil {
		return fmt.Errorf("sandbox %s: add match: %w", n.Name, err)
	}
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, busnames.DBusInterface+"."+busnames.DBusMethodNameHasOwner, 0, SystemdBusName).Store(&has); err != nil {
		return fmt.Errorf("sandbox %s: NameHasOwner: %w", n.Name, err)
	}
	for !has {
		select {
		case sig, ok := <-ch:
			if !ok {
				return fmt.Errorf("sandbox %s: bus connection closed while waiting for systemd", n.Name)
			}
			if sig.Name == busnames.DBusInterface+"."+busnames.DBusSignalNameOwnerChanged && len(sig.Body) == 3 {
				if owner, _ := sig.Body[2].(string); owner != "" {
					has = true
				}
			}
		case <-n.done:
			return fmt.Errorf("sandbox %s: systemd exited (%v) before it was ready; log:\n%s", n.Name, n.waitErr, n.LogTail(4096))
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: systemd not ready: %w; log:\n%s", n.Name, ctx.Err(), n.LogTail(4096))
		}
	}
	return nil
}

// dialRetry connects to the node's bus, retrying (every 10 ms, until ctx
// ends) while its socket does not exist yet.
func (n *Node) dialRetry(ctx context.Context) (*dbus.Conn, error) {
	for {
		conn, err := n.Connect()
		if err == nil {
			return conn, nil
		}
		select {
		case <-n.done:
			return nil, fmt.Errorf("sandbox %s: systemd exited (%v); log:\n%s", n.Name, n.waitErr, n.LogTail(4096))
		case <-ctx.Done():
			return nil, fmt.Errorf("sandbox %s: bus not reachable: %v (%w); log:\n%s", n.Name, err, ctx.Err(), n.LogTail(4096))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Connect opens a new private connection to the node's bus (authenticated,
// Hello done). The caller closes it.
func (n *Node) Connect(opts ...dbus.ConnOption) (*dbus.Conn, error) {
	conn, err := dbus.Dial(n.BusAddress, opts...)
	if err != nil {
		return nil, err
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Env returns the environment a process needs to use the node's session
// bus and user manager (DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR).
func (n *Node) Env() []string {
	return []string{"DBUS_SESSION_BUS_ADDRESS=" + n.BusAddress, "XDG_RUNTIME_DIR=" + n.RuntimeDir}
}

// Command prepares argv to run inside the node's mount namespace and in the
// node's "exec" cgroup (so Stop ends it too), with the variables of Env set
// (they are set by the wrapper, so replacing cmd.Env does not lose them).
// The process's PID is the one of argv[0] (the wrapper execs into it), so
// signals and ctx cancellation reach it directly. cmd.Dir is honoured.
func (n *Node) Command(ctx context.Context, argv ...string) *exec.Cmd {
	var b strings.Builder
	for _, f := range n.cg.procsFiles(cgExec) {
		fmt.Fprintf(&b, "echo $$ > %s || exit 125\n", shQuote(f))
	}
	for _, e := range n.Env() {
		fmt.Fprintf(&b, "export %s\n", shQuote(e))
	}
	fmt.Fprintf(&b, "exec nsenter -t %d -m --wd=\"$PWD\" -- \"$@\"\n", n.PID)
	args := append([]string{"-c", b.String(), "sandbox-exec"}, argv...)
	return exec.CommandContext(ctx, n.sh, args...)
}

// Exec runs argv inside the node (see Command) and returns its combined
// output.
func (n *Node) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	out, err := n.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("sandbox %s: %v: %w: %s", n.Name, argv, err, out)
	}
	return out, nil
}

// Pids lists every process of the node: its systemd, everything systemd
// started and everything started with Command.
func (n *Node) Pids() []int { return n.cg.pids() }

// Stop ends everything the node started (systemd, its services and the
// processes run with Command) with SIGKILL, waits for them, removes the
// node's cgroups (the mount namespace and its mounts vanish with the last
// process) and, when Start made the base folder, removes it. It is
// idempotent and safe to call concurrently.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		var errs []error
		if err := n.cg.kill(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("systemd (pid %d) did not exit", n.PID))
		}
		if err := n.cg.remove(); err != nil {
			errs = append(errs, err)
		}
		n.closeConsole()
		n.cleanupFiles()
		if len(errs) > 0 {
			n.stopErr = fmt.Errorf("sandbox %s: stop: %w", n.Name, errors.Join(errs...))
		}
	})
	return n.stopErr
}

func (n *Node) closeConsole() {
	if n.console != nil {
		n.console.close()
		n.consf.Close()
		n.console = nil
	}
}

func (n *Node) cleanupFiles() {
	if n.ownBase != "" {
		_ = os.RemoveAll(n.ownBase)
	}
}

// LogTail returns at most max bytes of the end of systemd's log.
func (n *Node) LogTail(max int) string {
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// shQuote quotes s for the POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
