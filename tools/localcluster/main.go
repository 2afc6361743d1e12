// SPDX-License-Identifier: Apache-2.0

// Command localcluster runs a BlueChi cluster on this machine for trying
// things out: a controller and N nodes, each node a real `systemd --user`
// in its own mount namespace and cgroup with a few demo units, agents over
// TCP and (for the first node, which hosts the controller) over the unix
// socket. It needs root. It prints how to reach the cluster and runs until
// interrupted; `localcluster stop` ends a cluster started in another shell.
// With -tls the TCP agents connect over mutual TLS (UseTLS=yes) with a CA
// and certificates made in the cluster's folder (tls/).
//
//	go run ./tools/localcluster [-n NODES] [-bin DIR] [-pidfile FILE] [-tls]
//	go run ./tools/localcluster [-pidfile FILE] stop
//
// Cleanup never depends on stdout: SIGPIPE is ignored, so `make run | tee
// log` stopped with Ctrl-C (which ends tee too) still stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bluechi-go/bluechi/internal/cluster"
)

func main() {
	// A write to a closed pipe then fails with EPIPE instead of killing
	// the process before it has stopped the cluster.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("localcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("n", 3, "number of nodes")
	bin := fs.String("bin", "bin", "folder with bluechi-controller and bluechi-agent (make build)")
	useTLS := fs.Bool("tls", false, "run the agent link over mutual TLS with certificates made for the cluster (UseTLS=yes)")
	pidFile := fs.String("pidfile", "/run/bluechi-localcluster.pid", "where the running cluster's process is recorded (for stop)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.Arg(0) == "stop" {
		return stop(*pidFile, stderr)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "localcluster: needs root (each node is a systemd user manager in its own mount namespace and cgroup)")
		return 1
	}
	abs, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(filepath.Join(abs, "bluechi-controller"))
	}
	if err != nil {
		fmt.Fprintf(stderr, "localcluster: no binaries in %s (run make build first): %v\n", *bin, err)
		return 1
	}
	// Signals are caught from here to the end, so a second Ctrl-C cannot
	// cut the cleanup short.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	self, err := processIdentity(os.Getpid())
	if err == nil {
		err = writePidFile(*pidFile, self)
	}
	if err != nil {
		fmt.Fprintln(stderr, "localcluster:", err)
		return 1
	}
	defer os.Remove(*pidFile)

	start := time.Now()
	names := cluster.DefaultNames(*nodes)
	c, err := cluster.Start(ctx, cluster.Options{BinDir: abs, Names: names, TLS: *useTLS})
	if err != nil {
		fmt.Fprintln(stderr, "localcluster:", err)
		return 1
	}
	defer c.Stop()
	tlsNote := ""
	if c.Certs != nil {
		last := c.Certs.Nodes[names[len(names)-1]]
		tlsNote = fmt.Sprintf("Mutual TLS on TCP port %d (UseTLS=yes); CA and certificates in %s, e.g.\n  openssl s_client -connect 127.0.0.1:%d -CAfile %s -cert %s -key %s\n",
			c.Port, c.Certs.Dir, c.Port, c.Certs.CAFile, last.Certificate, last.PrivateKey)
	}
	// Output errors are ignored: a reader that went away changes nothing.
	fmt.Fprintf(stdout, `BlueChi cluster with %d nodes is up (%v).

  export DBUS_SESSION_BUS_ADDRESS=%s
  %s/bluechictl -u status
  busctl --user call org.eclipse.bluechi /org/eclipse/bluechi org.eclipse.bluechi.Controller ListNodes
  busctl --user call org.eclipse.bluechi /org/eclipse/bluechi/node/node2 org.eclipse.bluechi.Node StartUnit ss sb-simple.service replace

Nodes: %s (%s hosts the controller; its agent uses the unix socket, the others TCP port %d).
Demo units on every node: sb-simple.service, sb-oneshot.service, sb-failing.service, sb-slow.service.
%sLogs: %s
Press Ctrl-C (or run: go run ./tools/localcluster stop) to end everything this started.
`, len(names), time.Since(start).Round(time.Millisecond), c.BusAddress, abs, strings.Join(names, ", "), names[0], c.Port, tlsNote, c.Dir)
	<-ctx.Done()
	fmt.Fprintln(stderr, "localcluster: stopping")
	return 0
}

// identity tells one process from any later one with the same PID: the
// kernel's start time (clock ticks after boot) and the executable.
type identity struct {
	pid       int
	startTime string
	exe       string
}

func (id identity) String() string { return fmt.Sprintf("%d %s %s", id.pid, id.startTime, id.exe) }

// processIdentity reads the identity of a running process from /proc.
func processIdentity(pid int) (identity, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return identity{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after its last ')'. Start time is field 22.
	i := strings.LastIndexByte(string(stat), ')')
	fields := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(fields) < 20 {
		return identity{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return identity{}, err
	}
	return identity{pid: pid, startTime: fields[19], exe: exe}, nil
}

func writePidFile(path string, id identity) error {
	if old, err := os.ReadFile(path); err == nil {
		if rec, err := parseIdentity(string(old)); err == nil {
			if cur, err := processIdentity(rec.pid); err == nil && cur == rec {
				return fmt.Errorf("a cluster is already running (pid %d, %s)", rec.pid, path)
			}
		}
	}
	return os.WriteFile(path, []byte(id.String()+"\n"), 0o644)
}

func parseIdentity(s string) (identity, error) {
	var id identity
	f := strings.SplitN(strings.TrimSpace(s), " ", 3)
	if len(f) != 3 {
		return id, errors.New("not PID STARTTIME EXE")
	}
	if _, err := fmt.Sscan(f[0], &id.pid); err != nil || id.pid <= 0 {
		return id, fmt.Errorf("bad pid %q", f[0])
	}
	id.startTime, id.exe = f[1], f[2]
	return id, nil
}

// stop ends the cluster recorded in pidFile, after checking that the PID
// still is that process: never a process that reused the PID.
func stop(pidFile string, stderr io.Writer) int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		fmt.Fprintln(stderr, "localcluster: no cluster running:", err)
		return 1
	}
	rec, err := parseIdentity(string(data))
	if err != nil {
		fmt.Fprintf(stderr, "localcluster: %s: %v; not signalling anything\n", pidFile, err)
		return 1
	}
	cur, err := processIdentity(rec.pid)
	if err != nil || cur != rec {
		fmt.Fprintf(stderr, "localcluster: the cluster of %s is gone (pid %d is not the process that wrote it); removed the stale pid file\n", pidFile, rec.pid)
		os.Remove(pidFile)
		return 1
	}
	if err := syscall.Kill(rec.pid, syscall.SIGTERM); err != nil {
		fmt.Fprintln(stderr, "localcluster:", err)
		return 1
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cur, err := processIdentity(rec.pid); err != nil || cur != rec {
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(stderr, "localcluster: cluster did not stop within 30 s")
	return 1
}
