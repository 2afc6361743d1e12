// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupPrefix names the folder, under this process's cgroup, that holds
// the nodes' cgroups: systemd-nspawn makes payload/ and supervisor/ under
// the cgroup it starts in, so every node starts from its own.
const cgroupPrefix = "bluechi-sysmode"

// cgroupRoots lists this process's own cgroup folder in the unified
// hierarchy and in the v1 name=systemd one, those that are mounted.
func cgroupRoots() ([]string, error) {
	own := map[string]string{}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		p := strings.SplitN(line, ":", 3)
		if len(p) != 3 {
			continue
		}
		if p[0] == "0" && p[1] == "" {
			own["cgroup2"] = p[2]
		} else if p[1] == "name=systemd" {
			own["name=systemd"] = p[2]
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var roots []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		sep := slices.Index(fs, "-")
		if sep < 5 || sep+3 >= len(fs) {
			continue
		}
		key := ""
		switch {
		case fs[sep+1] == "cgroup2":
			key = "cgroup2"
		case fs[sep+1] == "cgroup" && slices.Contains(strings.Split(fs[sep+3], ","), "name=systemd"):
			key = "name=systemd"
		default:
			continue
		}
		path, ok := own[key]
		if !ok || seen[key] || fs[3] != "/" {
			continue
		}
		seen[key] = true
		roots = append(roots, filepath.Join(fs[4], path))
	}
	if len(roots) == 0 {
		return nil, errors.New("no cgroup2 or name=systemd hierarchy is mounted")
	}
	return roots, nil
}

func (n *Node) makeCgroups() error {
	if n.cgroups != nil {
		return nil
	}
	roots, err := cgroupRoots()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%d-%s", cgroupPrefix, os.Getpid(), n.Name)
	for _, r := range roots {
		d := filepath.Join(r, name)
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("cgroup for %s: %w", n.Name, err)
		}
		n.cgroups = append(n.cgroups, d)
	}
	return nil
}

func (n *Node) procsFiles() []string {
	var fs []string
	for _, d := range n.cgroups {
		fs = append(fs, filepath.Join(d, "cgroup.procs"))
	}
	return fs
}

// cgroupPIDs lists every process in the node's cgroups.
func (n *Node) cgroupPIDs() []int {
	var pids []int
	for _, d := range n.cgroups {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes the node's cgroup folders, deepest first.
func (n *Node) removeCgroups() error {
	var errs []error
	for _, d := range n.cgroups {
		var dirs []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
			}
		}
	}
	n.cgroups = nil
	return errors.Join(errs...)
}
