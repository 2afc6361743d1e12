// SPDX-License-Identifier: Apache-2.0

// Package syncbuf is an output sink that one goroutine may write while
// others read it: the stdout or log of a process or logger under test.
package syncbuf

import (
	"strings"
	"sync"
)

// Buffer collects what is written to it; its zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder // guarded by mu
}

// Write appends p; it never fails.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
