// SPDX-License-Identifier: Apache-2.0

package isonline

import (
	"testing"
	"time"
)

func TestNeedsLoop(t *testing.T) {
	for _, c := range []struct {
		online  bool
		o       Options
		needed  bool
		comment string
	}{
		{true, Options{}, false, "plain check online"},
		{false, Options{}, false, "plain check offline"},
		{true, Options{Monitor: true}, true, "monitor online"},
		{false, Options{Monitor: true}, false, "monitor offline exits at once"},
		{false, Options{Wait: time.Second}, true, "wait offline"},
		{true, Options{Wait: time.Second}, false, "wait online returns at once"},
		{false, Options{Wait: time.Second, Monitor: true}, true, "wait+monitor offline"},
	} {
		m := &Machine{State: State{HasName: c.online, Connected: c.online}, Options: c.o}
		if m.NeedsLoop() != c.needed {
			t.Errorf("%s: NeedsLoop %v", c.comment, !c.needed)
		}
	}
}

func TestWaitThenOnline(t *testing.T) {
	m := &Machine{Options: Options{Wait: time.Second}}
	if m.OwnerChanged(":1.5") {
		t.Fatal("owner alone is not online")
	}
	if !m.StatusChanged(true) || !m.Online() {
		t.Fatal("waiter ends when online")
	}
	m = &Machine{Options: Options{Wait: time.Second}}
	if !m.TimerFired() || m.Online() {
		t.Fatal("timer ends an unsuccessful wait")
	}
}

func TestMonitor(t *testing.T) {
	m := &Machine{State: State{HasName: true, Connected: true}, Options: Options{Monitor: true, Wait: time.Second}}
	if m.TimerFired() {
		t.Fatal("timer must not end monitoring of an online component")
	}
	if m.StatusChanged(true) {
		t.Fatal("still online")
	}
	if !m.StatusChanged(false) {
		t.Fatal("offline ends monitoring")
	}
	m = &Machine{State: State{HasName: true, Connected: true}, Options: Options{Monitor: true}}
	if !m.OwnerChanged("") || m.Online() {
		t.Fatal("losing the bus name ends monitoring")
	}
}

func TestControllerSwitch(t *testing.T) {
	m := &Machine{State: State{HasName: true, Connected: true}, Options: Options{Monitor: true, SwitchTimeout: 3 * time.Second}}
	if d := m.ControllerAddressChanged(); d != 3*time.Second || !m.Switching {
		t.Fatalf("arm %v", d)
	}
	if m.StatusChanged(false) {
		t.Fatal("the switch's disconnect is ignored")
	}
	if m.Switching {
		t.Fatal("switch flag cleared by the disconnect")
	}
	if m.TimerFired() != true {
		t.Fatal("still offline when the switch timer fires: end")
	}
	// Reconnected in time: the timer does not end monitoring.
	m = &Machine{State: State{HasName: true, Connected: true}, Options: Options{Monitor: true, SwitchTimeout: time.Second}}
	m.ControllerAddressChanged()
	m.StatusChanged(false)
	m.StatusChanged(true)
	if m.TimerFired() {
		t.Fatal("online again")
	}
	if !m.StatusChanged(false) {
		t.Fatal("a later disconnect ends monitoring")
	}
	// Without a switch timeout, an address change changes nothing.
	m = &Machine{State: State{HasName: true, Connected: true}, Options: Options{Monitor: true}}
	if m.ControllerAddressChanged() != 0 || m.Switching {
		t.Fatal("no switch timeout")
	}
}
