// SPDX-License-Identifier: Apache-2.0

package testbus

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the daemon when the process that
// started it dies. A test process that exits without its cleanups (a fuzz
// worker does) would otherwise leave the daemon running, holding whatever
// descriptors it inherited: a fuzz worker's result pipe, which the fuzz
// coordinator then waits on for ever.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
