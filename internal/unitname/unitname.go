// SPDX-License-Identifier: Apache-2.0

// Package unitname validates systemd unit names before they are sent
// anywhere, with the rules systemd applies. Job modes are not checked here:
// they go to systemd unchanged, and systemd validates them.
package unitname

import (
	"fmt"
	"strings"
)

// MaxLength is systemd's limit on unit names.
const MaxLength = 255

var suffixes = map[string]bool{
	"service": true, "socket": true, "target": true, "device": true, "mount": true, "automount": true,
	"swap": true, "timer": true, "path": true, "slice": true, "scope": true,
}

// Check returns an error naming the problem when name is not a valid unit name.
func Check(name string) error {
	if name == "" {
		return fmt.Errorf("empty unit name")
	}
	if len(name) > MaxLength {
		return fmt.Errorf("unit name too long (%d bytes, at most %d)", len(name), MaxLength)
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return fmt.Errorf("invalid unit name %q: no unit type suffix", name)
	}
	if !suffixes[name[dot+1:]] {
		return fmt.Errorf("invalid unit name %q: unknown unit type %q", name, name[dot+1:])
	}
	prefix := name[:dot]
	if strings.Count(prefix, "@") > 1 || strings.HasPrefix(prefix, "@") {
		return fmt.Errorf("invalid unit name %q: misplaced '@'", name)
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\@", c) >= 0
		if !ok {
			return fmt.Errorf("invalid unit name %q: character %q not allowed", name, c)
		}
	}
	return nil
}

// CheckFile accepts a unit name or an absolute path to a unit file.
func CheckFile(f string) error {
	if strings.HasPrefix(f, "/") {
		if len(f) > 4096 || strings.IndexByte(f, 0) >= 0 {
			return fmt.Errorf("invalid unit file path %q", f)
		}
		base := f[strings.LastIndexByte(f, '/')+1:]
		return Check(base)
	}
	return Check(f)
}
