// SPDX-License-Identifier: Apache-2.0

package controller

import "testing"

func TestSelinuxType(t *testing.T) {
	for context, want := range map[string]string{
		"system_u:system_r:bluechi_agent_t:s0":         "bluechi_agent_t",
		"system_u:system_r:bluechi_agent_t:s0:c1,c2":   "bluechi_agent_t",
		"unconfined_u:unconfined_r:unconfined_t:s0-s0": "unconfined_t",
		"system_u:system_r:init_t":                     "init_t",
		"unconfined":                                   "",
		"":                                             "",
	} {
		if got := selinuxType(context); got != want {
			t.Errorf("selinuxType(%q) = %q, want %q", context, got, want)
		}
	}
}
