// SPDX-License-Identifier: Apache-2.0

// Command bluechi-is-online tells scripts whether the local agent, a node or
// the whole BlueChi system is online, optionally waiting or watching.
package main

import (
	"context"
	"os"

	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/ctl/isonline"
)

func main() { os.Exit(isonline.Main(context.Background(), cmdline.ProcessEnv())) }
