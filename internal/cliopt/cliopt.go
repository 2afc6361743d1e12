// SPDX-License-Identifier: Apache-2.0

// Package cliopt parses command lines the way GNU getopt_long does (short
// and long options, bundling, "--port=N" and "--port N", options anywhere
// before "--"), with getopt's diagnostics, which scripts and tests grep for.
package cliopt

import (
	"fmt"
	"io"
	"strings"
)

// Option declares one option.
type Option struct {
	Short  byte   // 0 when there is none
	Long   string // "" when there is none
	HasArg bool
}

// Result holds the parsed options and the remaining arguments.
type Result struct {
	// Set maps each given option (by long name, or its short letter when it
	// has no long name) to its values in order; flags get "".
	Set  map[string][]string
	Args []string
	// Order lists the keys of the given options in command-line order
	// (repeated options repeat).
	Order []string
}

// Has reports whether the option was given.
func (r *Result) Has(name string) bool { _, ok := r.Set[name]; return ok }

// Value returns the last value of the option and whether it was given.
func (r *Result) Value(name string) (string, bool) {
	v, ok := r.Set[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

func (o Option) key() string {
	if o.Long != "" {
		return o.Long
	}
	return string(o.Short)
}

// Parse parses args (without the program name). Errors carry getopt's text:
// "invalid option -- 'Q'", "unrecognized option '--QWERTY'",
// "option requires an argument -- 'p'", "option '--port' requires an argument".
func Parse(opts []Option, args []string) (*Result, error) {
	r := &Result{Set: map[string][]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			r.Args = append(r.Args, args[i+1:]...)
			return r, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o, err := findLong(opts, name)
			if err != nil {
				if amb, ok := err.(ambiguousError); ok {
					return nil, fmt.Errorf("option '--%s' is ambiguous; possibilities:%s", name, amb)
				}
				return nil, fmt.Errorf("unrecognized option '%s'", a)
			}
			switch {
			case o.HasArg && hasVal:
			case o.HasArg:
				if i+1 >= len(args) {
					return nil, fmt.Errorf("option '--%s' requires an argument", o.Long)
				}
				i++
				val = args[i]
			case hasVal:
				return nil, fmt.Errorf("option '--%s' doesn't allow an argument", o.Long)
			}
			r.add(o, val)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				o, ok := findShort(opts, a[j])
				if !ok {
					return nil, fmt.Errorf("invalid option -- '%c'", a[j])
				}
				if !o.HasArg {
					r.add(o, "")
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("option requires an argument -- '%c'", a[j])
					}
					i++
					val = args[i]
				}
				r.add(o, val)
				break
			}
		default:
			r.Args = append(r.Args, a)
		}
	}
	return r, nil
}

func (r *Result) add(o Option, val string) {
	r.Set[o.key()] = append(r.Set[o.key()], val)
	r.Order = append(r.Order, o.key())
}

// ambiguousError lists the long options an abbreviation could mean, in
// getopt's " '--a' '--b'" form.
type ambiguousError string

func (e ambiguousError) Error() string { return string(e) }

func findShort(opts []Option, c byte) (Option, bool) {
	for _, o := range opts {
		if o.Short != 0 && o.Short == c {
			return o, true
		}
	}
	return Option{}, false
}

// findLong matches exact names, or an unambiguous prefix as getopt_long does.
func findLong(opts []Option, name string) (Option, error) {
	var match []Option
	for _, o := range opts {
		if o.Long == "" {
			continue
		}
		if o.Long == name {
			return o, nil
		}
		if name != "" && strings.HasPrefix(o.Long, name) {
			match = append(match, o)
		}
	}
	if len(match) == 1 {
		return match[0], nil
	}
	if len(match) > 1 {
		var b strings.Builder
		for _, o := range match {
			fmt.Fprintf(&b, " '--%s'", o.Long)
		}
		return Option{}, ambiguousError(b.String())
	}
	return Option{}, fmt.Errorf("no option %q", name)
}

// Daemon parses a daemon's command line (options only, no arguments) and
// handles -h/--help and -v/--version. When done is true the program should
// exit with code: after help or version (0) or after a diagnostic and the
// usage text (1).
func Daemon(prog, version string, opts []Option, args []string, usage func(io.Writer), stdout, stderr io.Writer) (r *Result, code int, done bool) {
	r, err := Parse(opts, args)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	case r.Has("help"):
		usage(stdout)
		return nil, 0, true
	case r.Has("version"):
		fmt.Fprintf(stdout, "%s version %s\n", prog, version)
		return nil, 0, true
	case len(r.Args) > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument '%s'\n", prog, r.Args[0])
	default:
		return r, 0, false
	}
	usage(stderr)
	return nil, 1, true
}
