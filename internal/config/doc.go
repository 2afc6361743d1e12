// SPDX-License-Identifier: Apache-2.0

// Package config reads, layers and validates the configuration of
// bluechi-controller and bluechi-agent (spec: config.md).
//
// The package has three levels:
//
//   - Parse / ParseFile read one INI file with the semantics of the inih
//     parser as configured by upstream BlueChi (continuation lines, inline
//     comments, duplicate keys concatenated, 519-byte line limit, stop at the
//     first error). Every syntax error is a *ParseError whose text is
//     "FILE:LINE: reason".
//   - Settings is the layered key/value store: built-in defaults,
//     distribution file, admin file, drop-ins, environment and the -c file
//     are merged key by key; an empty value unsets a key.
//   - LoadController and LoadAgent build the typed, validated Controller and
//     Agent configurations. Command-line flags are applied afterwards by the
//     caller with Controller.ApplyFlags / Agent.ApplyFlags (or the individual
//     setters), followed by Agent.Check before the agent starts.
//
// Missing distribution file: upstream fails when the layer-1 file
// (/usr/share/bluechi/config/controller.conf or
// /usr/share/bluechi-agent/config/agent.conf) does not exist. This package
// tolerates a missing distribution file because the built-in defaults are
// compiled in and the shipped file only contains comments; any other error
// reading it (permissions, syntax) is still fatal.
package config
