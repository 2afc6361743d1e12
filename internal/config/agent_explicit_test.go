// SPDX-License-Identifier: Apache-2.0

package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestControllerHeartbeatThresholdExplicit(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Locations: Locations{Distribution: filepath.Join(dir, "none"), Admin: filepath.Join(dir, "none"), DropInDir: filepath.Join(dir, "none.d")},
		Getenv: func(string) string { return "" }, Hostname: func() (string, error) { return "h", nil }}
	a, err := LoadAgent(opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.ControllerHeartbeatThresholdExplicit() {
		t.Error("default threshold reported as explicit")
	}
	file := filepath.Join(dir, "agent.conf")
	os.WriteFile(file, []byte("[bluechi-agent]\nControllerHeartbeatThreshold=4000\n"), 0o644)
	opts.ConfigFile = file
	if a, err = LoadAgent(opts); err != nil {
		t.Fatal(err)
	}
	if !a.ControllerHeartbeatThresholdExplicit() || a.ControllerHeartbeatThreshold != 4000 {
		t.Errorf("explicit threshold: %v %d", a.ControllerHeartbeatThresholdExplicit(), a.ControllerHeartbeatThreshold)
	}
}
