// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package memtrim

import "errors"

// NoFaultAround is a Linux feature; elsewhere it does nothing.
func NoFaultAround() error { return errors.ErrUnsupported }
