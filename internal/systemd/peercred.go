// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// checkPeerUID is the check of systemd's private socket (config.md §4.1),
// made before a byte is sent: it refuses a unix socket whose peer
// (SO_PEERCRED) is neither root nor this process's effective user, as the
// manager is, and any other kind of socket.
func checkPeerUID(nc net.Conn, network string) error {
	sc, ok := nc.(syscall.Conn)
	if network != "unix" || !ok {
		return fmt.Errorf("systemd's private socket must be a unix socket, not %s", network)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("refusing systemd's private socket: served by uid %d (pid %d), want root or uid %d", cred.Uid, cred.Pid, os.Geteuid())
	}
	return nil
}
