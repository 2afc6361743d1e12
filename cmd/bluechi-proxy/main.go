// SPDX-License-Identifier: Apache-2.0

// Command bluechi-proxy asks the local bluechi-agent to create or remove a
// proxy for a unit on another node; bluechi-proxy@.service runs it.
package main

import (
	"context"
	"os"

	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/ctl/proxy"
)

func main() { os.Exit(proxy.Main(context.Background(), cmdline.ProcessEnv())) }
