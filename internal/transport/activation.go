// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// listenFdsStart is the first file descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFdsStart = 3

// ActivatedListeners returns the listening sockets systemd passed to this
// process (socket activation: fds from 3 on, LISTEN_FDS of them, when
// LISTEN_PID is our pid) and unsets those variables, so that children do
// not take the sockets for theirs. It is what go-systemd's activation
// package does, without linking crypto/tls for TLS listeners we never
// use (1 MB of the controller's binary). A passed descriptor that is not
// a listening socket is an error.
func ActivatedListeners() ([]net.Listener, error) {
	pidEnv, fdsEnv := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if pid, err := strconv.Atoi(pidEnv); err != nil || pid != os.Getpid() {
		return nil, nil // not for us
	}
	if fdsEnv == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(fdsEnv)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socket activation: bad LISTEN_FDS %q", fdsEnv)
	}
	end := listenFdsStart + n
	for fd := listenFdsStart; fd < end; fd++ {
		syscall.CloseOnExec(fd) // none leaks into a child, whatever happens below
	}
	var out []net.Listener
	for fd := listenFdsStart; fd < end; fd++ {
		f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd))
		l, err := net.FileListener(f) // a duplicate of fd
		f.Close()
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			for rest := fd + 1; rest < end; rest++ {
				syscall.Close(rest)
			}
			return nil, fmt.Errorf("socket activation: fd %d: %w", fd, err)
		}
		out = append(out, l)
	}
	return out, nil
}
