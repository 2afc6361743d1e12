// SPDX-License-Identifier: Apache-2.0

// Command benchcompare measures two revisions side by side: the figures
// issue 13 lists (start -> JobRemoved, CPU per job, agent exec -> online,
// event cost and event storm CPU, idle RSS and RSS after 1000 start/stop
// cycles, ListUnits over 20 nodes, the scale benchmark's memory per node
// and ListNodes latency), each benchmark run in rounds that alternate BASE
// and HEAD (ABBA order), and prints a Markdown table of the medians with
// the targets. It needs root (sandboxed nodes) and no network:
//
//	go run ./tools/benchcompare -base 268c01f [-rounds 3] [-only storm,memory]
//	make bench-compare BASE=268c01f
//
// HEAD is this working tree. BASE is extracted with git archive into a
// temporary folder. Both are built as make build does (static,
// -trimpath). The benchmarks run from test binaries compiled from HEAD:
// those that start the daemons from a folder (cluster.BinDirEnv) get each
// revision's prebuilt binaries, so HEAD's benchmark code measures both;
// the scale benchmark builds its controller from the tree it runs in, so it
// runs from HEAD's test binary inside each revision's package directory.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// revision is one side of the comparison.
type revision struct {
	label string // "BASE" or "HEAD"
	desc  string // commit and subject
	src   string // tree root
	bin   string // built daemons
}

// result is one run of one group for one revision.
type result struct {
	m   metrics
	err error
	dur time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchcompare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", "", "the revision to compare this working tree with (required)")
	rounds := fs.Int("rounds", 3, "rounds; each runs every benchmark once for each revision")
	heavyRounds := fs.Int("heavy-rounds", 2, "at most this many rounds for the long benchmarks (memory, listunits, scale)")
	only := fs.String("only", "", "comma-separated groups to run (default all): "+strings.Join(groupNames(), ","))
	scaleLo := fs.Int("scale-lo", 100, "smaller node count of the scale benchmark's per-node slope")
	scaleHi := fs.Int("scale-hi", 1000, "larger node count of the slope (the issue's is 2000; it costs minutes)")
	keep := fs.Bool("keep", false, "keep the temporary folder (sources, binaries, logs)")
	out := fs.String("o", "", "also write the table to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *base == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "benchcompare: -base REV is required (and no other arguments)")
		fs.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "benchcompare: needs root (the benchmarks run sandboxed systemd nodes)")
		return 1
	}
	sel, err := selectGroups(groups(*scaleLo, *scaleHi), *only)
	if err != nil {
		fmt.Fprintln(stderr, "benchcompare:", err)
		return 2
	}
	c := &comparison{stderr: stderr, procs: runtime.GOMAXPROCS(0)}
	table, err := c.run(*base, sel, *rounds, *heavyRounds, *keep)
	if err != nil {
		fmt.Fprintln(stderr, "benchcompare:", err)
		return 1
	}
	fmt.Fprint(stdout, table)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(table), 0o644); err != nil {
			fmt.Fprintln(stderr, "benchcompare:", err)
			return 1
		}
	}
	return 0
}

func groupNames() []string {
	var n []string
	for _, g := range groups(100, 1000) {
		n = append(n, g.name)
	}
	return n
}

func selectGroups(all []group, only string) ([]group, error) {
	if only == "" {
		return all, nil
	}
	var sel []group
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(g group) bool { return g.name == name })
		if i < 0 {
			return nil, fmt.Errorf("no group %q (have %s)", name, strings.Join(groupNames(), ", "))
		}
		sel = append(sel, all[i])
	}
	return sel, nil
}

// comparison holds one run's folders and progress output.
type comparison struct {
	stderr io.Writer
	procs  int    // GOMAXPROCS of the benchmarks: the suffix of their names
	root   string // HEAD's tree: where the test binaries run with binDir
	tmp    string
	tests  string // HEAD's compiled test binaries
}

func (c *comparison) logf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "%s benchcompare: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (c *comparison) run(baseRev string, sel []group, rounds, heavyRounds int, keep bool) (string, error) {
	root, err := git("", "rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	c.root = root
	baseCommit, err := git(root, "rev-parse", "--verify", baseRev+"^{commit}")
	if err != nil {
		return "", err
	}
	if c.tmp, err = os.MkdirTemp("", "bluechi-benchcompare-"); err != nil {
		return "", err
	}
	if keep {
		c.logf("keeping %s", c.tmp)
	} else {
		defer os.RemoveAll(c.tmp)
	}
	started := time.Now()
	loadStart := loadAvg()
	baseDesc, _ := git(root, "log", "-1", "--format=%h %s", baseCommit)
	headDesc, _ := git(root, "log", "-1", "--format=%h %s", "HEAD")
	if dirty, _ := git(root, "status", "--porcelain", "--untracked-files=no"); dirty != "" {
		headDesc += " (+ uncommitted changes)"
	}
	revs := []*revision{
		{label: "BASE", desc: baseDesc, src: filepath.Join(c.tmp, "base-src"), bin: filepath.Join(c.tmp, "base-bin")},
		{label: "HEAD", desc: headDesc, src: root, bin: filepath.Join(c.tmp, "head-bin")},
	}
	c.logf("extracting %s into %s", baseDesc, revs[0].src)
	if err := extract(root, baseCommit, revs[0].src); err != nil {
		return "", err
	}
	for _, r := range revs {
		c.logf("building %s's daemons", r.label)
		if err := goCmd(r.src, nil, "build", "-trimpath", "-o", r.bin+"/", "./cmd/..."); err != nil {
			return "", fmt.Errorf("%s: %w", r.label, err)
		}
	}
	c.tests = filepath.Join(c.tmp, "tests")
	built := map[string]bool{}
	for _, g := range sel {
		if built[g.pkg] {
			continue
		}
		built[g.pkg] = true
		c.logf("compiling HEAD's tests of %s", g.pkg)
		if err := goCmd(root, nil, "test", "-c", "-o", c.testBinary(g.pkg), "./"+g.pkg); err != nil {
			return "", err
		}
	}
	results := map[string]map[string][]result{} // group, revision label
	for _, g := range sel {
		results[g.name] = map[string][]result{}
	}
	for round := 0; round < rounds; round++ {
		order := []*revision{revs[0], revs[1]}
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, g := range sel {
			if g.heavy && round >= heavyRounds {
				continue
			}
			for _, r := range order {
				res := c.runGroup(g, r, round)
				results[g.name][r.label] = append(results[g.name][r.label], res)
			}
		}
	}
	rep := report{
		base: revs[0].desc, head: revs[1].desc, rounds: rounds, heavyRounds: heavyRounds,
		started: started, took: time.Since(started), loadStart: loadStart, loadEnd: loadAvg(),
	}
	return rep.markdown(sel, results), nil
}

func (c *comparison) testBinary(pkg string) string {
	return filepath.Join(c.tests, strings.ReplaceAll(pkg, "/", "_")+".test")
}

// runGroup runs one group's benchmarks for one revision and reads their
// figures; a failed run keeps what it printed.
func (c *comparison) runGroup(g group, r *revision, round int) result {
	dir := filepath.Join(r.src, g.pkg) // the daemons are built from here when !g.binDir
	env := []string{}
	if g.binDir {
		dir = filepath.Join(c.root, g.pkg)
		env = append(env, "BLUECHI_BIN_DIR="+r.bin)
	}
	logPath := filepath.Join(c.tmp, fmt.Sprintf("%s-%s-%d.log", g.name, r.label, round+1))
	c.logf("round %d: %s for %s (log %s)", round+1, g.name, r.label, logPath)
	t0 := time.Now()
	cmd := exec.Command(c.testBinary(g.pkg), "-test.run", "^$", "-test.bench", g.bench,
		"-test.benchtime", g.benchtime, "-test.timeout", g.timeout, "-test.count", "1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := buf.Bytes()
	// parse reads from its own reader: reading buf would drain it, and the
	// log would be empty.
	res := result{m: parse(bytes.NewReader(out), c.procs), dur: time.Since(t0)}
	if werr := os.WriteFile(logPath, out, 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		res.err = fmt.Errorf("%s %s round %d: %w (see %s)", g.name, r.label, round+1, err, logPath)
		c.logf("%v", res.err)
	}
	c.logf("  took %v", res.dur.Round(time.Second))
	return res
}

// extract writes rev's tree into dir (git archive: no network, no second
// worktree registered in the repository).
func extract(root, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	archive := exec.Command("git", "archive", "--format=tar", rev)
	archive.Dir = root
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	var aerr, terr bytes.Buffer
	archive.Stderr, untar.Stderr = &aerr, &terr
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return fmt.Errorf("git archive %s: %v: %s", rev, err, aerr.String())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, terr.String())
	}
	return nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// goCmd runs the go command in dir as make build does (static binaries).
func goCmd(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return nil
}

// loadAvg reads the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// parse reads benchmark result lines ("BenchmarkX-2  N  V unit  V unit")
// and, as a fallback for benchmarks that failed after measuring, log lines
// "file.go:N: figure V unit" (attributed to the benchmark last named).
func parse(r io.Reader, procs int) metrics {
	m := metrics{}
	logged := metrics{}
	suffix := fmt.Sprintf("-%d", procs)
	name := func(s string) string {
		if procs > 1 {
			s = strings.TrimSuffix(s, suffix)
		}
		return s
	}
	set := func(m metrics, bench, unit string, v float64) {
		if m[bench] == nil {
			m[bench] = map[string]float64{}
		}
		m[bench][unit] = v
	}
	current := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) >= 1 && strings.HasPrefix(f[0], "Benchmark"):
			current = name(f[0])
			// result: name, iterations, then value-unit pairs
			for i := 2; i+1 < len(f); i += 2 {
				var v float64
				if _, err := fmt.Sscan(f[i], &v); err != nil {
					break
				}
				set(m, current, f[i+1], v)
			}
		case len(f) >= 3 && (f[0] == "---") && strings.HasPrefix(f[2], "Benchmark"):
			current = name(f[2]) // --- FAIL: / --- BENCH:
		case len(f) == 4 && f[1] == "figure" && current != "":
			var v float64
			if _, err := fmt.Sscan(f[2], &v); err == nil {
				set(logged, current, f[3], v)
			}
		}
	}
	for bench, units := range logged {
		for unit, v := range units {
			if _, ok := m.get(bench, unit); !ok {
				set(m, bench, unit, v)
			}
		}
	}
	return m
}
