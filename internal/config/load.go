// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Section names and the prefix of per-node controller sections.
const (
	SectionController = "bluechi-controller"
	SectionAgent      = "bluechi-agent"
	NodeSectionPrefix = "node " // "[node NAME]"
)

// Configuration keys.
const (
	KeyControllerPort                 = "ControllerPort"
	KeyUseTCP                         = "UseTCP"
	KeyUseUDS                         = "UseUDS"
	KeyAllowedNodeNames               = "AllowedNodeNames"
	KeyHeartbeatInterval              = "HeartbeatInterval"
	KeyNodeHeartbeatThreshold         = "NodeHeartbeatThreshold"
	KeyRegistrationTimeout            = "RegistrationTimeout"
	KeyMaxUnregisteredPeers           = "MaxUnregisteredPeers"
	KeyLogLevel                       = "LogLevel"
	KeyLogTarget                      = "LogTarget"
	KeyLogIsQuiet                     = "LogIsQuiet"
	KeyIPReceiveErrors                = "IPReceiveErrors"
	KeyTCPKeepAliveTime               = "TCPKeepAliveTime"
	KeyTCPKeepAliveInterval           = "TCPKeepAliveInterval"
	KeyTCPKeepAliveCount              = "TCPKeepAliveCount"
	KeyNodeName                       = "NodeName"
	KeyControllerHost                 = "ControllerHost"
	KeyControllerAddress              = "ControllerAddress"
	KeyControllerHeartbeatThreshold   = "ControllerHeartbeatThreshold"
	KeyConnectionRetryCountUntilQuiet = "ConnectionRetryCountUntilQuiet"
	KeyAllowed                        = "Allowed"
	KeyRequiredSelinuxContext         = "RequiredSelinuxContext"
	KeyAllowDependenciesOn            = "AllowDependenciesOn"
)

// Built-in defaults (config.md §3, §4; README "Key constants").
const (
	DefaultPort           = 842
	DefaultControllerHost = "127.0.0.1"
	DefaultUnixSocketPath = "/run/bluechi/bluechi.sock"
	// Heartbeat defaults differ from upstream (2000, 0, 6000, 0) on purpose:
	// out of the box a silent peer (cable pull, frozen host) is detected
	// within 3 s on both sides. Compatibility: upstream agents heartbeat
	// every 2000 ms, which the 2500 ms node threshold accepts; our agent arms
	// its controller threshold only after the first controller heartbeat on
	// a connection, so upstream controllers (no heartbeats) are not dropped.
	DefaultAgentHeartbeatInterval         = 1000  // ms
	DefaultControllerHeartbeatInterval    = 1000  // ms
	DefaultNodeHeartbeatThreshold         = 2500  // ms
	DefaultRegistrationTimeout            = 10000 // ms
	DefaultMaxUnregisteredPeers           = 64
	DefaultControllerHeartbeatThreshold   = 2500 // ms, armed by the first controller heartbeat
	DefaultConnectionRetryCountUntilQuiet = 10
	DefaultTCPKeepAliveTime               = 1 // s
	DefaultTCPKeepAliveInterval           = 1 // s
	DefaultTCPKeepAliveCount              = 6
	DefaultIPReceiveErrors                = true
	DefaultLogLevel                       = LogLevelInfo
	DefaultLogTarget                      = LogTargetJournald
)

// Limits of the TCP keep-alive keys (Linux TCP_KEEPIDLE/TCP_KEEPINTVL and
// TCP_KEEPCNT maxima).
const (
	MaxTCPKeepAliveTime     = 32767
	MaxTCPKeepAliveInterval = 32767
	MaxTCPKeepAliveCount    = 127
)

// Environment variables that override keys of the main section.
var envOverrides = []struct{ variable, key string }{
	{"BC_LOG_LEVEL", KeyLogLevel},
	{"BC_LOG_TARGET", KeyLogTarget},
	{"BC_LOG_IS_QUIET", KeyLogIsQuiet},
}

// Locations are the configuration files of one daemon (layers 1–3 of
// config.md §2). An empty field skips that layer.
type Locations struct {
	// Distribution is the distribution defaults file (layer 1). A missing
	// file is tolerated (upstream treats it as fatal); see the package doc.
	Distribution string
	// Admin is the administrator's file (layer 2); a missing file is ignored.
	Admin string
	// DropInDir holds *.conf drop-ins (layer 3); a missing directory is
	// ignored.
	DropInDir string
}

// DataDir and SysconfDir are the folders the daemons' configuration lives
// under: the distribution's defaults in DataDir, the administrator's files
// in SysconfDir. They are upstream's (/usr/share and /etc) unless the build
// sets others from make's DATADIR and SYSCONFDIR (-ldflags -X), so that a
// build for PREFIX=/usr/local reads the files its make install wrote.
var (
	DataDir    = "/usr/share"
	SysconfDir = "/etc"
)

// ControllerLocations returns the file locations of bluechi-controller:
// upstream's, under DataDir and SysconfDir.
func ControllerLocations() Locations {
	return Locations{
		Distribution: filepath.Join(DataDir, "bluechi/config/controller.conf"),
		Admin:        filepath.Join(SysconfDir, "bluechi/controller.conf"),
		DropInDir:    filepath.Join(SysconfDir, "bluechi/controller.conf.d"),
	}
}

// AgentLocations returns the file locations of bluechi-agent: upstream's,
// under DataDir and SysconfDir.
func AgentLocations() Locations {
	return Locations{
		Distribution: filepath.Join(DataDir, "bluechi-agent/config/agent.conf"),
		Admin:        filepath.Join(SysconfDir, "bluechi/agent.conf"),
		DropInDir:    filepath.Join(SysconfDir, "bluechi/agent.conf.d"),
	}
}

// Options control LoadController and LoadAgent.
type Options struct {
	// Locations of layers 1–3. Use ControllerLocations / AgentLocations for
	// the upstream paths.
	Locations Locations
	// ConfigFile is the file given with -c/--config ("" = none). It is read
	// after the environment; a missing or invalid file is fatal.
	ConfigFile string
	// Getenv reads environment variables; nil means os.Getenv.
	Getenv func(string) string
	// Hostname returns the default agent NodeName; nil means os.Hostname.
	// On error the default NodeName is left unset.
	Hostname func() (string, error)
}

// loadSettings builds the layered settings for the daemon whose main section
// is main, starting from the given built-in defaults.
func loadSettings(main string, defaults [][2]string, opts Options) (*Settings, error) {
	s := NewSettings()
	for _, d := range defaults {
		s.Set(main, d[0], d[1], Source{Origin: OriginDefault})
	}

	loc := opts.Locations
	if loc.Distribution != "" {
		if err := mergeFile(s, loc.Distribution, true); err != nil {
			return nil, err
		}
	}
	if loc.Admin != "" {
		if err := mergeFile(s, loc.Admin, true); err != nil {
			return nil, err
		}
	}
	if loc.DropInDir != "" {
		files, err := DropIns(loc.DropInDir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if err := mergeFile(s, f, false); err != nil {
				return nil, err
			}
		}
	}

	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, e := range envOverrides {
		if v := getenv(e.variable); v != "" {
			s.Set(main, e.key, v, Source{Origin: "environment variable " + e.variable})
		}
	}

	if opts.ConfigFile != "" {
		if err := mergeFile(s, opts.ConfigFile, false); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// mergeFile parses path and merges it into s. If missingOK, a file that does
// not exist is skipped.
func mergeFile(s *Settings, path string, missingOK bool) error {
	f, err := ParseFile(path)
	if err != nil {
		if missingOK && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	s.Merge(f)
	return nil
}

// DropIns lists the drop-in files of dir: entries whose name ends in ".conf"
// and that are (or link to) regular files, sorted byte-wise by name. A
// missing directory yields no files; other errors, including a ".conf" entry
// that cannot be inspected, are returned.
func DropIns(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading drop-in directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading drop-in: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out, nil
}

// reader converts settings of one section into typed values, collecting
// validation errors.
type reader struct {
	s       *Settings
	section string
	errs    []error
}

func (r *reader) lookup(key string) (Value, bool) { return r.s.Lookup(r.section, key) }

func (r *reader) str(key string) string { return r.s.Get(r.section, key) }

func (r *reader) bool(key string) bool { return ParseBool(r.str(key)) }

// long returns the value of key in min..max (pass the int64 extremes for an
// unrestricted long) or 0 when unset; invalid values are recorded as errors.
func (r *reader) long(key string, min, max int64) int64 {
	v, ok := r.lookup(key)
	if !ok {
		return 0
	}
	n, err := ParseRange(v.Text, min, max)
	if err != nil {
		r.errs = append(r.errs, &ValueError{Key: key, Value: v.Text, Source: v.Source, Err: err})
		return 0
	}
	return n
}

// unrestricted parses a plain signed long (only overflow is out of range).
func (r *reader) unrestricted(key string) int64 {
	v, ok := r.lookup(key)
	if !ok {
		return 0
	}
	n, err := ParseLong(v.Text)
	if err != nil {
		r.errs = append(r.errs, &ValueError{Key: key, Value: v.Text, Source: v.Source, Err: err})
		return 0
	}
	return n
}

func (r *reader) port(key string) uint16 {
	return uint16(r.long(key, 0, 65535))
}

// nodeNames splits a comma-separated list of node names: every item must pass
// CheckNodeName, else a ValueError naming the item and the line of the
// key is recorded.
func (r *reader) nodeNames(key string) []string {
	v, ok := r.lookup(key)
	if !ok {
		return nil
	}
	items := SplitList(v.Text)
	for _, item := range items {
		if err := CheckNodeName(item); err != nil {
			r.errs = append(r.errs, &ValueError{Key: key, Value: item, Source: v.Source, Err: err})
		}
	}
	return items
}

// nodeName is str for a single node name (see nodeNames).
func (r *reader) nodeName(key string) string {
	v, ok := r.lookup(key)
	if !ok {
		return ""
	}
	if err := CheckNodeName(v.Text); err != nil {
		r.errs = append(r.errs, &ValueError{Key: key, Value: v.Text, Source: v.Source, Err: err})
	}
	return v.Text
}

func (r *reader) logging() Logging {
	l := Logging{Level: DefaultLogLevel, Target: DefaultLogTarget}
	if v := r.str(KeyLogLevel); IsValidLogLevel(v) {
		l.Level = v
	}
	if t, ok := ParseLogTarget(r.str(KeyLogTarget)); ok {
		l.Target = t
	}
	l.IsQuiet = r.bool(KeyLogIsQuiet)
	return l
}

func (r *reader) keepAlive() KeepAlive {
	return KeepAlive{
		Time:     r.long(KeyTCPKeepAliveTime, 0, MaxTCPKeepAliveTime),
		Interval: r.long(KeyTCPKeepAliveInterval, 0, MaxTCPKeepAliveInterval),
		Count:    r.long(KeyTCPKeepAliveCount, 0, MaxTCPKeepAliveCount),
	}
}

// err returns nil, the single validation error, or all of them joined.
func (r *reader) err() error {
	if len(r.errs) == 1 {
		return r.errs[0]
	}
	return errors.Join(r.errs...)
}

// SplitList splits a comma-separated list value: items are trimmed of
// surrounding whitespace, empty items are dropped and duplicates removed
// (first occurrence kept).
func SplitList(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = trimSpace(item)
		if item == "" || seen[item] {
			continue
		}
		seen[item] = true
		out = append(out, item)
	}
	return out
}

// Logging holds the LogLevel, LogTarget and LogIsQuiet settings.
type Logging struct {
	Level   string // DEBUG, INFO, WARN or ERROR
	Target  string // journald, stderr or stderr-full
	IsQuiet bool
}

// KeepAlive holds the TCP keep-alive settings; 0 means "leave the system
// default".
type KeepAlive struct {
	Time     int64 // TCP_KEEPIDLE in seconds, 0..32767
	Interval int64 // TCP_KEEPINTVL in seconds, 0..32767
	Count    int64 // TCP_KEEPCNT, 0..127
}

// commonDefaults are the built-in defaults shared by both daemons.
func commonDefaults() [][2]string {
	return [][2]string{
		{KeyLogLevel, DefaultLogLevel},
		{KeyLogTarget, DefaultLogTarget},
		{KeyLogIsQuiet, ""},
		{KeyIPReceiveErrors, fmt.Sprint(DefaultIPReceiveErrors)},
		{KeyTCPKeepAliveTime, itoa(DefaultTCPKeepAliveTime)},
		{KeyTCPKeepAliveInterval, itoa(DefaultTCPKeepAliveInterval)},
		{KeyTCPKeepAliveCount, itoa(DefaultTCPKeepAliveCount)},
	}
}

func itoa(n int64) string { return fmt.Sprint(n) }

// renderer writes key=value lines.
type renderer struct{ b strings.Builder }

func (w *renderer) section(name string) {
	if w.b.Len() > 0 {
		w.b.WriteString("\n")
	}
	fmt.Fprintf(&w.b, "[%s]\n", name)
}

func (w *renderer) kv(key string, value any) { fmt.Fprintf(&w.b, "%s=%v\n", key, value) }

func (w *renderer) common(l Logging, ipRecvErr bool, k KeepAlive) {
	w.kv(KeyLogLevel, l.Level)
	w.kv(KeyLogTarget, l.Target)
	w.kv(KeyLogIsQuiet, l.IsQuiet)
	w.kv(KeyIPReceiveErrors, ipRecvErr)
	w.kv(KeyTCPKeepAliveTime, k.Time)
	w.kv(KeyTCPKeepAliveInterval, k.Interval)
	w.kv(KeyTCPKeepAliveCount, k.Count)
}
