// SPDX-License-Identifier: Apache-2.0

// Package scalebench measures the real bluechi-controller binary with many
// simulated agents: one process holds N fake agents, each on its own TCP
// connection doing the agent's side of the internal protocol (SASL,
// Register, a heartbeat every 2 s, ListUnits answered with 20 units), over
// mutual TLS with a certificate per node when the controller has
// UseTLS=yes. The package has no code of its own; its benchmarks are in the
// test files (make bench-scale; the TLS registration storms: make
// bench-tls).
package scalebench
