// SPDX-License-Identifier: Apache-2.0

package unitname

import (
	"regexp"
	"strings"
	"testing"
)

// nameRule is the rule Check implements, written independently as one
// expression: a prefix of allowed characters (not starting with '@', at
// most one '@'), then a dot and a known unit type.
var nameRule = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|socket|target|device|mount|automount|swap|timer|path|slice|scope)$`)

// FuzzCheck validates arbitrary names. Check must never panic, must agree
// with nameRule and the length limit, and accept a name exactly when
// CheckFile accepts it bare and as the last element of an absolute path.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a.service", "foo@.service", "foo@bar.socket", "@x.service", "a@b@c.service", ".service", "a.", "a.bar",
		"x.y.z.target", "dev-sda1.device", "a\\x2db.mount", "é.service", strings.Repeat("a", 248) + ".service", "/etc/systemd/system/a.service",
		"a/b.service", "", "a b.service", "a.Service"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := Check(name)
		want := len(name) <= MaxLength && nameRule.MatchString(name)
		if (err == nil) != want {
			t.Fatalf("Check(%q) = %v, rule says valid=%v", name, err, want)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("Check(%q): empty error", name)
		}
		if !strings.Contains(name, "/") && (CheckFile(name) == nil) != (err == nil) {
			t.Fatalf("CheckFile(%q) = %v, Check %v", name, CheckFile(name), err)
		}
		if !strings.Contains(name, "/") && !strings.Contains(name, "\x00") && (CheckFile("/etc/systemd/system/"+name) == nil) != (err == nil) {
			t.Fatalf("CheckFile of a path ending in %q = %v, Check %v", name, CheckFile("/etc/systemd/system/"+name), err)
		}
	})
}
