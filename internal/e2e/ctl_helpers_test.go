// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var updateCtlGolden = flag.Bool("update-ctl-golden", false, "rewrite the bluechictl golden files in testdata/")

// ctlResult is the outcome of one run of a command-line tool.
type ctlResult struct {
	stdout, stderr string
	code           int
}

func (r ctlResult) String() string {
	return "exit " + itoa(r.code) + "\n--- stdout:\n" + r.stdout + "--- stderr:\n" + r.stderr
}

// ctlToolCmd prepares a tool from binDir on the given session bus.
func ctlToolCmd(bus, tool string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, tool), args...)
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+bus, "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent", "GORACE=atexit_sleep_ms=0")
	return cmd
}

func ctlRunTool(t *testing.T, bus, tool string, args ...string) ctlResult {
	t.Helper()
	cmd := ctlToolCmd(bus, tool, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlResult{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return r
}

// ctlEnv runs the tools of a cluster for one (sub)test.
type ctlEnv struct {
	c *cluster
	t *testing.T
}

// in returns the cluster's tool runner for test t.
func (c *cluster) in(t *testing.T) *ctlEnv { return &ctlEnv{c: c, t: t} }

// ctl runs "bluechictl -u ARGS" against the cluster's bus.
func (e *ctlEnv) ctl(args ...string) ctlResult {
	e.t.Helper()
	return ctlRunTool(e.t, e.c.bus.Address, "bluechictl", append([]string{"-u"}, args...)...)
}

// ctlOK runs bluechictl and fails the test unless it exits 0.
func (e *ctlEnv) ctlOK(args ...string) ctlResult {
	e.t.Helper()
	r := e.ctl(args...)
	if r.code != 0 {
		e.t.Fatalf("bluechictl %v: %v", args, r)
	}
	return r
}

// ctlProc is a long-running tool (monitor, status -w, is-online --monitor)
// whose output is collected as it arrives.
type ctlProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	errb strings.Builder
	more chan struct{}
	done chan struct{}
	code int
}

func ctlStartProc(t *testing.T, cmd *exec.Cmd) *ctlProc {
	t.Helper()
	b := &ctlProc{t: t, cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = ctlWriterFunc(func(p []byte) (int, error) {
		b.mu.Lock()
		b.errb.Write(p)
		b.mu.Unlock()
		b.poke()
		return len(p), nil
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r := bufio.NewReader(stdout)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				b.mu.Lock()
				b.out.Write(buf[:n])
				b.mu.Unlock()
				b.poke()
			}
			if err != nil {
				break
			}
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			b.code = exit.ExitCode()
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				b.code = 128 + int(ws.Signal())
			}
		}
		close(b.done)
		b.poke()
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

type ctlWriterFunc func([]byte) (int, error)

func (f ctlWriterFunc) Write(p []byte) (int, error) { return f(p) }

func (b *ctlProc) poke() {
	select {
	case b.more <- struct{}{}:
	default:
	}
}

// output returns stdout so far.
func (b *ctlProc) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func (b *ctlProc) stderr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errb.String()
}

// waitFor waits until cond holds for stdout so far.
func (b *ctlProc) waitFor(what string, cond func(out string) bool) string {
	b.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		out := b.output()
		if cond(out) {
			return out
		}
		select {
		case <-b.more:
		case <-b.done:
			if out := b.output(); cond(out) {
				return out
			}
			b.t.Fatalf("%s: exited (%d) before %s; stdout:\n%s\nstderr:\n%s", b.cmd.Path, b.code, what, b.output(), b.stderr())
		case <-deadline:
			b.t.Fatalf("%s: timed out waiting for %s; stdout:\n%s\nstderr:\n%s", b.cmd.Path, what, b.output(), b.stderr())
		}
	}
}

// waitContains waits until stdout contains s, from offset from on.
func (b *ctlProc) waitContains(s string, from int) string {
	b.t.Helper()
	return b.waitFor(strings.TrimSpace(s), func(out string) bool { return len(out) >= from && strings.Contains(out[from:], s) })
}

// wait waits for the process to exit and returns its exit code.
func (b *ctlProc) wait(timeout time.Duration) int {
	b.t.Helper()
	select {
	case <-b.done:
		return b.code
	case <-time.After(timeout):
		b.t.Fatalf("%s still running after %v; stdout:\n%s\nstderr:\n%s", b.cmd.Path, timeout, b.output(), b.stderr())
		return -1
	}
}

// running reports whether the process has not exited yet.
func (b *ctlProc) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// interrupt sends SIGINT and returns the exit code.
func (b *ctlProc) interrupt() int {
	b.t.Helper()
	b.cmd.Process.Signal(os.Interrupt)
	return b.wait(10 * time.Second)
}

// golden compares got with testdata/<name>, or rewrites the file with
// -update-ctl-golden.
func ctlGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *updateCtlGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("golden file %s: %v (run go test ./internal/e2e -run %s -update-ctl-golden)", file, err, t.Name())
	}
	if string(want) != got {
		t.Errorf("output differs from %s\n--- got:\n%s--- want:\n%s", file, got, want)
	}
}

// ctlBarTable checks the layout of a bar-separated table (every line equally
// long, the bars at the same columns, the rule as wide as the lines) and
// returns it with cell padding removed, so that goldens do not depend on
// units the host's systemd adds to the nodes.
func ctlBarTable(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("no table: %q", out)
	}
	width := len(lines[0])
	bars := ctlBarColumns(lines[0])
	if lines[1] != strings.Repeat("=", width) {
		t.Errorf("rule %q does not span the header %q", lines[1], lines[0])
	}
	var b strings.Builder
	for i, l := range lines {
		if i == 1 {
			b.WriteString("=\n")
			continue
		}
		if len(l) != width || !ctlEqualInts(ctlBarColumns(l), bars) {
			t.Errorf("misaligned line %q (header %q)", l, lines[0])
		}
		cells := strings.Split(l, " | ")
		for j := range cells {
			cells[j] = strings.TrimRight(cells[j], " ")
		}
		b.WriteString(strings.Join(cells, " | ") + "\n")
	}
	return b.String()
}

func ctlBarColumns(l string) []int {
	var cols []int
	for i := 0; i+3 <= len(l); i++ {
		if l[i:i+3] == " | " {
			cols = append(cols, i)
		}
	}
	return cols
}

func ctlEqualInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var (
	ctlReTimestamp = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}`)
	ctlReJobPath   = regexp.MustCompile(`/org/eclipse/bluechi/job/\d+`)
	ctlReMonitor   = regexp.MustCompile(`/org/eclipse/bluechi/monitor/\d+`)
)

// ctlNormalizeNodes normalises a node status table: the IP column (which
// depends on how the agents reach the controller) and the time stamps.
func ctlNormalizeNodes(table string) string {
	lines := strings.Split(ctlNormalize(table), "\n")
	for i, l := range lines {
		// Columns: NODE 0-29, "| ", STATE 32-41, "| ", IP 44-67, "| ", LAST SEEN.
		if i >= 2 && len(l) >= 68 && strings.TrimSpace(l[44:68]) != "" {
			lines[i] = l[:44] + "<ip>" + strings.Repeat(" ", 20) + l[68:]
		}
	}
	return strings.Join(lines, "\n")
}

// ctlNormalize replaces time stamps and object ids by fixed text of the same length.
func ctlNormalize(s string) string {
	s = ctlReTimestamp.ReplaceAllString(s, "YYYY-MM-DD hh:mm:ss,mmm+zzzz")
	s = ctlReJobPath.ReplaceAllString(s, "/org/eclipse/bluechi/job/N")
	return ctlReMonitor.ReplaceAllString(s, "/org/eclipse/bluechi/monitor/N")
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }
