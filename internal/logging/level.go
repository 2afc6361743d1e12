// SPDX-License-Identifier: Apache-2.0

// Package logging is the logger shared by bluechi-controller and
// bluechi-agent.
//
// A Logger writes to one of three targets (see config.md §6):
//
//   - "stderr":      <timestamp> <LEVEL>\t: <message>[ key=value...]
//   - "stderr-full": <timestamp> <LEVEL>\t<file>:<line> <function>\tmsg="<message>"[, data="<key=value...>"]
//   - "journald":    native journal entries (MESSAGE, PRIORITY, CODE_FILE,
//     CODE_LINE, CODE_FUNC, SYSLOG_IDENTIFIER and one field per attribute).
//     When the journal socket is missing, records go to the stderr-full
//     format on Options.Out after a one-time warning.
//
// Timestamps are local time in the form "2006-01-02 15:04:05,000-0700".
// The level can be changed while logging (D-Bus SetLogLevel), and quiet mode
// suppresses everything. Calls below the level return after a single atomic
// load and do not allocate. A Logger can also be used through log/slog via
// Handler or Slog.
package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// Level is a log level; it is log/slog's type so that a Logger's Handler
// works with *slog.Logger unchanged.
type Level = slog.Level

// The four levels BlueChi knows.
const (
	LevelDebug = slog.LevelDebug
	LevelInfo  = slog.LevelInfo
	LevelWarn  = slog.LevelWarn
	LevelError = slog.LevelError
)

// Canonical names of the log targets.
const (
	TargetJournald   = "journald"
	TargetStderr     = "stderr"
	TargetStderrFull = "stderr-full"
)

// ErrInvalidLevel is wrapped by the errors of ParseLevel and SetLevel.
var ErrInvalidLevel = errors.New("invalid log level")

// ErrInvalidTarget is wrapped by the errors of ParseTarget and New.
var ErrInvalidTarget = errors.New("invalid log target")

// ParseLevel parses one of DEBUG, INFO, WARN or ERROR. Matching is
// case-sensitive, as for upstream's SetLogLevel.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "DEBUG":
		return LevelDebug, nil
	case "INFO":
		return LevelInfo, nil
	case "WARN":
		return LevelWarn, nil
	case "ERROR":
		return LevelError, nil
	}
	return 0, fmt.Errorf("%w %q: want DEBUG, INFO, WARN or ERROR", ErrInvalidLevel, s)
}

// LevelName returns the BlueChi name of l. slog levels between the four
// known ones are rounded down (e.g. slog.LevelWarn-1 is "INFO").
func LevelName(l Level) string {
	switch {
	case l < LevelInfo:
		return "DEBUG"
	case l < LevelWarn:
		return "INFO"
	case l < LevelError:
		return "WARN"
	default:
		return "ERROR"
	}
}

// ParseTarget parses a log target case-insensitively and returns its
// canonical (lower-case) name.
func ParseTarget(s string) (string, error) {
	switch t := strings.ToLower(s); t {
	case TargetJournald, TargetStderr, TargetStderrFull:
		return t, nil
	}
	return "", fmt.Errorf("%w %q: want journald, stderr or stderr-full", ErrInvalidTarget, s)
}

// journalPriority maps a level to a syslog priority:
// DEBUG→7, INFO→6, WARN→4, ERROR→3.
func journalPriority(l Level) journal.Priority {
	switch {
	case l < LevelInfo:
		return journal.PriDebug
	case l < LevelWarn:
		return journal.PriInfo
	case l < LevelError:
		return journal.PriWarning
	default:
		return journal.PriErr
	}
}
