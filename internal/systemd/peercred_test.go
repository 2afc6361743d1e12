// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPrivateSocketOfAnotherUser: a "private socket" served by a process
// of another user (nobody) is refused before anything is sent, with the
// uid in the error. Needs root, as CI runs, to start that process.
func TestPrivateSocketOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test starts a listener as uid 65534 and needs root")
	}
	// Not t.TempDir: its parent is closed to other users.
	dir, err := os.MkdirTemp("", "peercred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "private")
	// The listener reports the bytes it received when the client hangs up.
	script := `import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
data = b""
while True:
    b = c.recv(4096)
    if not b:
        break
    data += b
print("got", len(data), flush=True)
`
	cmd := exec.Command("/usr/bin/python3", "-c", script, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("listener as nobody did not start: %q", lines.Text())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Connect(ctx, Options{Address: "unix:path=" + sock, Private: true})
	if err == nil || !strings.Contains(err.Error(), "uid 65534") {
		t.Fatalf("Connect to a socket of uid 65534: %v", err)
	}
	if !lines.Scan() || lines.Text() != "got 0" {
		t.Fatalf("the refused peer received data: %q", lines.Text())
	}
}
