// SPDX-License-Identifier: Apache-2.0

// Package version holds the version every binary reports.
package version

// Version is the BlueChi version this implementation is compatible with,
// suffixed with the Go implementation's own release.
var Version = "1.3.0-go"
