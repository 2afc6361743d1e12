// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// activatedChildEnv makes the test binary act as a socket-activated
// service (see TestActivatedListeners).
const activatedChildEnv = "BLUECHI_TEST_ACTIVATED_CHILD"

func init() {
	if os.Getenv(activatedChildEnv) == "" {
		return
	}
	// Socket-activated child: answer one connection on each passed
	// listener with the variables left after taking them, then exit.
	ls, err := ActivatedListeners()
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(0)
	}
	os.Stdout.WriteString("ready\n")
	left := os.Getenv("LISTEN_PID") + os.Getenv("LISTEN_FDS") + os.Getenv("LISTEN_FDNAMES")
	for _, l := range ls {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Write([]byte("left=" + left + "\n"))
		c.Close()
	}
	os.Exit(0)
}

// startActivated runs the test binary as systemd would start a socket-
// activated service: files from fd 3 on, LISTEN_PID set to its own pid
// (by a shell that execs it), LISTEN_FDS and LISTEN_FDNAMES.
func startActivated(t *testing.T, nfds string, files ...*os.File) *bufio.Reader {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, os.Args[0])
	cmd.Env = append(os.Environ(), activatedChildEnv+"=1", "LISTEN_FDS="+nfds, "LISTEN_FDNAMES=x")
	cmd.ExtraFiles = files
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return bufio.NewReader(out)
}

// TestActivatedListeners: a passed TCP listener is taken and serves, and
// the activation variables are gone afterwards.
func TestActivatedListeners(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := startActivated(t, "1", f)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("child: %q", line)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _ := bufio.NewReader(c).ReadString('\n')
	if got != "left=\n" {
		t.Errorf("child answered %q, want the variables unset", got)
	}
}

// TestActivatedNotAListener: a passed descriptor that is no listening
// socket is refused with its number; LISTEN_PID of another process means
// nothing was passed to us.
func TestActivatedNotAListener(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	out := startActivated(t, "1", r)
	if line, _ := out.ReadString('\n'); !strings.HasPrefix(line, "error socket activation: fd 3") {
		t.Errorf("child: %q", line)
	}
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	if ls, err := ActivatedListeners(); ls != nil || err != nil {
		t.Errorf("LISTEN_PID of another process: %v %v", ls, err)
	}
}
