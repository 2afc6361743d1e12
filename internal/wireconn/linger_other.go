// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package wireconn

import (
	"net"
	"time"
)

// awaitAcked is a no-op where the send queue cannot be asked for.
func awaitAcked(net.Conn, time.Time) {}

// discardInput is a no-op here.
func discardInput(net.Conn) {}
