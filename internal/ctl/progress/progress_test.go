// SPDX-License-Identifier: Apache-2.0

package progress

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestQuickWaitPrintsNothing(t *testing.T) {
	var b syncBuf
	ind := Start(&b, "waiting", time.Hour, time.Millisecond)
	ind.Stop()
	ind.Stop()
	if b.String() != "" {
		t.Fatalf("%q", b.String())
	}
}

func TestSlowWaitDrawsAndErases(t *testing.T) {
	var b syncBuf
	ind := Start(&b, "Waiting for StartUnit", time.Millisecond, time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.String(), "Waiting") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no frames: %q", b.String())
		}
		time.Sleep(time.Millisecond)
	}
	ind.Stop()
	out := b.String()
	if !strings.HasPrefix(out, "\r\033[K| Waiting for StartUnit (0s)\r\033[K/ Waiting") || !strings.HasSuffix(out, ")\r\033[K") {
		t.Fatalf("%q", out)
	}
	if strings.Contains(out, "\n") {
		t.Fatalf("indicator must stay on one line: %q", out)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a file is no terminal")
	}
}
