// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupParent is the folder, under the calling process's own cgroup in each
// hierarchy, that holds one cgroup per node.
const cgroupParent = "bluechi-sandbox"

// hierarchy is one mounted cgroup hierarchy that matters for process
// tracking: the unified (v2) hierarchy and the v1 name=systemd hierarchy.
type hierarchy struct {
	mount string // where it is mounted, e.g. /sys/fs/cgroup/unified
	own   string // the calling process's cgroup in it, as a path below mount
	v2    bool
}

// parent is the folder holding the nodes' cgroups in this hierarchy.
func (h hierarchy) parent() string {
	return filepath.Join(h.mount, h.own, cgroupParent)
}

// findHierarchies reads /proc/self/mountinfo and /proc/self/cgroup.
func findHierarchies() ([]hierarchy, error) {
	own := map[string]string{} // "" for v2, "name=systemd" for the named v1 one
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			own[""] = parts[2]
		case parts[1] == "name=systemd":
			own["name=systemd"] = parts[2]
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		root, mnt, fstype, super := fields[3], unescapeMount(fields[4]), fields[sep+1], fields[sep+3]
		var key string
		switch {
		case fstype == "cgroup2":
			key = ""
		case fstype == "cgroup" && hasOpt(super, "name=systemd"):
			key = "name=systemd"
		default:
			continue
		}
		path, ok := own[key]
		if !ok || seen[key] {
			continue
		}
		// A mount of a sub-tree (cgroup namespace or bind mount): make the
		// own path relative to the mounted root.
		if root != "/" {
			rel, err := filepath.Rel(root, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			path = "/" + rel
		}
		seen[key] = true
		hs = append(hs, hierarchy{mount: mnt, own: path, v2: key == ""})
	}
	if len(hs) == 0 {
		return nil, errors.New("no cgroup2 or name=systemd cgroup hierarchy is mounted")
	}
	return hs, nil
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// nodeCgroup is the set of per-hierarchy folders of one node.
type nodeCgroup struct {
	dirs []string // one per hierarchy, same relative name
	v2   string   // the v2 one, or ""
}

const (
	cgManager = "manager" // the node's systemd and everything it starts
	cgExec    = "exec"    // processes started with Node.Command
)

// createCgroup makes <parent>/<name>/{manager,exec} in every hierarchy.
func createCgroup(hs []hierarchy, name string) (*nodeCgroup, error) {
	cg := &nodeCgroup{}
	for _, h := range hs {
		dir := filepath.Join(h.parent(), name)
		for _, sub := range []string{cgManager, cgExec} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				cg.remove()
				return nil, fmt.Errorf("create cgroup: %w", err)
			}
		}
		cg.dirs = append(cg.dirs, dir)
		if h.v2 {
			cg.v2 = dir
		}
	}
	return cg, nil
}

// procsFiles lists the cgroup.procs files a process writes its PID into to
// join the sub-cgroup sub in every hierarchy.
func (cg *nodeCgroup) procsFiles(sub string) []string {
	var fs []string
	for _, d := range cg.dirs {
		fs = append(fs, filepath.Join(d, sub, "cgroup.procs"))
	}
	return fs
}

// pids lists every process in the node's cgroup tree.
func (cg *nodeCgroup) pids() []int {
	set := map[int]bool{}
	for _, d := range cg.dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					set[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// kill sends SIGKILL to every process of the node and waits (polling with a
// deadline) until the cgroups are empty.
func (cg *nodeCgroup) kill(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if cg.v2 != "" {
		// cgroup.kill (Linux 5.14) kills the whole tree atomically, also
		// processes forked while we look.
		_ = os.WriteFile(filepath.Join(cg.v2, "cgroup.kill"), []byte("1"), 0)
	}
	for {
		pids := cg.pids()
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in cgroup after %v", pids, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remove deletes the node's cgroup folders, deepest first.
func (cg *nodeCgroup) remove() error {
	var errs []error
	for _, d := range cg.dirs {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree removes a cgroup folder and every cgroup below it. A cgroup
// folder holds only kernel files, which rmdir removes with it.
func removeTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdirRetry(dirs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry removes an empty cgroup; right after its last process died the
// kernel may still report it busy for a moment.
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sweepStale kills and removes node cgroups left behind by test processes
// that died without stopping their nodes (a crashed or timed-out test
// binary). Cgroup names end in "-<creator pid>-<random>"; cgroups of live
// creators are left alone.
func sweepStale(hs []hierarchy) {
	for _, h := range hs {
		entries, err := os.ReadDir(h.parent())
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			parts := strings.Split(e.Name(), "-")
			if len(parts) < 3 {
				continue
			}
			pid, err := strconv.Atoi(parts[len(parts)-2])
			if err != nil || pid <= 0 || processAlive(pid) {
				continue
			}
			var cg nodeCgroup
			for _, h2 := range hs {
				d := filepath.Join(h2.parent(), e.Name())
				cg.dirs = append(cg.dirs, d)
				if h2.v2 {
					cg.v2 = d
				}
			}
			_ = cg.kill(5 * time.Second)
			_ = cg.remove()
		}
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
