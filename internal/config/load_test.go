// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// env is an injectable environment for tests.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// testLayout is a temporary directory with the layer files of one daemon.
type testLayout struct {
	dir string
	loc Locations
}

func newLayout(t *testing.T) *testLayout {
	t.Helper()
	dir := t.TempDir()
	return &testLayout{dir: dir, loc: Locations{
		Distribution: filepath.Join(dir, "share", "daemon.conf"),
		Admin:        filepath.Join(dir, "etc", "daemon.conf"),
		DropInDir:    filepath.Join(dir, "etc", "daemon.conf.d"),
	}}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (l *testLayout) dropIn(t *testing.T, name, content string) string {
	t.Helper()
	return writeFile(t, filepath.Join(l.loc.DropInDir, name), content)
}

func (l *testLayout) opts(e env) Options {
	return Options{
		Locations: l.loc,
		Getenv:    e.get,
		Hostname:  func() (string, error) { return "testhost", nil },
	}
}

func TestUpstreamLocations(t *testing.T) {
	if diff := cmp.Diff(Locations{
		Distribution: "/usr/share/bluechi/config/controller.conf",
		Admin:        "/etc/bluechi/controller.conf",
		DropInDir:    "/etc/bluechi/controller.conf.d",
	}, ControllerLocations()); diff != "" {
		t.Errorf("controller locations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Locations{
		Distribution: "/usr/share/bluechi-agent/config/agent.conf",
		Admin:        "/etc/bluechi/agent.conf",
		DropInDir:    "/etc/bluechi/agent.conf.d",
	}, AgentLocations()); diff != "" {
		t.Errorf("agent locations (-want +got):\n%s", diff)
	}
}

func TestControllerDefaults(t *testing.T) {
	l := newLayout(t) // no files at all: missing distribution file tolerated
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &Controller{
		Port:                   842,
		UseTCP:                 true,
		UseUDS:                 true,
		HeartbeatInterval:      1000,
		NodeHeartbeatThreshold: 2500,
		RegistrationTimeout:    10000,
		MaxUnregisteredPeers:   64,
		Log:                    Logging{Level: "INFO", Target: "journald", IsQuiet: false},
		IPReceiveErrors:        true,
		KeepAlive:              KeepAlive{Time: 1, Interval: 1, Count: 6},
	}
	if diff := cmp.Diff(want, c, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Settings"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestAgentDefaults(t *testing.T) {
	l := newLayout(t)
	a, err := LoadAgent(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &Agent{
		NodeName:                       "testhost",
		ControllerHost:                 "127.0.0.1",
		ControllerPort:                 842,
		ControllerAddress:              "",
		HeartbeatInterval:              1000,
		ControllerHeartbeatThreshold:   2500,
		ConnectionRetryCountUntilQuiet: 10,
		Log:                            Logging{Level: "INFO", Target: "journald", IsQuiet: false},
		IPReceiveErrors:                true,
		KeepAlive:                      KeepAlive{Time: 1, Interval: 1, Count: 6},
	}
	if diff := cmp.Diff(want, a, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Settings"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
	if err := a.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestAgentHostnameFailure(t *testing.T) {
	l := newLayout(t)
	o := l.opts(nil)
	o.Hostname = func() (string, error) { return "", errors.New("boom") }
	a, err := LoadAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	if a.NodeName != "" {
		t.Errorf("NodeName = %q, want empty", a.NodeName)
	}
	if err := a.Check(); !errors.Is(err, ErrNoAgentName) || err.Error() != "No agent name specified" {
		t.Errorf("Check = %v, want ErrNoAgentName", err)
	}
}

// TestLayerPrecedence checks every layer against the next one.
func TestLayerPrecedence(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Distribution, `[bluechi-agent]
NodeName=dist
ControllerHost=dist
HeartbeatInterval=1
ControllerHeartbeatThreshold=1
ConnectionRetryCountUntilQuiet=1
TCPKeepAliveCount=1
`)
	writeFile(t, l.loc.Admin, `[bluechi-agent]
ControllerHost=admin
HeartbeatInterval=2
ControllerHeartbeatThreshold=2
ConnectionRetryCountUntilQuiet=2
`)
	l.dropIn(t, "10-first.conf", `[bluechi-agent]
HeartbeatInterval=3
ControllerHeartbeatThreshold=3
LogLevel=ERROR
LogTarget=stderr
`)
	l.dropIn(t, "20-second.conf", `[bluechi-agent]
ControllerHeartbeatThreshold=4
LogLevel=WARN
`)
	cfile := writeFile(t, filepath.Join(l.dir, "cmdline.conf"), `[bluechi-agent]
LogTarget=stderr-full
`)
	o := l.opts(env{"BC_LOG_LEVEL": "DEBUG", "BC_LOG_TARGET": "journald", "BC_LOG_IS_QUIET": "yes"})
	o.ConfigFile = cfile
	a, err := LoadAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"NodeName from distribution", a.NodeName, "dist"},
		{"ControllerHost from admin", a.ControllerHost, "admin"},
		{"ConnectionRetryCountUntilQuiet from admin", a.ConnectionRetryCountUntilQuiet, int64(2)},
		{"HeartbeatInterval from first drop-in", a.HeartbeatInterval, int64(3)},
		{"ControllerHeartbeatThreshold from last drop-in", a.ControllerHeartbeatThreshold, int64(4)},
		{"TCPKeepAliveCount from distribution", a.KeepAlive.Count, int64(1)},
		{"LogLevel: env beats drop-ins", a.Log.Level, "DEBUG"},
		{"LogTarget: -c beats env", a.Log.Target, "stderr-full"},
		{"LogIsQuiet from env", a.Log.IsQuiet, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// Sources are tracked.
	if v, _ := a.Settings.Lookup(SectionAgent, KeyHeartbeatInterval); v.Source.String() != filepath.Join(l.loc.DropInDir, "10-first.conf")+":2" {
		t.Errorf("HeartbeatInterval source = %q", v.Source)
	}
	if v, _ := a.Settings.Lookup(SectionAgent, KeyLogLevel); v.Source.String() != "environment variable BC_LOG_LEVEL" {
		t.Errorf("LogLevel source = %q", v.Source)
	}
	if v, _ := a.Settings.Lookup(SectionAgent, KeyControllerPort); v.Source.String() != OriginDefault {
		t.Errorf("ControllerPort source = %q", v.Source)
	}
}

func TestEnvironment(t *testing.T) {
	tests := []struct {
		name   string
		env    env
		cfile  string
		want   Logging
		noMain bool
	}{
		{
			name: "all three variables",
			env:  env{"BC_LOG_LEVEL": "WARN", "BC_LOG_TARGET": "STDERR", "BC_LOG_IS_QUIET": "true"},
			want: Logging{Level: "WARN", Target: "stderr", IsQuiet: true},
		},
		{
			name: "empty values ignored",
			env:  env{"BC_LOG_LEVEL": "", "BC_LOG_TARGET": "", "BC_LOG_IS_QUIET": ""},
			want: Logging{Level: "ERROR", Target: "stderr-full", IsQuiet: true},
		},
		{
			name: "invalid level from env replaces file value and is ignored",
			env:  env{"BC_LOG_LEVEL": "verbose"},
			want: Logging{Level: "INFO", Target: "stderr-full", IsQuiet: true},
		},
		{
			name:  "-c beats environment",
			env:   env{"BC_LOG_LEVEL": "DEBUG", "BC_LOG_IS_QUIET": "no"},
			cfile: "[bluechi-controller]\nLogLevel=WARN\n",
			want:  Logging{Level: "WARN", Target: "stderr-full", IsQuiet: false},
		},
		{
			name:  "-c empty value unsets environment value",
			env:   env{"BC_LOG_LEVEL": "DEBUG"},
			cfile: "[bluechi-controller]\nLogLevel=\n",
			want:  Logging{Level: "INFO", Target: "stderr-full", IsQuiet: true},
		},
		{
			name: "other variables ignored",
			env:  env{"BC_CONTROLLER_PORT": "1", "LOG_LEVEL": "DEBUG"},
			want: Logging{Level: "ERROR", Target: "stderr-full", IsQuiet: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLayout(t)
			writeFile(t, l.loc.Admin, "[bluechi-controller]\nLogLevel=ERROR\nLogTarget=stderr-full\nLogIsQuiet=on\n[node n]\nLogLevel=x\n")
			o := l.opts(tt.env)
			if tt.cfile != "" {
				o.ConfigFile = writeFile(t, filepath.Join(l.dir, "c.conf"), tt.cfile)
			}
			c, err := LoadController(o)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Log); diff != "" {
				t.Errorf("logging mismatch (-want +got):\n%s", diff)
			}
			// Environment only touches the main section.
			if got := c.Settings.Get("node n", KeyLogLevel); got != "x" {
				t.Errorf("[node n] LogLevel = %q, want x", got)
			}
		})
	}
}

func TestEnvironmentDefaultsToOS(t *testing.T) {
	t.Setenv("BC_LOG_LEVEL", "DEBUG")
	l := newLayout(t)
	c, err := LoadController(Options{Locations: l.loc})
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "DEBUG" {
		t.Errorf("LogLevel = %q, want DEBUG from the process environment", c.Log.Level)
	}
}

func TestDropInOrder(t *testing.T) {
	l := newLayout(t)
	// Byte-wise order: "10-a" < "2-b" < "B" < "a" < "b".
	l.dropIn(t, "b.conf", "[bluechi-controller]\nAllowedNodeNames=b\n")
	l.dropIn(t, "a.conf", "[bluechi-controller]\nAllowedNodeNames=a\nHeartbeatInterval=5\n")
	l.dropIn(t, "B.conf", "[bluechi-controller]\nHeartbeatInterval=4\nNodeHeartbeatThreshold=4\n")
	l.dropIn(t, "2-b.conf", "[bluechi-controller]\nNodeHeartbeatThreshold=2\nTCPKeepAliveTime=2\nUseTCP=false\n")
	l.dropIn(t, "10-a.conf", "[bluechi-controller]\nTCPKeepAliveTime=10\nTCPKeepAliveInterval=10\nUseTCP=true\n")
	// Ignored: wrong suffix, directories named *.conf, backup files.
	l.dropIn(t, "z.conf.bak", "broken line\n")
	l.dropIn(t, "README", "broken line\n")
	if err := os.MkdirAll(filepath.Join(l.loc.DropInDir, "zz.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A symlink to a regular file is read.
	target := writeFile(t, filepath.Join(l.dir, "elsewhere.conf"), "[bluechi-controller]\nTCPKeepAliveCount=9\n")
	if err := os.Symlink(target, filepath.Join(l.loc.DropInDir, "c.conf")); err != nil {
		t.Fatal(err)
	}

	files, err := DropIns(l.loc.DropInDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if diff := cmp.Diff([]string{"10-a.conf", "2-b.conf", "B.conf", "a.conf", "b.conf", "c.conf"}, names); diff != "" {
		t.Errorf("drop-in order (-want +got):\n%s", diff)
	}

	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.AllowedNodeNames, c.HeartbeatInterval, c.NodeHeartbeatThreshold, c.KeepAlive, c.UseTCP}
	want := []any{[]string{"b"}, int64(5), int64(4), KeepAlive{Time: 2, Interval: 10, Count: 9}, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged values (-want +got):\n%s", diff)
	}
}

func TestMissingFiles(t *testing.T) {
	l := newLayout(t)
	// Nothing exists: distribution, admin and drop-in dir are all optional.
	if _, err := LoadController(l.opts(nil)); err != nil {
		t.Fatalf("missing optional layers: %v", err)
	}
	// Empty locations skip the layers.
	if _, err := LoadController(Options{Getenv: env{}.get}); err != nil {
		t.Fatalf("empty locations: %v", err)
	}
	// A missing -c file is fatal.
	o := l.opts(nil)
	o.ConfigFile = filepath.Join(l.dir, "nope.conf")
	_, err := LoadController(o)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing -c file: err = %v, want ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), o.ConfigFile) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestDropInDirectoryErrors(t *testing.T) {
	t.Run("drop-in path is a file", func(t *testing.T) {
		l := newLayout(t)
		writeFile(t, l.loc.DropInDir, "x")
		if _, err := LoadController(l.opts(nil)); err == nil {
			t.Error("expected error")
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		l := newLayout(t)
		if err := os.MkdirAll(l.loc.DropInDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(l.dir, "gone"), filepath.Join(l.loc.DropInDir, "x.conf")); err != nil {
			t.Fatal(err)
		}
		_, err := LoadController(l.opts(nil))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want ErrNotExist", err)
		}
	})
}

func TestParseErrorsAreFatalInEveryLayer(t *testing.T) {
	bad := "[bluechi-controller]\nLogLevel=DEBUG\nthis line is broken\n"
	tests := []struct {
		name  string
		setup func(t *testing.T, l *testLayout, o *Options) string // returns the broken file
	}{
		{"distribution", func(t *testing.T, l *testLayout, o *Options) string {
			return writeFile(t, l.loc.Distribution, bad)
		}},
		{"admin", func(t *testing.T, l *testLayout, o *Options) string {
			return writeFile(t, l.loc.Admin, bad)
		}},
		{"first of several drop-ins", func(t *testing.T, l *testLayout, o *Options) string {
			p := l.dropIn(t, "10-bad.conf", bad)
			l.dropIn(t, "20-good.conf", "[bluechi-controller]\nLogLevel=INFO\n")
			return p
		}},
		{"last drop-in", func(t *testing.T, l *testLayout, o *Options) string {
			l.dropIn(t, "10-good.conf", "[bluechi-controller]\nLogLevel=INFO\n")
			return l.dropIn(t, "20-bad.conf", bad)
		}},
		{"-c file", func(t *testing.T, l *testLayout, o *Options) string {
			o.ConfigFile = writeFile(t, filepath.Join(l.dir, "c.conf"), bad)
			return o.ConfigFile
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLayout(t)
			o := l.opts(nil)
			file := tt.setup(t, l, &o)
			_, err := LoadController(o)
			want := file + ":3: missing '=' or ':'"
			if err == nil || err.Error() != want {
				t.Errorf("err = %v, want %q", err, want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != file || pe.Line != 3 {
				t.Errorf("err = %#v, want *ParseError for %s:3", err, file)
			}
		})
	}
}

func TestOverlongLineIsFatal(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nAllowedNodeNames="+strings.Repeat("n,", 300)+"\n")
	_, err := LoadController(l.opts(nil))
	want := l.loc.Admin + ":2: line too long (more than 519 bytes including newline)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestEmptyValueUnsetsDefault(t *testing.T) {
	l := newLayout(t)
	l.dropIn(t, "empty.conf", `[bluechi-agent]
NodeName=
ControllerHost=
ControllerPort=
ControllerAddress=
HeartbeatInterval=
ControllerHeartbeatThreshold=
ConnectionRetryCountUntilQuiet=
LogLevel=
LogTarget=
LogIsQuiet=
IPReceiveErrors=
TCPKeepAliveTime=
TCPKeepAliveInterval=
TCPKeepAliveCount=
`)
	a, err := LoadAgent(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &Agent{Log: Logging{Level: "INFO", Target: "journald"}}
	if diff := cmp.Diff(want, a, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Settings"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("unset values mismatch (-want +got):\n%s", diff)
	}
	if err := a.Check(); !errors.Is(err, ErrNoAgentName) {
		t.Errorf("Check = %v, want ErrNoAgentName", err)
	}
	a.SetName("n")
	if err := a.Check(); !errors.Is(err, ErrNoControllerHost) || err.Error() != "No controller host specified" {
		t.Errorf("Check = %v, want ErrNoControllerHost", err)
	}
	a.SetAddress("unix:path=/run/bluechi/bluechi.sock")
	if err := a.Check(); err != nil {
		t.Errorf("Check with address = %v", err)
	}

	// Controller: an empty ControllerPort leaves port 0, empty booleans false.
	l2 := newLayout(t)
	writeFile(t, l2.loc.Admin, "[bluechi-controller]\nControllerPort=\nUseTCP=\nNodeHeartbeatThreshold=\n")
	c, err := LoadController(l2.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 0 || c.UseTCP || !c.UseUDS || c.NodeHeartbeatThreshold != 0 {
		t.Errorf("got port %d UseTCP %v UseUDS %v threshold %d", c.Port, c.UseTCP, c.UseUDS, c.NodeHeartbeatThreshold)
	}
}

func TestLaterFileRestoresUnsetKey(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-agent]\nControllerHost=\n")
	l.dropIn(t, "x.conf", "[bluechi-agent]\nControllerHost=10.0.0.1\n")
	a, err := LoadAgent(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.ControllerHost != "10.0.0.1" {
		t.Errorf("ControllerHost = %q", a.ControllerHost)
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		daemon string // "controller" or "agent"
		line   string
		want   string // after "FILE:LINE: "
	}{
		{"controller", "ControllerPort=542O", `invalid ControllerPort "542O": not a number`},
		{"controller", "ControllerPort=65538", `invalid ControllerPort "65538": out of range (0..65535)`},
		{"controller", "ControllerPort=-1", `invalid ControllerPort "-1": out of range (0..65535)`},
		{"controller", "ControllerPort=99999999999999999999", `invalid ControllerPort "99999999999999999999": out of range (0..65535)`},
		{"controller", "ControllerPort=0x10", `invalid ControllerPort "0x10": not a number`},
		{"controller", "HeartbeatInterval=abc", `invalid HeartbeatInterval "abc": not a number`},
		{"controller", "HeartbeatInterval=99999999999999999999", `invalid HeartbeatInterval "99999999999999999999": out of range`},
		{"controller", "NodeHeartbeatThreshold=1.5", `invalid NodeHeartbeatThreshold "1.5": not a number`},
		{"controller", "TCPKeepAliveTime=32768", `invalid TCPKeepAliveTime "32768": out of range (0..32767)`},
		{"controller", "TCPKeepAliveInterval=-1", `invalid TCPKeepAliveInterval "-1": out of range (0..32767)`},
		{"controller", "TCPKeepAliveCount=128", `invalid TCPKeepAliveCount "128": out of range (0..127)`},
		{"controller", "TCPKeepAliveCount=six", `invalid TCPKeepAliveCount "six": not a number`},
		{"agent", "ControllerPort=842O", `invalid ControllerPort "842O": not a number`},
		{"agent", "ControllerPort=65536", `invalid ControllerPort "65536": out of range (0..65535)`},
		{"agent", "HeartbeatInterval=2s", `invalid HeartbeatInterval "2s": not a number`},
		{"agent", "ControllerHeartbeatThreshold=x", `invalid ControllerHeartbeatThreshold "x": not a number`},
		{"agent", "ConnectionRetryCountUntilQuiet=ten", `invalid ConnectionRetryCountUntilQuiet "ten": not a number`},
		{"agent", "TCPKeepAliveTime=1 s", `invalid TCPKeepAliveTime "1 s": not a number`},
		{"agent", "TCPKeepAliveInterval=40000", `invalid TCPKeepAliveInterval "40000": out of range (0..32767)`},
		{"agent", "TCPKeepAliveCount=-5", `invalid TCPKeepAliveCount "-5": out of range (0..127)`},
	}
	for _, tt := range tests {
		t.Run(tt.daemon+"/"+tt.line, func(t *testing.T) {
			l := newLayout(t)
			section := SectionController
			if tt.daemon == "agent" {
				section = SectionAgent
			}
			file := l.dropIn(t, "50-test.conf", "# test\n["+section+"]\n"+tt.line+"\n")
			var err error
			if tt.daemon == "agent" {
				_, err = LoadAgent(l.opts(nil))
			} else {
				_, err = LoadController(l.opts(nil))
			}
			want := file + ":3: " + tt.want
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v, want %q", err, want)
			}
			var ve *ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("err %T is not a *ValueError", err)
			}
			if !errors.Is(err, ErrNotANumber) && !errors.Is(err, ErrOutOfRange) {
				t.Errorf("err does not wrap a sentinel: %v", err)
			}
		})
	}
}

func TestValidationErrorLineOfContinuedValue(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-agent]\nNodeName=x\nControllerPort=84\n   2O\n")
	_, err := LoadAgent(l.opts(nil))
	want := l.loc.Admin + `:3: invalid ControllerPort "842O": not a number`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestValidationErrorsJoined(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nControllerPort=x\nTCPKeepAliveCount=500\n")
	_, err := LoadController(l.opts(nil))
	want := l.loc.Admin + `:2: invalid ControllerPort "x": not a number` + "\n" +
		l.loc.Admin + `:3: invalid TCPKeepAliveCount "500": out of range (0..127)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestValidValues(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, `[bluechi-controller]
ControllerPort=65535
HeartbeatInterval=-5
NodeHeartbeatThreshold=+7
TCPKeepAliveTime=0
TCPKeepAliveInterval=32767
TCPKeepAliveCount=127
IPReceiveErrors=off
UseUDS=No
`)
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Port, c.HeartbeatInterval, c.NodeHeartbeatThreshold, c.KeepAlive, c.IPReceiveErrors, c.UseUDS, c.UseTCP}
	want := []any{uint16(65535), int64(-5), int64(7), KeepAlive{0, 32767, 127}, false, false, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
}

func TestLogSettingsIgnoredWhenInvalid(t *testing.T) {
	tests := []struct {
		lines string
		want  Logging
	}{
		{"LogLevel=DEBUG", Logging{"DEBUG", "journald", false}},
		{"LogLevel=WARN", Logging{"WARN", "journald", false}},
		{"LogLevel=ERROR", Logging{"ERROR", "journald", false}},
		{"LogLevel=debug", Logging{"INFO", "journald", false}},
		{"LogLevel=5", Logging{"INFO", "journald", false}},
		{"LogLevel=DEBUG\nLogLevel=DEBUG", Logging{"INFO", "journald", false}}, // DEBUGDEBUG
		{"LogTarget=stderr", Logging{"INFO", "stderr", false}},
		{"LogTarget=Stderr-Full", Logging{"INFO", "stderr-full", false}},
		{"LogTarget=JOURNALD", Logging{"INFO", "journald", false}},
		{"LogTarget=syslog", Logging{"INFO", "journald", false}},
		{"LogTarget=1", Logging{"INFO", "journald", false}},
		{"LogIsQuiet=Y", Logging{"INFO", "journald", true}},
		{"LogIsQuiet=1", Logging{"INFO", "journald", false}},
		{"LogIsQuiet=garbage", Logging{"INFO", "journald", false}},
	}
	for _, tt := range tests {
		t.Run(tt.lines, func(t *testing.T) {
			l := newLayout(t)
			writeFile(t, l.loc.Admin, "[bluechi-agent]\n"+tt.lines+"\n")
			a, err := LoadAgent(l.opts(nil))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, a.Log); diff != "" {
				t.Errorf("logging (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIgnoredSectionsAndKeys(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, `HeartbeatInterval=bogus
ControllerPort=bogus
[bluechi-agent]
UnknownKey=1
[other]
ControllerPort=bogus
`)
	// Keys outside the main section and unknown keys are ignored by the
	// controller; the agent section is not the controller's.
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 842 {
		t.Errorf("Port = %d", c.Port)
	}
}

func TestNodeOrder(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, `[bluechi-controller]
AllowedNodeNames=zeta,alpha,,zeta, beta ,
[node zeta]
Allowed=true
RequiredSelinuxContext=zeta_t
[node c]
Allowed=true
[node b]
Allowed=false
RequiredSelinuxContext=ignored_t
[node alpha]
Allowed=false
AllowDependenciesOn=x, y,,x
[node ]
Allowed=true
`)
	l.dropIn(t, "nodes.conf", `[node a-extra]
Allowed=yes
RequiredSelinuxContext=extra_t
AllowDependenciesOn=c
[node d]
Allowed=1
`)
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{
		{Name: "zeta", RequiredSelinuxContext: "zeta_t"},
		{Name: "alpha", AllowDependenciesOn: []string{"x", "y"}},
		{Name: "beta"},
		{Name: "a-extra", RequiredSelinuxContext: "extra_t", AllowDependenciesOn: []string{"c"}},
		{Name: "c"},
	}
	if diff := cmp.Diff(want, c.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"zeta", "alpha", "beta", "a-extra", "c"}, c.NodeNames()); diff != "" {
		t.Errorf("NodeNames (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"zeta", "alpha", "beta"}, c.AllowedNodeNames); diff != "" {
		t.Errorf("AllowedNodeNames (-want +got):\n%s", diff)
	}
	if n, ok := c.Node("a-extra"); !ok || n.RequiredSelinuxContext != "extra_t" {
		t.Errorf("Node(a-extra) = %v, %v", n, ok)
	}
	if _, ok := c.Node("b"); ok {
		t.Error("node b with Allowed=false is configured")
	}
}

func TestNodeSectionOverriddenByLaterLayer(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[node n1]\nAllowed=true\n[node n2]\nAllowed=true\n")
	l.dropIn(t, "x.conf", "[node n1]\nAllowed=\n")
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"n2"}, c.NodeNames()); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
}

func TestControllerFlags(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nControllerPort=8420\n")
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyFlags(ControllerFlags{}); err != nil || c.Port != 8420 {
		t.Fatalf("no flags: port %d err %v", c.Port, err)
	}
	p := "8421"
	if err := c.ApplyFlags(ControllerFlags{Port: &p}); err != nil || c.Port != 8421 {
		t.Fatalf("-p 8421: port %d err %v", c.Port, err)
	}
	for _, bad := range []string{"", "842O", "70000"} {
		err := c.SetPort(bad)
		var ve *ValueError
		if !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), "command line: invalid ControllerPort ") {
			t.Errorf("SetPort(%q) = %v", bad, err)
		}
	}
	if c.Port != 8421 {
		t.Errorf("invalid -p changed the port to %d", c.Port)
	}
}

func TestAgentFlags(t *testing.T) {
	l := newLayout(t)
	// A deliberately wrong drop-in, fixed by flags (bluechi-agent-cmd-options).
	l.dropIn(t, "wrong.conf", `[bluechi-agent]
NodeName=wrong
ControllerHost=192.0.2.1
ControllerPort=1
HeartbeatInterval=100000
`)
	a, err := LoadAgent(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) *string { return &v }
	if err := a.ApplyFlags(AgentFlags{
		User: true, Port: s("8420"), Host: s("127.0.0.1"), Name: s("node-foo"), Interval: s("1000"),
	}); err != nil {
		t.Fatal(err)
	}
	want := []any{true, uint16(8420), "127.0.0.1", "node-foo", int64(1000), ""}
	got := []any{a.User, a.ControllerPort, a.ControllerHost, a.NodeName, a.HeartbeatInterval, a.ControllerAddress}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after flags (-want +got):\n%s", diff)
	}
	if err := a.ApplyFlags(AgentFlags{Address: s("tcp:host=127.0.0.1,port=8420")}); err != nil {
		t.Fatal(err)
	}
	if a.ControllerAddress != "tcp:host=127.0.0.1,port=8420" || a.User {
		t.Errorf("address %q user %v", a.ControllerAddress, a.User)
	}

	tests := []struct {
		flags AgentFlags
		want  string
	}{
		{AgentFlags{Port: s("x")}, `command line: invalid ControllerPort "x": not a number`},
		{AgentFlags{Port: s("")}, `command line: invalid ControllerPort "": not a number`},
		{AgentFlags{Interval: s("1s")}, `command line: invalid HeartbeatInterval "1s": not a number`},
	}
	for _, tt := range tests {
		if err := a.ApplyFlags(tt.flags); err == nil || err.Error() != tt.want {
			t.Errorf("ApplyFlags(%+v) = %v, want %q", tt.flags, err, tt.want)
		}
	}
	// Port is validated before the later flags are applied.
	a2 := &Agent{}
	if err := a2.ApplyFlags(AgentFlags{Port: s("bad"), Name: s("n")}); err == nil || a2.NodeName != "" {
		t.Errorf("flags after an invalid port were applied: %v %q", err, a2.NodeName)
	}
}

func TestRender(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nAllowedNodeNames=n1,n2\n[node n2]\nAllowDependenciesOn=n1,n3\nRequiredSelinuxContext=t_t\n")
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	p := "8420"
	if err := c.ApplyFlags(ControllerFlags{Port: &p}); err != nil {
		t.Fatal(err)
	}
	want := `[bluechi-controller]
ControllerPort=8420
UseTCP=true
UseUDS=true
AllowedNodeNames=n1,n2
HeartbeatInterval=1000
NodeHeartbeatThreshold=2500
RegistrationTimeout=10000
MaxUnregisteredPeers=64
LogLevel=INFO
LogTarget=journald
LogIsQuiet=false
IPReceiveErrors=true
TCPKeepAliveTime=1
TCPKeepAliveInterval=1
TCPKeepAliveCount=6
UseTLS=false
TLSCertificate=
TLSPrivateKey=
TLSCA=

[node n1]
Allowed=true
RequiredSelinuxContext=
AllowDependenciesOn=

[node n2]
Allowed=true
RequiredSelinuxContext=t_t
AllowDependenciesOn=n1,n3
`
	if diff := cmp.Diff(want, c.Render()); diff != "" {
		t.Errorf("controller render (-want +got):\n%s", diff)
	}

	a, err := LoadAgent(newLayout(t).opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	wantAgent := `[bluechi-agent]
NodeName=testhost
ControllerHost=127.0.0.1
ControllerPort=842
ControllerAddress=
HeartbeatInterval=1000
ControllerHeartbeatThreshold=2500
ConnectionRetryCountUntilQuiet=10
LogLevel=INFO
LogTarget=journald
LogIsQuiet=false
IPReceiveErrors=true
TCPKeepAliveTime=1
TCPKeepAliveInterval=1
TCPKeepAliveCount=6
UseTLS=false
TLSCertificate=
TLSPrivateKey=
TLSCA=
TLSServerName=127.0.0.1
`
	if diff := cmp.Diff(wantAgent, a.Render()); diff != "" {
		t.Errorf("agent render (-want +got):\n%s", diff)
	}
}

func TestSettingsDump(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[node x]\nAllowed=true\n[bluechi-controller]\nAllowedNodeNames=a\nLogIsQuiet=\n")
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `[bluechi-controller]
AllowedNodeNames=a
ControllerPort=842
HeartbeatInterval=1000
IPReceiveErrors=true
LogIsQuiet=
LogLevel=INFO
LogTarget=journald
MaxUnregisteredPeers=64
NodeHeartbeatThreshold=2500
RegistrationTimeout=10000
TCPKeepAliveCount=6
TCPKeepAliveInterval=1
TCPKeepAliveTime=1
UseTCP=true
UseUDS=true

[node x]
Allowed=true
`
	if diff := cmp.Diff(want, c.Settings.Dump()); diff != "" {
		t.Errorf("dump (-want +got):\n%s", diff)
	}
}

// TestPeerAdmissionKeys: RegistrationTimeout and MaxUnregisteredPeers are
// read as non-negative numbers; a bad value names file and line.
func TestPeerAdmissionKeys(t *testing.T) {
	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nRegistrationTimeout=2500\nMaxUnregisteredPeers=\n")
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RegistrationTimeout != 2500 || c.MaxUnregisteredPeers != 0 {
		t.Errorf("RegistrationTimeout %d, MaxUnregisteredPeers %d; want 2500 and 0 (unset)", c.RegistrationTimeout, c.MaxUnregisteredPeers)
	}
	for _, bad := range []string{"RegistrationTimeout=-1", "MaxUnregisteredPeers=many"} {
		writeFile(t, l.loc.Admin, "[bluechi-controller]\n"+bad+"\n")
		_, err := LoadController(l.opts(nil))
		if err == nil || !strings.Contains(err.Error(), l.loc.Admin+":2") {
			t.Errorf("%s: %v, want an error naming %s:2", bad, err, l.loc.Admin)
		}
	}
}
