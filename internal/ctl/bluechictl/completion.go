// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// BashCompletion returns the bash completion script. It completes commands
// and options itself and asks "bluechictl completion nodes|units NODE" (on
// the same bus as the command line being completed) for node and unit names.
func BashCompletion() string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	var opts []string
	for _, o := range options {
		opts = append(opts, "--"+o.Long)
	}
	return fmt.Sprintf(`# bash completion for %[1]s                               -*- shell-script -*-
# Load with: source <(%[1]s completion bash)

_%[2]s_words() {
    "${COMP_WORDS[0]}" "${_%[2]s_bus[@]}" completion "$@" 2>/dev/null
}

_%[2]s() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local -a args=()
    _%[2]s_bus=()
    local i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -u|--user) _%[2]s_bus=(--user) ;;
            --filter|--kill-whom|--signal|-o|--output) ((i++)) ;;
            -*) ;;
            *) args+=("$w") ;;
        esac
    done
    case "$prev" in
        --kill-whom) COMPREPLY=($(compgen -W "all main control" -- "$cur")); return ;;
        --signal) COMPREPLY=($(compgen -W "$(seq 1 31)" -- "$cur")); return ;;
        -o|--output) COMPREPLY=($(compgen -W "table json" -- "$cur")); return ;;
        --filter) return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "-h -v -u -o -f -w %[3]s" -- "$cur"))
        return
    fi
    if ((${#args[@]} == 0)); then
        COMPREPLY=($(compgen -W "%[4]s" -- "$cur"))
        return
    fi
    local cmd="${args[0]}" n=${#args[@]} words=""
    case "$cmd" in
        start|stop|restart|reload|freeze|thaw|kill|is-enabled|set-property)
            if ((n == 1)); then words=$(_%[2]s_words nodes)
            elif ((n == 2)); then words=$(_%[2]s_words units "${args[1]}"); fi ;;
        status|reset-failed|enable|disable)
            if ((n == 1)); then words=$(_%[2]s_words nodes)
            else words=$(_%[2]s_words units "${args[1]}"); fi ;;
        list-units|list-unit-files|daemon-reload|get-default)
            ((n == 1)) && words=$(_%[2]s_words nodes) ;;
        set-default)
            if ((n == 1)); then words=$(_%[2]s_words nodes)
            elif ((n == 2)); then words=$(_%[2]s_words units "${args[1]}" | grep 'target$'); fi ;;
        monitor)
            if ((n == 1)); then words="'*' $(_%[2]s_words nodes)"
            elif ((n == 2)) && [[ "${args[1]}" != "*" ]]; then words=$(_%[2]s_words units "${args[1]}"); fi ;;
        set-loglevel)
            if ((n == 1)); then words="%[5]s $(_%[2]s_words nodes)"
            elif ((n == 2)); then words="%[5]s"; fi ;;
        metrics) ((n == 1)) && words="enable disable listen" ;;
        completion) ((n == 1)) && words="bash fish nodes units" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -F _%[2]s %[1]s
`, Prog, strings.ReplaceAll(Prog, "-", "_"), strings.Join(opts, " "), strings.Join(names, " "), strings.Join(LogLevels, " "))
}

func runCompletion(a *app) int {
	what := a.args[0]
	switch {
	case what == "bash" && len(a.args) == 1:
		a.printf("%s", BashCompletion())
		return 0
	case what == "fish" && len(a.args) == 1:
		a.printf("%s", FishCompletion())
		return 0
	case what == "nodes" && len(a.args) == 1:
		if a.bus() == nil {
			return 1
		}
		var nodes []bluechi.NodeInfo
		if err := a.call(func(ctx context.Context) (err error) {
			nodes, err = a.controller().ListNodes(ctx)
			return
		}); err != nil {
			a.errorf("Failed to list nodes: %s", dbusrt.ErrorMessage(err))
			return 1
		}
		for _, n := range nodes {
			a.printf("%s\n", n.Name)
		}
		return 0
	case what == "units" && len(a.args) == 2:
		if a.bus() == nil {
			return 1
		}
		node := a.args[1]
		seen := map[string]bool{}
		units, _, err := a.listUnits(node)
		if err == nil {
			for _, u := range units[node] {
				seen[u.Name] = true
			}
			var files map[string][]bluechi.UnitFileInfo
			files, _, err = a.listUnitFiles(node)
			for _, f := range files[node] {
				seen[path.Base(f.Path)] = true
			}
		}
		if err != nil {
			a.errorf("Failed to issue method call: %s", message(err, node))
			return 1
		}
		names := make([]string, 0, len(seen))
		for n := range seen {
			names = append(names, n)
		}
		sort.Strings(names)
		a.printf("%s", strings.Join(append(names, ""), "\n"))
		return 0
	}
	a.errorf("Unknown completion request: %s (expected bash, fish, nodes or units NODE)", strings.Join(a.args, " "))
	a.cmd.usage(a.env.Stderr)
	return 1
}
