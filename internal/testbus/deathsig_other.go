// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package testbus

import "os/exec"

// dieWithParent does nothing where the kernel has no parent-death signal.
func dieWithParent(*exec.Cmd) {}
