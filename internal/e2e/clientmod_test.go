// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// TestClientModule builds testdata/clientmod, a module of its own that uses
// the generated client through a replace directive and no internal
// package, offline from the module cache, and runs it against a real
// cluster: it lists the nodes, starts a unit and waits for its JobRemoved,
// sees a node go offline through the typed PropertiesChanged when the test
// kills its agent, and gets org.eclipse.bluechi.Offline (matched with
// errors.Is on bluechi.ErrOffline) from a call to that node.
func TestClientModule(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "clientmod")
	buildOffline(t, filepath.Join("..", "..", "testdata", "clientmod"), bin)

	c := newCluster(t, "a", "b")
	agents := c.startOnline("a", "b")
	cmd := exec.Command(bin, "-bus", c.bus.Address, "-node", "a", "-unit", sandbox.SimpleServiceName, "-victim", "b")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(cmd) })
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got, ok := <-lines:
			if !ok {
				t.Fatalf("clientmod ended before %q: %v\n%s", want, cmd.Wait(), stderr.String())
			}
			if got != want {
				t.Fatalf("clientmod printed %q, want %q\n%s", got, want, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("clientmod did not print %q\n%s", want, stderr.String())
		}
	}
	expect("nodes a=online,b=online")
	expect("job a " + sandbox.SimpleServiceName + " done")
	expect("watching b")
	if err := agents["b"].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	expect("offline b")
	expect("error " + bluechi.ErrorNameOffline)
	if _, ok := <-lines; ok {
		t.Fatal("clientmod printed more than expected")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clientmod: %v\n%s", err, stderr.String())
	}
}

// buildOffline builds the module in dir into bin from the module cache only.
func buildOffline(t *testing.T, dir, bin string) {
	t.Helper()
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s offline: %v\n%s", dir, err, out)
	}
}

// TestReadmeClientCompiles builds the program of the README's "Using the
// generated layer" in a module of its own, so the README keeps showing code
// that other modules can compile.
func TestReadmeClientCompiles(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Using the generated layer")
	_, code, ok2 := strings.Cut(section, "```go\n")
	code, _, ok3 := strings.Cut(code, "```")
	if !ok || !ok2 || !ok3 || !strings.HasPrefix(code, "package main") {
		t.Fatal("README: no program in the section Using the generated layer")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile("../../testdata/clientmod/go.sum")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mod := fmt.Sprintf("module example.com/readme\n\ngo 1.26\n\nrequire github.com/bluechi-go/bluechi v0.0.0\n\nreplace github.com/bluechi-go/bluechi => %s\n", root)
	for name, data := range map[string]string{"main.go": code, "go.mod": mod, "go.sum": string(sum)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buildOffline(t, dir, filepath.Join(dir, "readme"))
}

// TestExplicitProperties checks the real controller leaves the properties
// the IDL marks org.eclipse.bluechi.Explicit out of GetAll, as upstream, and
// still answers Get for each.
func TestExplicitProperties(t *testing.T) {
	c := newCluster(t, "a")
	c.startOnline("a")
	ctx := context.Background()
	for _, tc := range []struct {
		path     dbus.ObjectPath
		iface    string
		explicit []string
		listed   []string
	}{
		{bluechi.NodePath("a"), bluechi.NodeInterface,
			[]string{bluechi.NodePropertyPeerIP, bluechi.NodePropertyLastSeenTimestamp, bluechi.NodePropertyLastSeenTimestampMonotonic},
			[]string{bluechi.NodePropertyName, bluechi.NodePropertyStatus}},
		{bluechi.ControllerPath, bluechi.ControllerInterface,
			[]string{bluechi.ControllerPropertyLogLevel},
			[]string{bluechi.ControllerPropertyStatus, bluechi.ControllerPropertyLogTarget}},
	} {
		obj := c.client.Object(bluechi.ControllerBusName, tc.path)
		var all map[string]dbus.Variant
		if err := obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, tc.iface).Store(&all); err != nil {
			t.Fatal(err)
		}
		for _, p := range tc.listed {
			if _, ok := all[p]; !ok {
				t.Errorf("GetAll(%s) lacks %s", tc.iface, p)
			}
		}
		for _, p := range tc.explicit {
			if _, ok := all[p]; ok {
				t.Errorf("GetAll(%s) returns explicit %s", tc.iface, p)
			}
			if _, err := obj.GetProperty(tc.iface + "." + p); err != nil {
				t.Errorf("Get %s.%s: %v", tc.iface, p, err)
			}
		}
	}
	if ip, err := c.node("a").GetPeerIP(ctx); err != nil || ip == "" {
		t.Errorf("GetPeerIP of online a: %q %v", ip, err)
	}
}
