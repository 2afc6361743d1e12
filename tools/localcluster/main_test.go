// SPDX-License-Identifier: Apache-2.0
package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles the daemons and this tool into a temporary folder.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/bluechi-go/bluechi/cmd/...", "github.com/bluechi-go/bluechi/tools/localcluster").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestStopWithStdoutClosed is `make run | tee log` ended by Ctrl-C, which
// ends tee as well: the cluster's stdout is a pipe nobody reads any more
// when it is stopped. Stopping must still end every process, cgroup and
// temporary folder it made.
func TestStopWithStdoutClosed(t *testing.T) {
	bin := build(t)
	pidFile := filepath.Join(t.TempDir(), "localcluster.pid")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "localcluster"), "-n", "2", "-bin", bin, "-pidfile", pidFile)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Read the banner up to its last line, then close the pipe.
	var logs string
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				return
			}
		}
	}()
	timeout := time.After(3 * time.Minute)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			if d, found := strings.CutPrefix(l, "Logs: "); found {
				logs = d
			}
		case <-timeout:
			t.Fatal("no banner within 3 minutes")
		case <-exited:
			t.Fatalf("localcluster exited early: %v\n%s", cmd.ProcessState, stderr.String())
		}
	}
	r.Close()
	if logs == "" {
		t.Fatal("the banner names no log folder")
	}
	pid := cmd.Process.Pid
	if fi, err := os.Stat(logs); err != nil || !fi.IsDir() {
		t.Fatalf("log folder %s: %v", logs, err)
	}
	if procs := processesUsing(bin); len(procs) < 3 {
		t.Fatalf("want the controller and agents running from %s, found %v", bin, procs)
	}

	stop := exec.Command(filepath.Join(bin, "localcluster"), "-pidfile", pidFile, "stop")
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("localcluster stop: %v\n%s", err, out)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("localcluster still running after stop returned")
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("localcluster ended with %v; stderr:\n%s", cmd.ProcessState, stderr.String())
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if _, err := os.Stat(logs); !os.IsNotExist(err) {
		t.Errorf("cluster folder %s left behind: %v", logs, err)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("bcsb-%d-*", pid))); len(left) > 0 {
		t.Errorf("sandbox folders left behind: %v", left)
	}
	if procs := processesUsing(bin); len(procs) > 0 {
		t.Errorf("processes left behind: %v", procs)
	}
	if cgs := cgroupsOf(pid); len(cgs) > 0 {
		t.Errorf("cgroups left behind: %v", cgs)
	}
}

// TestStopVerifiesThePid: stop never signals a process that merely has the
// PID the pid file names.
func TestStopVerifiesThePid(t *testing.T) {
	bin := build(t)
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	id, err := processIdentity(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "localcluster.pid")
	for _, content := range []string{
		fmt.Sprintf("%d\n", id.pid),                                   // the old format: nothing to verify with
		fmt.Sprintf("%d %s /usr/bin/other\n", id.pid, id.startTime),   // another executable
		fmt.Sprintf("%d 1 %s\n", id.pid, id.exe),                      // an earlier process with that PID
		fmt.Sprintf("%d %s %s x\n", id.pid, id.startTime+"0", id.exe), // garbage
	} {
		if err := os.WriteFile(pidFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(bin, "localcluster"), "-pidfile", pidFile, "stop").CombinedOutput()
		if err == nil {
			t.Errorf("stop with pid file %q succeeded: %s", content, out)
		}
		if cur, err := processIdentity(sleeper.Process.Pid); err != nil || cur != id {
			t.Fatalf("stop with pid file %q signalled the unrelated process: %v", content, err)
		}
	}
}

// processesUsing lists the processes whose executable is in dir.
func processesUsing(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+"/") && !strings.HasSuffix(exe, "/localcluster") {
			out = append(out, e.Name()+" "+exe)
		}
	}
	return out
}

// cgroupsOf lists the node cgroups a sandbox creator with this pid made
// (named "...-<pid>-<random>") in any mounted hierarchy.
func cgroupsOf(pid int) []string {
	var out []string
	mark := fmt.Sprintf("-%d-", pid)
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Contains(d.Name(), mark) && filepath.Base(filepath.Dir(path)) == "bluechi-sandbox" {
			out = append(out, path)
			return fs.SkipDir
		}
		return nil
	})
	return out
}
