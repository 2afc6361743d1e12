// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"context"
	"errors"
	"time"
)

// ErrNoAnswer is wrapped by Session errors of calls the controller did not
// answer in time (it is hung, or its host overloaded).
var ErrNoAnswer = errors.New("the controller does not answer")

// Bus is the exporter's view of one message-bus connection: everything it
// needs from BlueChi's public API. bluechi.go implements it over D-Bus with
// the generated client; tests use a fake. Nothing else in this package
// knows about D-Bus.
type Bus interface {
	// WatchOwner calls fn with the new unique name (or "" when it left)
	// every time the controller's well-known name changes owner, and
	// returns the owner it has now.
	WatchOwner(ctx context.Context, fn func(owner string)) (string, error)
	// Open subscribes to every signal the exporter uses, with h receiving
	// them, creates a Monitor that watches every unit on every node, and
	// returns the session. Signals may reach h before Open returns.
	Open(ctx context.Context, h Handler) (Session, error)
	// Done is closed when the bus connection is lost.
	Done() <-chan struct{}
	// Close closes the connection.
	Close() error
}

// Session is the controller as seen by one Open: it ends with the
// controller process (a restarted controller needs a new session).
type Session interface {
	// ControllerStatus reads the controller's Status (up, degraded, down).
	ControllerStatus(ctx context.Context) (string, error)
	// Nodes lists the configured nodes with their status and last-seen time.
	Nodes(ctx context.Context) ([]Node, error)
	// LastSeen reads the last registration or heartbeat time of a node
	// (zero when never seen).
	LastSeen(ctx context.Context, node string) (time.Time, error)
	// Job reads the node and type (start, stop, ...) of a job that exists.
	Job(ctx context.Context, job string) (node, jobType string, err error)
	// Units lists the units one node's systemd has loaded.
	Units(ctx context.Context, node string) ([]Unit, error)
	// EnableMetrics switches the controller's metrics signals on; it is no
	// error when they are on already.
	EnableMetrics(ctx context.Context) error
	// Close drops the subscriptions and the Monitor.
	Close() error
}

// Node is one configured node.
type Node struct {
	Name     string
	Status   string // online or offline
	LastSeen time.Time
}

// Unit is one loaded unit with its states.
type Unit struct {
	Name, ActiveState, SubState string
}

// Handler receives the controller's signals of one session, from one
// goroutine and in arrival order; its methods must not block.
type Handler interface {
	ControllerStatusChanged(status string)
	NodeStatusChanged(node, status string)
	JobNew(id uint32, job string)
	JobRemoved(id uint32, job, node, unit, result string)
	// UnitStateChanged and UnitRemoved come from the Monitor; virtual
	// ones are synthesised by BlueChi (unit "*" stands for a whole node).
	UnitStateChanged(node, unit, activeState, subState string, virtual bool)
	UnitRemoved(node, unit string, virtual bool)
	// AgentJob is an AgentJobMetrics signal: the time systemd took for one
	// lifecycle job (method is StartUnit, StopUnit, ...).
	AgentJob(node, unit, method string, d time.Duration)
	// StartUnitJob is a StartUnitJobMetrics signal: the time from the
	// StartUnit call to the end of its job.
	StartUnitJob(node, unit string, d time.Duration)
}

// Dialer opens a bus connection (the system bus, or the session bus).
type Dialer func(ctx context.Context) (Bus, error)
