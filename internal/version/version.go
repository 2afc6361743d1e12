// SPDX-License-Identifier: Apache-2.0

// Package version holds the version every binary reports.
package version

// Version is the BlueChi version this implementation is compatible with,
// suffixed with the Go implementation's own release. A package sets its
// own with `make build VERSION=...` (the linker's -X flag), no git needed.
var Version = "1.3.0-go"
