// SPDX-License-Identifier: Apache-2.0

// Command bluechictl is the administrator's command line for a BlueChi
// cluster: it lists, starts, stops and watches units on the nodes through
// bluechi-controller's D-Bus API.
package main

import (
	"context"
	"os"

	"github.com/bluechi-go/bluechi/internal/ctl/bluechictl"
	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
)

func main() { os.Exit(bluechictl.Main(context.Background(), cmdline.ProcessEnv())) }
