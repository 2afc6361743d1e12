// SPDX-License-Identifier: Apache-2.0

package logging

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Attr is a key/value pair attached to a record; build them with
// slog.String, slog.Int, slog.Any, ... or Err. Unlike `...any` arguments,
// Attrs never allocate at the call site, so a disabled call is free.
type Attr = slog.Attr

// Err returns the attribute error=err.
func Err(err error) Attr { return slog.Any("error", err) }

// Options configures New. The zero value logs INFO and above to journald.
type Options struct {
	// Level is DEBUG, INFO, WARN or ERROR (case-sensitive); "" means INFO.
	Level string
	// Target is journald, stderr or stderr-full (case-insensitive);
	// "" means journald.
	Target string
	// Quiet suppresses all output.
	Quiet bool
	// Out receives the stderr formats (and the journald fallback);
	// nil means os.Stderr. Each record is one Write call.
	Out io.Writer
	// Program is the journal SYSLOG_IDENTIFIER; "" means the base name
	// of os.Args[0].
	Program string

	// journal replaces go-systemd's journal functions (tests only).
	journal *journalBackend
}

// journalBackend abstracts the journal so tests need no journald.
type journalBackend struct {
	enabled func() bool
	send    func(msg string, prio journal.Priority, vars map[string]string) error
}

var systemJournal = &journalBackend{enabled: journal.Enabled, send: journal.Send}

// quietThreshold is above every level, so nothing is enabled.
const quietThreshold = math.MaxInt64

// state is shared by a Logger and every Logger or Handler derived from it.
type state struct {
	// threshold is the effective minimum level: the configured level,
	// or quietThreshold in quiet mode. It is the only thing read on the
	// fast path.
	threshold atomic.Int64
	level     atomic.Int64 // configured level, also while quiet
	quiet     atomic.Bool
	setMu     sync.Mutex // serialises SetLevel/SetQuiet

	target  string
	program string
	needPC  bool // whether records need the caller's location

	outMu sync.Mutex
	out   io.Writer

	journal     *journalBackend
	journalOnce sync.Once
	journalOK   bool        // valid after journalOnce
	warned      atomic.Bool // the fallback warning was written
}

// Logger writes leveled records with attributes. It is safe for concurrent
// use. A nil *Logger discards everything.
type Logger struct {
	st *state // == h.st, one indirection less on the fast path
	h  *handler
}

// New returns a Logger configured by o, or an error wrapping
// ErrInvalidLevel or ErrInvalidTarget.
func New(o Options) (*Logger, error) {
	level := LevelInfo
	if o.Level != "" {
		l, err := ParseLevel(o.Level)
		if err != nil {
			return nil, err
		}
		level = l
	}
	target := TargetJournald
	if o.Target != "" {
		t, err := ParseTarget(o.Target)
		if err != nil {
			return nil, err
		}
		target = t
	}
	st := &state{
		target:  target,
		program: o.Program,
		needPC:  target != TargetStderr,
		out:     o.Out,
		journal: o.journal,
	}
	if st.out == nil {
		st.out = os.Stderr
	}
	if st.program == "" && len(os.Args) > 0 {
		st.program = filepath.Base(os.Args[0])
	}
	if st.journal == nil {
		st.journal = systemJournal
	}
	st.level.Store(int64(level))
	st.quiet.Store(o.Quiet)
	st.updateThreshold()
	return &Logger{st: st, h: &handler{st: st}}, nil
}

func (st *state) updateThreshold() {
	if st.quiet.Load() {
		st.threshold.Store(quietThreshold)
	} else {
		st.threshold.Store(st.level.Load())
	}
}

func (st *state) enabled(l Level) bool {
	return int64(l) >= st.threshold.Load()
}

// SetLevel changes the level of l and of all loggers derived from it. An
// invalid name returns an error wrapping ErrInvalidLevel and leaves the level
// unchanged.
func (l *Logger) SetLevel(name string) error {
	lv, err := ParseLevel(name)
	if err != nil {
		return err
	}
	if l == nil {
		return nil
	}
	st := l.st
	st.setMu.Lock()
	st.level.Store(int64(lv))
	st.updateThreshold()
	st.setMu.Unlock()
	return nil
}

// Level returns the current level name (DEBUG, INFO, WARN or ERROR), also
// while quiet.
func (l *Logger) Level() string {
	if l == nil {
		return "INFO"
	}
	return LevelName(Level(l.st.level.Load()))
}

// Target returns the configured target's canonical name. It stays
// "journald" when records fall back to stderr.
func (l *Logger) Target() string {
	if l == nil {
		return TargetJournald
	}
	return l.st.target
}

// SetQuiet switches quiet mode (no output at all) on or off.
func (l *Logger) SetQuiet(quiet bool) {
	if l == nil {
		return
	}
	st := l.st
	st.setMu.Lock()
	st.quiet.Store(quiet)
	st.updateThreshold()
	st.setMu.Unlock()
}

// Quiet reports whether quiet mode is on.
func (l *Logger) Quiet() bool {
	return l == nil || l.st.quiet.Load()
}

// Enabled reports whether a record at level would be written; use it to
// guard expensive argument preparation.
func (l *Logger) Enabled(level Level) bool {
	return l != nil && l.st.enabled(level)
}

// Debug logs msg at DEBUG.
func (l *Logger) Debug(msg string, attrs ...Attr) {
	if l.Enabled(LevelDebug) {
		l.log(LevelDebug, msg, attrs)
	}
}

// DebugLines logs each non-empty line of text at DEBUG as a record of its
// own, after prefix: a multi-line text (a configuration) stays readable on
// targets that escape line breaks within a record.
func (l *Logger) DebugLines(prefix, text string) {
	if !l.Enabled(LevelDebug) {
		return
	}
	// A plain loop: log records the caller two frames up, which a range
	// over an iterator would make the iterator.
	for _, line := range strings.Split(text, "\n") {
		if line != "" {
			l.log(LevelDebug, prefix+line, nil)
		}
	}
}

// Info logs msg at INFO.
func (l *Logger) Info(msg string, attrs ...Attr) {
	if l.Enabled(LevelInfo) {
		l.log(LevelInfo, msg, attrs)
	}
}

// Warn logs msg at WARN.
func (l *Logger) Warn(msg string, attrs ...Attr) {
	if l.Enabled(LevelWarn) {
		l.log(LevelWarn, msg, attrs)
	}
}

// Error logs msg at ERROR.
func (l *Logger) Error(msg string, attrs ...Attr) {
	if l.Enabled(LevelError) {
		l.log(LevelError, msg, attrs)
	}
}

// Log logs msg at level.
func (l *Logger) Log(level Level, msg string, attrs ...Attr) {
	if l.Enabled(level) {
		l.log(level, msg, attrs)
	}
}

// log must be called directly by the exported methods: it skips
// runtime.Callers, log and the exported method to find the call site.
func (l *Logger) log(level Level, msg string, attrs []Attr) {
	var pc uintptr
	if l.st.needPC {
		var pcs [1]uintptr
		runtime.Callers(3, pcs[:])
		pc = pcs[0]
	}
	r := slog.NewRecord(time.Now(), level, msg, pc)
	r.AddAttrs(attrs...)
	l.h.emit(r)
}

// With returns a Logger that adds attrs to every record. It shares level,
// quiet mode and output with l.
func (l *Logger) With(attrs ...Attr) *Logger {
	if l == nil || len(attrs) == 0 {
		return l
	}
	return &Logger{st: l.st, h: l.h.withAttrs(attrs)}
}

// Handler returns l as a slog.Handler sharing l's state; records below the
// current level are disabled.
func (l *Logger) Handler() slog.Handler {
	if l == nil {
		return slog.DiscardHandler
	}
	return l.h
}

// Slog returns a *slog.Logger writing through l.
func (l *Logger) Slog() *slog.Logger {
	return slog.New(l.Handler())
}
