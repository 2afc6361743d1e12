// SPDX-License-Identifier: Apache-2.0

// Package sysmode runs machines with systemd as PID 1 for end-to-end tests:
// a Debian root made once by debootstrap and cached (EnsureBase), one
// overlayfs copy of it per node, each booted by systemd-nspawn and plugged
// into a bridge inside a network namespace of its own (Network), so the
// nodes have real addresses that nothing outside the test can reach or be
// reached from. The tests of this package install the project into such
// nodes with `make install DESTDIR=...` and drive them as an administrator
// would; see README.md.
//
// Everything needs root. The host needs no systemd: nodes are not
// registered with machined, commands run inside a node through nsenter, and
// its system bus is reachable from the host through a bind-mounted
// /run/dbus.
package sysmode
