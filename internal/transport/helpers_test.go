// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// checkGoroutines fails the test if, once every other cleanup of t has run,
// the number of goroutines does not drop back to what it was when called.
// Call it first in a test so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // poll
		}
	})
}

// testContext is a context that ends with t, or after 10 s.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
