// SPDX-License-Identifier: Apache-2.0

package sandbox

// Demo unit files for tests. Names are suggestions; the contents work under
// any name with the given suffix.
const (
	// SimpleServiceName runs SimpleService.
	SimpleServiceName = "sb-simple.service"
	// SimpleService is a long-running service (sleep infinity); its start
	// job ends "done" as soon as the process is forked.
	SimpleService = `[Unit]
Description=Sandbox demo: long-running service

[Service]
Type=simple
ExecStart=/bin/sleep infinity

[Install]
WantedBy=default.target
`

	// OneshotServiceName runs OneshotService.
	OneshotServiceName = "sb-oneshot.service"
	// OneshotService runs /bin/true once; its start job ends "done" and the
	// unit goes back to inactive.
	OneshotService = `[Unit]
Description=Sandbox demo: oneshot service

[Service]
Type=oneshot
ExecStart=/bin/true

[Install]
WantedBy=default.target
`

	// FailingServiceName runs FailingService.
	FailingServiceName = "sb-failing.service"
	// FailingService is a oneshot running /bin/false: its start job ends
	// "failed" and the unit ends in ActiveState "failed".
	FailingService = `[Unit]
Description=Sandbox demo: failing service

[Service]
Type=oneshot
ExecStart=/bin/false
`

	// SlowServiceName runs SlowService.
	SlowServiceName = "sb-slow.service"
	// SlowService takes 2 s to start (ExecStartPre sleeps), then runs
	// forever: its start job stays "running" in the meantime, long enough to
	// observe job state changes or to cancel it.
	SlowService = `[Unit]
Description=Sandbox demo: slow-starting service

[Service]
Type=simple
ExecStartPre=/bin/sleep 2
ExecStart=/bin/sleep infinity
`
)

// DemoUnits returns the demo units by name, ready for Options.Units.
func DemoUnits() map[string]string {
	return map[string]string{
		SimpleServiceName:  SimpleService,
		OneshotServiceName: OneshotService,
		FailingServiceName: FailingService,
		SlowServiceName:    SlowService,
	}
}
