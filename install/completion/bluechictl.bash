# bash completion for bluechictl                               -*- shell-script -*-
# Load with: source <(bluechictl completion bash)

_bluechictl_words() {
    "${COMP_WORDS[0]}" "${_bluechictl_bus[@]}" completion "$@" 2>/dev/null
}

_bluechictl() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local -a args=()
    _bluechictl_bus=()
    local i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -u|--user) _bluechictl_bus=(--user) ;;
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
        COMPREPLY=($(compgen -W "-h -v -u -o -f -w --help --version --filter --force --runtime --no-reload --watch --kill-whom --signal --user --output" -- "$cur"))
        return
    fi
    if ((${#args[@]} == 0)); then
        COMPREPLY=($(compgen -W "help version list-units list-unit-files start stop restart reload freeze thaw kill reset-failed enable disable is-enabled daemon-reload set-property status monitor metrics get-default set-default set-loglevel completion" -- "$cur"))
        return
    fi
    local cmd="${args[0]}" n=${#args[@]} words=""
    case "$cmd" in
        start|stop|restart|reload|freeze|thaw|kill|is-enabled|set-property)
            if ((n == 1)); then words=$(_bluechictl_words nodes)
            elif ((n == 2)); then words=$(_bluechictl_words units "${args[1]}"); fi ;;
        status|reset-failed|enable|disable)
            if ((n == 1)); then words=$(_bluechictl_words nodes)
            else words=$(_bluechictl_words units "${args[1]}"); fi ;;
        list-units|list-unit-files|daemon-reload|get-default)
            ((n == 1)) && words=$(_bluechictl_words nodes) ;;
        set-default)
            if ((n == 1)); then words=$(_bluechictl_words nodes)
            elif ((n == 2)); then words=$(_bluechictl_words units "${args[1]}" | grep 'target$'); fi ;;
        monitor)
            if ((n == 1)); then words="'*' $(_bluechictl_words nodes)"
            elif ((n == 2)) && [[ "${args[1]}" != "*" ]]; then words=$(_bluechictl_words units "${args[1]}"); fi ;;
        set-loglevel)
            if ((n == 1)); then words="DEBUG INFO WARN ERROR $(_bluechictl_words nodes)"
            elif ((n == 2)); then words="DEBUG INFO WARN ERROR"; fi ;;
        metrics) ((n == 1)) && words="enable disable listen" ;;
        completion) ((n == 1)) && words="bash fish nodes units" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -F _bluechictl bluechictl
