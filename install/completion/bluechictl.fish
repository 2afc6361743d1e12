# fish completion for bluechictl
# Load with: bluechictl completion fish | source

# The words before the cursor that are arguments (not options or their values).
function __bluechictl_args
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

# Completion words from bluechictl itself, on the bus of the command line.
function __bluechictl_words
    set -l bus
    set -l words (commandline -opc)
    if contains -- -u $words; or contains -- --user $words
        set bus --user
    end
    bluechictl $bus completion $argv 2>/dev/null
end

# Whether the argument under the cursor is of the kind $argv[1].
function __bluechictl_want
    set -l a (__bluechictl_args)
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

complete -c bluechictl -f
complete -c bluechictl -s o -l output -x -a 'table json' -d 'output format'
complete -c bluechictl -l filter -x -d 'only rows matching GLOB'
complete -c bluechictl -l kill-whom -x -a 'all main control' -d 'processes to signal'
complete -c bluechictl -l signal -x -a '(seq 1 31)' -d 'signal number'
complete -c bluechictl -s h -l help
complete -c bluechictl -s v -l version
complete -c bluechictl -s f -l force
complete -c bluechictl -l runtime
complete -c bluechictl -l no-reload
complete -c bluechictl -s w -l watch
complete -c bluechictl -s u -l user
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a help -d 'show this help'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a version -d 'show the version'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a list-units -d 'list the loaded units of every node, or of NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a list-unit-files -d 'list the unit files of every node, or of NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a start -d 'start UNIT on NODE and wait for the result'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a stop -d 'stop UNIT on NODE and wait for the result'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a restart -d 'restart UNIT on NODE and wait for the result'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a reload -d 'reload UNIT on NODE and wait for the result'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a freeze -d 'suspend the processes of UNIT on NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a thaw -d 'resume the processes of a frozen UNIT'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a kill -d 'send a signal to the processes of UNIT'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a reset-failed -d 'reset the failed state of units'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a enable -d 'enable unit files on NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a disable -d 'disable unit files on NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a is-enabled -d 'print the enablement state of a unit file'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a daemon-reload -d 'reload the systemd configuration of NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a set-property -d 'change resource-control properties of UNIT at run time'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a status -d 'show the nodes, or the state of units on NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a monitor -d 'print unit events as they happen'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a metrics -d 'switch job metrics on or off, or print them'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a get-default -d 'print the default target of NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a set-default -d 'set the default target of NODE'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a set-loglevel -d 'set the log level of the controller or of NODE\'s agent'
complete -c bluechictl -n 'test (count (__bluechictl_args)) -eq 0' -a completion -d 'print the bash or fish completion script or completion words'
complete -c bluechictl -n '__bluechictl_want nodes' -a '(__bluechictl_words nodes)'
complete -c bluechictl -n '__bluechictl_want units' -a '(__bluechictl_words units (__bluechictl_args)[2])'
complete -c bluechictl -n '__bluechictl_want targets' -a '(__bluechictl_words units (__bluechictl_args)[2] | string match "*.target")'
complete -c bluechictl -n '__bluechictl_want levels' -a 'DEBUG INFO WARN ERROR'
complete -c bluechictl -n '__bluechictl_want metrics' -a 'enable disable listen'
complete -c bluechictl -n '__bluechictl_want completion' -a 'bash fish nodes units'
