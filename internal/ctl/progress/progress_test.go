// SPDX-License-Identifier: Apache-2.0

package progress

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/syncbuf"
)

func TestQuickWaitPrintsNothing(t *testing.T) {
	var b syncbuf.Buffer
	ind := Start(&b, "waiting", time.Hour, time.Millisecond)
	ind.Stop()
	ind.Stop()
	if b.String() != "" {
		t.Fatalf("%q", b.String())
	}
}

func TestSlowWaitDrawsAndErases(t *testing.T) {
	var b syncbuf.Buffer
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
