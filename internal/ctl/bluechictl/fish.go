// SPDX-License-Identifier: Apache-2.0
package bluechictl

import (
	"fmt"
	"strings"
)

// FishCompletion returns the fish completion script: the same completions
// as BashCompletion's, with the commands' summaries as descriptions.
func FishCompletion() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# fish completion for %[1]s
# Load with: %[1]s completion fish | source

# The words before the cursor that are arguments (not options or their values).
function __%[2]s_args
    set -l words (commandline -opc)
    set -l skip 0
    for w in $words[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case --filter --kill-whom --signal -o --output
                set skip 1
            case '-*'
            case '*'
                echo $w
        end
    end
end

# Completion words from %[1]s itself, on the bus of the command line.
function __%[2]s_words
    set -l bus
    set -l words (commandline -opc)
    if contains -- -u $words; or contains -- --user $words
        set bus --user
    end
    %[1]s $bus completion $argv 2>/dev/null
end

# Whether the argument under the cursor is of the kind $argv[1].
function __%[2]s_want
    set -l a (__%[2]s_args)
    set -l n (count $a)
    test $n -ge 1; or return 1
    set -l k $argv[1]
    switch $a[1]
        case start stop restart reload freeze thaw kill is-enabled set-property
            test $k = nodes -a $n -eq 1; or test $k = units -a $n -eq 2
        case status reset-failed enable disable
            test $k = nodes -a $n -eq 1; or test $k = units -a $n -ge 2
        case list-units list-unit-files daemon-reload get-default
            test $k = nodes -a $n -eq 1
        case set-default
            test $k = nodes -a $n -eq 1; or test $k = targets -a $n -eq 2
        case monitor
            test $k = nodes -a $n -eq 1; or test $k = units -a $n -eq 2 -a "$a[2]" != '*'
        case set-loglevel
            test $k = levels -a $n -le 2; or test $k = nodes -a $n -eq 1
        case metrics completion
            test $k = $a[1] -a $n -eq 1
        case '*'
            return 1
    end
end

complete -c %[1]s -f
complete -c %[1]s -s o -l output -x -a 'table json' -d 'output format'
complete -c %[1]s -l filter -x -d 'only rows matching GLOB'
complete -c %[1]s -l kill-whom -x -a 'all main control' -d 'processes to signal'
complete -c %[1]s -l signal -x -a '(seq 1 31)' -d 'signal number'
`, Prog, strings.ReplaceAll(Prog, "-", "_"))
	for _, o := range options {
		switch o.Long {
		case "output", "filter", "kill-whom", "signal":
			continue
		}
		short := ""
		if o.Short != 0 {
			short = fmt.Sprintf(" -s %c", o.Short)
		}
		fmt.Fprintf(&b, "complete -c %s%s -l %s\n", Prog, short, o.Long)
	}
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c %s -n 'test (count (__%s_args)) -eq 0' -a %s -d %s\n",
			Prog, strings.ReplaceAll(Prog, "-", "_"), c.name, fishQuote(c.summary))
	}
	fn := strings.ReplaceAll(Prog, "-", "_")
	fmt.Fprintf(&b, `complete -c %[1]s -n '__%[2]s_want nodes' -a '(__%[2]s_words nodes)'
complete -c %[1]s -n '__%[2]s_want units' -a '(__%[2]s_words units (__%[2]s_args)[2])'
complete -c %[1]s -n '__%[2]s_want targets' -a '(__%[2]s_words units (__%[2]s_args)[2] | string match "*.target")'
complete -c %[1]s -n '__%[2]s_want levels' -a '%[3]s'
complete -c %[1]s -n '__%[2]s_want metrics' -a 'enable disable listen'
complete -c %[1]s -n '__%[2]s_want completion' -a 'bash fish nodes units'
`, Prog, fn, strings.Join(LogLevels, " "))
	return b.String()
}

// fishQuote quotes s as one fish word.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
