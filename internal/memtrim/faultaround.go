// SPDX-License-Identifier: Apache-2.0

//go:build linux

package memtrim

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On a read fault in a file mapping, Linux maps not only the page touched
// but the cached pages around it, up to 64 kB ("fault-around"). For a
// daemon's executable that multiplies the resident size: an idle daemon
// touches about 0.9 MB of its text and tables, scattered over the file, and
// fault-around makes 3.2 MB of it resident. The kernel skips fault-around
// in a range registered with a userfaultfd in write-protect mode. With the
// asynchronous write-protect feature (Linux 6.7), such a registration needs
// no handler: nothing in the range is ever write-protected, so the only
// effect is that each page is mapped when it is touched.

// userfaultfd ABI (include/uapi/linux/userfaultfd.h).
const (
	uffdUserModeOnly    = 1          // UFFD_USER_MODE_ONLY: allowed without privileges
	uffdAPI             = 0xAA       // UFFD_API
	uffdFeatureWPAsync  = 1 << 15    // UFFD_FEATURE_WP_ASYNC
	uffdRegisterModeWP  = 1 << 1     // UFFDIO_REGISTER_MODE_WP
	uffdioAPIRequest    = 0xC018AA3F // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegisterReqst = 0xC020AA00 // _IOWR(0xAA, 0x00, struct uffdio_register)
)

type uffdioAPI struct {
	api, features, ioctls uint64
}

type uffdioRegister struct {
	start, len, mode, ioctls uint64
}

var (
	faultAroundOnce sync.Once
	faultAroundErr  error
	faultAroundFD   int // kept open: closing it ends the registration
)

// NoFaultAround turns fault-around off for the running executable's
// read-only mappings (text and tables), so that only the pages the daemon
// touches become resident. It needs Linux 6.7 or later; on older kernels,
// or where userfaultfd is not allowed (seccomp, CONFIG_USERFAULTFD off),
// it returns an error wrapping errors.ErrUnsupported and the daemon runs
// as before. Calls after the first return the first call's result.
func NoFaultAround() error {
	faultAroundOnce.Do(func() { faultAroundErr = noFaultAround() })
	return faultAroundErr
}

func noFaultAround() error {
	ranges, err := executableRanges()
	if err != nil {
		return err
	}
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if errno != 0 {
		return fmt.Errorf("userfaultfd: %w (%w)", errno, errors.ErrUnsupported)
	}
	api := uffdioAPI{api: uffdAPI, features: uffdFeatureWPAsync}
	if err := ioctl(int(fd), uffdioAPIRequest, unsafe.Pointer(&api)); err != nil {
		unix.Close(int(fd))
		return fmt.Errorf("userfaultfd: asynchronous write protection: %w (%w)", err, errors.ErrUnsupported)
	}
	for _, r := range ranges {
		reg := uffdioRegister{start: uint64(r[0]), len: uint64(r[1] - r[0]), mode: uffdRegisterModeWP}
		if err := ioctl(int(fd), uffdioRegisterReqst, unsafe.Pointer(&reg)); err != nil {
			unix.Close(int(fd)) // also ends the registrations made so far
			return fmt.Errorf("userfaultfd: register %#x-%#x: %w", r[0], r[1], err)
		}
	}
	faultAroundFD = int(fd)
	return nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}
