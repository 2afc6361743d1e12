// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// RunPrefix starts the names of every network namespace and folder a test
// run makes, followed by the run's process ID: bcsys-PID.
const RunPrefix = "bcsys-"

// Sweep removes what an earlier test run that was killed before it could
// clean up (its process is gone) left behind: its nodes' processes, overlay
// mounts, folders under tmpDir, cgroups and network namespace.
func Sweep(tmpDir string) {
	dead := func(name string) (string, bool) {
		rest := strings.TrimPrefix(name, RunPrefix)
		pid, _, _ := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if err != nil || n == os.Getpid() {
			return "", false
		}
		return pid, syscall.Kill(n, 0) == syscall.ESRCH
	}
	roots, _ := cgroupRoots()
	for _, r := range roots {
		cgs, _ := filepath.Glob(filepath.Join(r, cgroupPrefix+"-*"))
		for _, cg := range cgs {
			rest := strings.TrimPrefix(filepath.Base(cg), cgroupPrefix+"-")
			if _, ok := dead(RunPrefix + rest); !ok {
				continue
			}
			n := &Node{cgroups: []string{cg}}
			for _, pid := range n.cgroupPIDs() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(tmpDir, RunPrefix+"*"))
	for _, d := range dirs {
		if _, ok := dead(filepath.Base(d)); !ok {
			continue
		}
		for _, m := range mountsUnder(d) {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
		_ = os.RemoveAll(d)
	}
	for _, r := range roots {
		cgs, _ := filepath.Glob(filepath.Join(r, cgroupPrefix+"-*"))
		for _, cg := range cgs {
			rest := strings.TrimPrefix(filepath.Base(cg), cgroupPrefix+"-")
			if _, ok := dead(RunPrefix + rest); ok {
				_ = (&Node{cgroups: []string{cg}}).removeCgroups()
			}
		}
	}
	nss, _ := filepath.Glob("/run/netns/" + RunPrefix + "*")
	for _, ns := range nss {
		if _, ok := dead(filepath.Base(ns)); ok {
			_ = (&Network{Name: filepath.Base(ns)}).Close()
		}
	}
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var ms []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && strings.HasPrefix(fs[4], dir+"/") {
			ms = append([]string{fs[4]}, ms...)
		}
	}
	return ms
}
