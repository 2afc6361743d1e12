// SPDX-License-Identifier: Apache-2.0

// Package cmdline implements the command-line contract shared by bluechictl
// and bluechi-is-online: "PROG [OPTIONS] COMMAND [ARGS...]" with getopt_long
// options anywhere, per-command argument counts and allowed options, and
// upstream's diagnostics and exit codes for every kind of bad input.
package cmdline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/ctl/progress"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// Any is Method.Max for commands taking any number of arguments.
const Any = -1

// Method is one command.
type Method struct {
	Name     string
	Min, Max int
	// Options lists the keys (long names) of the options the command
	// accepts besides -h and the Spec's global options.
	Options []string
	// Usage prints the command's help (shown for "COMMAND -h").
	Usage func(w io.Writer)
}

// Spec describes a program.
type Spec struct {
	// Prog prefixes getopt diagnostics; upstream's getopt uses argv[0].
	Prog    string
	Options []cliopt.Option
	// Global lists option keys every command accepts.
	Global  []string
	Methods []*Method
	// Usage prints the program's help.
	Usage func(w io.Writer)
	// Version, when set, prints the version for the option "version"
	// (-v/--version), which then ends the program with status 0 whatever
	// else the command line holds (but -h).
	Version func(w io.Writer)
}

// Invocation is a command line that passed every check.
type Invocation struct {
	Method *Method
	Args   []string
	Opts   *cliopt.Result
}

// Parse checks a command line (without the program name) in upstream's
// order. It returns the invocation to run, or nil and the exit status when
// the program is done (help shown or bad input reported).
func (s *Spec) Parse(args []string, stdout, stderr io.Writer) (*Invocation, int) {
	r, err := cliopt.Parse(s.Options, args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", s.Prog, err)
		s.Usage(stdout)
		return nil, 1
	}
	help := r.Has("help")
	if s.Version != nil && r.Has("version") && !help {
		s.Version(stdout)
		return nil, 0
	}
	if len(r.Args) == 0 {
		if help {
			s.Usage(stdout)
			return nil, 0
		}
		fmt.Fprintln(stderr, "No command given")
		s.Usage(stdout)
		return nil, 1
	}
	name := r.Args[0]
	m := s.Lookup(name)
	if m == nil {
		fmt.Fprintf(stderr, "Method %s not found\n", name)
		s.Usage(stdout)
		return nil, 1
	}
	if help {
		m.Usage(stdout)
		return nil, 0
	}
	argv := r.Args[1:]
	if len(argv) < m.Min {
		fmt.Fprintf(stderr, "Too few arguments for method %s\n", m.Name)
		m.Usage(stderr)
		return nil, 1
	}
	if m.Max != Any && len(argv) > m.Max {
		fmt.Fprintf(stderr, "Too many arguments for method %s\n", m.Name)
		m.Usage(stderr)
		return nil, 1
	}
	for _, key := range r.Order {
		if key != "help" && !contains(s.Global, key) && !contains(m.Options, key) {
			fmt.Fprintf(stderr, "Unsupported option '%s' for method '%s'\n", key, m.Name)
			return nil, 1
		}
	}
	return &Invocation{Method: m, Args: argv, Opts: r}, 0
}

// Lookup returns the command called name, or nil.
func (s *Spec) Lookup(name string) *Method {
	for _, m := range s.Methods {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Env is what a program needs from its process: arguments, output streams,
// the bus and signal handling. Tests fill it in to run programs in-process.
type Env struct {
	// Prog is argv[0], which prefixes getopt diagnostics.
	Prog           string
	Args           []string
	Stdout, Stderr io.Writer
	// Connect opens the system bus, or the session bus when user is set.
	Connect func(user bool) (*dbus.Conn, error)
	// Interruptible returns a context cancelled by SIGINT/SIGTERM, for
	// commands that run until interrupted.
	Interruptible func(ctx context.Context) (context.Context, context.CancelFunc)
	// StdoutIsTerminal reports whether Stdout is a terminal.
	StdoutIsTerminal bool
}

// ProcessEnv is the Env of the running process: os.Args, the real streams
// and buses, and SIGINT/SIGTERM.
func ProcessEnv() Env {
	return Env{
		Prog:   os.Args[0],
		Args:   os.Args[1:],
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Connect: func(user bool) (*dbus.Conn, error) {
			var (
				conn *dbus.Conn
				err  error
			)
			if user {
				conn, _, err = dbusrt.ConnectSessionBus()
			} else {
				conn, _, err = dbusrt.ConnectSystemBus()
			}
			return conn, err
		},
		Interruptible: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		},
		StdoutIsTerminal: progress.IsTerminal(os.Stdout),
	}
}
