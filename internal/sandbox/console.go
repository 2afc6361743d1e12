// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// console is a pseudo-terminal bound over /dev/console in a node. A user
// manager logs by reopening /dev/console and refuses anything that is not a
// terminal (a file or /dev/null there silences it), so a pty is the only way
// to collect its own messages. What it writes is copied into the node's log.
type console struct {
	master *os.File
	slave  *os.File // kept open: without a slave, reads on the master fail with EIO
	path   string   // /dev/pts/N
	done   chan struct{}
}

func openConsole(log io.Writer) (*console, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	var unlock int32
	if err := ioctl(master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	var n uint32
	if err := ioctl(master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); err != nil {
		master.Close()
		return nil, fmt.Errorf("pty number: %w", err)
	}
	path := fmt.Sprintf("/dev/pts/%d", n)
	slave, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	c := &console{master: master, slave: slave, path: path, done: make(chan struct{})}
	go c.copy(log)
	return c, nil
}

// copy moves the console output into log, dropping the carriage returns the
// terminal adds.
func (c *console) copy(log io.Writer) {
	defer close(c.done)
	buf := make([]byte, 32*1024)
	for {
		n, err := c.master.Read(buf)
		if n > 0 {
			_, _ = log.Write(bytes.ReplaceAll(buf[:n], []byte("\r"), nil))
		}
		if err != nil {
			return
		}
	}
}

// close ends the copy after the node's processes are gone.
func (c *console) close() {
	c.slave.Close()
	c.master.Close()
	<-c.done
}

func ioctl(fd, req, arg uintptr) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg); e != 0 {
		return e
	}
	return nil
}
