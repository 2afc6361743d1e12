// SPDX-License-Identifier: Apache-2.0

package unitname

import "testing"

func TestCheck(t *testing.T) {
	for _, ok := range []string{"a.service", "foo@bar.service", "foo@.service", "sys-kernel.mount", "a:b_c-d\\x2d.timer", "x.target"} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", ".service", "a.nope", "a b.service", "a/b.service", "@a.service", "a@b@c.service", string(make([]byte, 300)) + ".service", "ü.service"} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
	if err := CheckFile("/etc/systemd/system/a.service"); err != nil {
		t.Error(err)
	}
	if CheckFile("/etc/x") == nil {
		t.Error("CheckFile accepted /etc/x")
	}
}
