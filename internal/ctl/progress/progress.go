// SPDX-License-Identifier: Apache-2.0

// Package progress draws a one-line "still waiting" indicator on a terminal
// while a command waits for something slow, and erases it when done.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Indicator is a running indicator; Stop ends it.
type Indicator struct {
	w     io.Writer
	text  string
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	shown bool
}

// Frames are the spinner's images, in order.
const Frames = `|/-\`

// Start shows "<spinner> <text> (<seconds>s)" on w after delay, refreshed
// every tick, rewriting the same line, until Stop.
func Start(w io.Writer, text string, delay, tick time.Duration) *Indicator {
	ind := &Indicator{w: w, text: text, stop: make(chan struct{}), done: make(chan struct{})}
	go ind.run(delay, tick)
	return ind
}

func (ind *Indicator) run(delay, tick time.Duration) {
	defer close(ind.done)
	begin := time.Now()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ind.stop:
		return
	case <-timer.C:
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for frame := 0; ; frame++ {
		ind.mu.Lock()
		fmt.Fprintf(ind.w, "\r\033[K%c %s (%ds)", Frames[frame%len(Frames)], ind.text, int(time.Since(begin).Seconds()))
		ind.shown = true
		ind.mu.Unlock()
		select {
		case <-ind.stop:
			return
		case <-ticker.C:
		}
	}
}

// Stop ends the indicator and erases its line if it was shown. It is safe
// to call more than once.
func (ind *Indicator) Stop() {
	ind.once.Do(func() {
		close(ind.stop)
		<-ind.done
		ind.mu.Lock()
		defer ind.mu.Unlock()
		if ind.shown {
			io.WriteString(ind.w, "\r\033[K")
		}
	})
}
