// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"errors"
	"sync"
	"time"
)

// Defaults of the controller's keys RegistrationTimeout and
// MaxUnregisteredPeers.
const (
	DefaultRegistrationTimeout  = 10 * time.Second
	DefaultMaxUnregisteredPeers = 64
)

// Errors of Admission.
var (
	// ErrTooManyUnregistered refuses a connection while Max others have
	// not registered yet.
	ErrTooManyUnregistered = errors.New("wireconn: too many unregistered peers")
	// ErrRegistrationTimeout ends a connection that did not register in
	// time.
	ErrRegistrationTimeout = errors.New("wireconn: peer did not register in time")
)

// Admission is the accept loop's policy for peers that have not
// registered: at most Max of them at once, each for at most Timeout. The
// zero value uses the defaults. Its methods are safe for concurrent use.
type Admission struct {
	Max     int           // 0: DefaultMaxUnregisteredPeers
	Timeout time.Duration // 0: DefaultRegistrationTimeout

	mu sync.Mutex
	n  int // admitted connections not registered or closed yet; guarded by mu
}

// Admit takes a slot for c, a new connection that has not registered. It
// fails with ErrTooManyUnregistered when all slots are taken (the caller
// closes c and logs). Otherwise c is closed with ErrRegistrationTimeout
// unless c.MarkRegistered is called within Timeout; the slot is given
// back when c registers or ends.
func (a *Admission) Admit(c *Conn) error {
	max, timeout := a.Max, a.Timeout
	if max <= 0 {
		max = DefaultMaxUnregisteredPeers
	}
	if timeout <= 0 {
		timeout = DefaultRegistrationTimeout
	}
	a.mu.Lock()
	if a.n >= max {
		a.mu.Unlock()
		return ErrTooManyUnregistered
	}
	a.n++
	a.mu.Unlock()
	t := time.AfterFunc(timeout, func() { c.closeWith(ErrRegistrationTimeout) })
	var once sync.Once
	release := func() {
		once.Do(func() {
			t.Stop()
			a.mu.Lock()
			a.n--
			a.mu.Unlock()
		})
	}
	c.mu.Lock()
	done := c.registered || c.ended
	if !done {
		c.release = release
	}
	c.mu.Unlock()
	if done {
		release()
	}
	return nil
}

// Unregistered returns the number of admitted connections that have
// neither registered nor ended.
func (a *Admission) Unregistered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}
