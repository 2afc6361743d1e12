// SPDX-License-Identifier: Apache-2.0

// Command bluechi-exporter serves the state of a BlueChi controller as
// Prometheus metrics.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bluechi-go/bluechi/internal/exporter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exporter.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
