// Command localcluster runs a BlueChi cluster on this machine for trying
// things out: a controller and N nodes, each node a real `systemd --user`
// in its own mount namespace and cgroup with a few demo units, agents over
// TCP and (for the first node, which hosts the controller) over the unix
// socket. It needs root. It prints how to reach the cluster and runs until
// interrupted; `localcluster stop` ends a cluster started in another shell.
//
//	go run ./tools/localcluster [-n NODES] [-bin DIR]
//	go run ./tools/localcluster stop
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bluechi-go/bluechi/internal/cluster"
)

const pidFile = "/run/bluechi-localcluster.pid"

func main() {
	nodes := flag.Int("n", 3, "number of nodes")
	bin := flag.String("bin", "bin", "folder with bluechi-controller and bluechi-agent (make build)")
	flag.Parse()
	if flag.Arg(0) == "stop" {
		os.Exit(stop())
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "localcluster: needs root (each node is a systemd user manager in its own mount namespace and cgroup)")
		os.Exit(1)
	}
	abs, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(filepath.Join(abs, "bluechi-controller"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: no binaries in %s (run make build first): %v\n", *bin, err)
		os.Exit(1)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
	defer os.Remove(pidFile)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	start := time.Now()
	names := cluster.DefaultNames(*nodes)
	c, err := cluster.Start(ctx, cluster.Options{BinDir: abs, Names: names})
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
	defer c.Stop()
	fmt.Printf(`BlueChi cluster with %d nodes is up (%v).

  export DBUS_SESSION_BUS_ADDRESS=%s
  %s/bluechictl -u status
  busctl --user call org.eclipse.bluechi /org/eclipse/bluechi org.eclipse.bluechi.Controller ListNodes
  busctl --user call org.eclipse.bluechi /org/eclipse/bluechi/node/node2 org.eclipse.bluechi.Node StartUnit ss sb-simple.service replace

Nodes: %s (%s hosts the controller; its agent uses the unix socket, the others TCP port %d).
Demo units on every node: sb-simple.service, sb-oneshot.service, sb-failing.service, sb-slow.service.
Logs: %s
Press Ctrl-C (or run: go run ./tools/localcluster stop) to end everything this started.
`, len(names), time.Since(start).Round(time.Millisecond), c.BusAddress, abs, strings.Join(names, ", "), names[0], c.Port, c.Dir)
	<-ctx.Done()
	fmt.Println("stopping")
}

func stop() int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster: no cluster running:", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster: bad pid file:", err)
		return 1
	}
	p, _ := os.FindProcess(pid)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		return 1
	}
	for i := 0; i < 300; i++ {
		if p.Signal(syscall.Signal(0)) != nil {
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "localcluster: cluster did not stop within 15 s")
	return 1
}
