// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testGUID = "0123456789abcdef0123456789abcdef"

var testLimits = handshakeLimits{maxLineLength: 64, maxLines: 10}

func TestServerHandshakeTable(t *testing.T) {
	okLine := "OK " + testGUID + "\r\n"
	rej := serverMechanisms + "\r\n"
	tests := []struct {
		name     string
		in       string
		wantOut  string
		wantMech Mechanism
		wantErr  error // nil, ErrHandshake or io.ErrUnexpectedEOF / io.EOF
		wantRest string
	}{
		{
			name:     "upstream C agent",
			in:       "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\nlrest",
			wantOut:  "DATA\r\n" + okLine,
			wantMech: MechanismExternal,
			wantRest: "lrest",
		},
		{
			name:     "upstream C agent on unix socket",
			in:       "\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
			wantOut:  "DATA\r\n" + okLine + "ERROR\r\n",
			wantMech: MechanismExternal,
		},
		{
			name:     "pipelined anonymous client",
			in:       "\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n",
			wantOut:  "DATA\r\n" + okLine,
			wantMech: MechanismAnonymous,
		},
		{
			name:     "external with initial response",
			in:       "\x00AUTH EXTERNAL 31303030\r\nBEGIN\r\n",
			wantOut:  okLine,
			wantMech: MechanismExternal,
		},
		{
			name:     "anonymous with initial response",
			in:       "\x00AUTH ANONYMOUS 7472616365\r\nBEGIN\r\n",
			wantOut:  okLine,
			wantMech: MechanismAnonymous,
		},
		{
			name:     "godbus style probe, bare LF tolerated",
			in:       "\x00AUTH\nAUTH FOO\r\nAUTH ANONYMOUS\r\nDATA\r\nBEGIN\r\n",
			wantOut:  rej + rej + "DATA\r\n" + okLine,
			wantMech: MechanismAnonymous,
		},
		{
			name:     "external uid that is not a number is rejected",
			in:       "\x00AUTH EXTERNAL 726f6f74\r\nAUTH EXTERNAL\r\nDATA 6162\r\nAUTH EXTERNAL 30\r\nBEGIN\r\n",
			wantOut:  rej + "DATA\r\n" + rej + okLine,
			wantMech: MechanismExternal,
		},
		{
			name:     "bad hex is an error, not a rejection",
			in:       "\x00AUTH EXTERNAL zz\r\nAUTH EXTERNAL\r\nDATA zz\r\nDATA\r\nBEGIN\r\n",
			wantOut:  "ERROR\r\nDATA\r\nERROR\r\n" + okLine,
			wantMech: MechanismExternal,
		},
		{
			name:     "cancel and error return to the start",
			in:       "\x00AUTH EXTERNAL\r\nCANCEL\r\nAUTH ANONYMOUS\r\nERROR oops\r\nAUTH EXTERNAL 30\r\nCANCEL\r\nAUTH ANONYMOUS\r\nDATA\r\nBEGIN\r\n",
			wantOut:  "DATA\r\n" + rej + "DATA\r\n" + rej + okLine + rej + "DATA\r\n" + okLine,
			wantMech: MechanismAnonymous,
		},
		{
			name:     "unknown commands get ERROR in every state",
			in:       "\x00HELLO\r\nDATA\r\nAUTH EXTERNAL\r\nAUTH ANONYMOUS\r\nDATA\r\nFOO\r\nBEGIN\r\n",
			wantOut:  "ERROR\r\nERROR\r\nDATA\r\nERROR\r\n" + okLine + "ERROR\r\n",
			wantMech: MechanismExternal,
		},
		{
			name:    "missing NUL byte",
			in:      "AUTH EXTERNAL\r\n",
			wantErr: ErrHandshake,
		},
		{
			name:    "BEGIN before OK",
			in:      "\x00AUTH EXTERNAL\r\nBEGIN\r\n",
			wantOut: "DATA\r\n",
			wantErr: ErrHandshake,
		},
		{
			name:    "overlong line",
			in:      "\x00AUTH EXTERNAL " + strings.Repeat("3", 100) + "\r\n",
			wantErr: ErrHandshake,
		},
		{
			name:    "overlong line without newline",
			in:      "\x00" + strings.Repeat("x", 10000),
			wantErr: ErrHandshake,
		},
		{
			name:    "too many lines",
			in:      "\x00" + strings.Repeat("AUTH\r\n", 20),
			wantOut: strings.Repeat(rej, 10),
			wantErr: ErrHandshake,
		},
		{
			name:    "eof in the middle of a line",
			in:      "\x00AUTH EXTERNAL\r\nDA",
			wantOut: "DATA\r\n",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "eof before the NUL byte",
			in:      "",
			wantErr: io.EOF,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
			var out bytes.Buffer
			mech, err := serverHandshake(r, &out, testGUID, testLimits)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("serverHandshake: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("serverHandshake error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantOut, out.String()); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			if mech != tc.wantMech {
				t.Errorf("mechanism = %q, want %q", mech, tc.wantMech)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tc.wantRest {
				t.Errorf("bytes after BEGIN = %q, want %q", rest, tc.wantRest)
			}
		})
	}
}

// countingWriter records the writes it gets.
type countingWriter struct{ writes []string }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestServerHandshakeBatchesPipelinedReplies(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"))
	var w countingWriter
	if _, err := serverHandshake(r, &w, testGUID, testLimits); err != nil {
		t.Fatal(err)
	}
	want := []string{"DATA\r\nOK " + testGUID + "\r\nERROR\r\n"}
	if diff := cmp.Diff(want, w.writes); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

func TestClientHandshake(t *testing.T) {
	tests := []struct {
		name      string
		mech      Mechanism
		uid       string
		replies   string
		wantSent  string
		wantGUID  string
		wantErr   bool
		wantRest  string
		sentCheck bool
	}{
		{
			name:     "anonymous against sd-bus: DATA then OK",
			replies:  "DATA\r\nOK " + testGUID + "\r\nlmsg",
			wantSent: "\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n",
			wantGUID: testGUID,
			wantRest: "lmsg",
		},
		{
			name:     "anonymous, OK only",
			mech:     MechanismAnonymous,
			replies:  "OK " + testGUID + "\r\n",
			wantSent: "\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n",
			wantGUID: testGUID,
		},
		{
			name:     "external",
			mech:     MechanismExternal,
			uid:      "1000",
			replies:  "OK " + testGUID + "\r\n",
			wantSent: "\x00AUTH EXTERNAL 31303030\r\nBEGIN\r\n",
			wantGUID: testGUID,
		},
		{name: "rejected", replies: "REJECTED EXTERNAL\r\n", wantErr: true},
		{name: "error", replies: "ERROR\r\n", wantErr: true},
		{name: "bad guid", replies: "OK 12\r\n", wantErr: true},
		{name: "garbage", replies: "HTTP/1.1 400 Bad Request\r\n", wantErr: true},
		{name: "eof", replies: "DATA\r\n", wantErr: true},
		{name: "external without uid", mech: MechanismExternal, wantErr: true},
		{name: "external with name", mech: MechanismExternal, uid: "root", wantErr: true},
		{name: "unknown mechanism", mech: "DBUS_COOKIE_SHA1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.replies))
			var w countingWriter
			guid, err := clientHandshake(r, &w, tc.mech, tc.uid, testLimits)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("clientHandshake succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatalf("clientHandshake: %v", err)
			}
			if guid != tc.wantGUID {
				t.Errorf("guid = %q, want %q", guid, tc.wantGUID)
			}
			if diff := cmp.Diff([]string{tc.wantSent}, w.writes); diff != "" {
				t.Errorf("writes (-want +got), must be exactly one:\n%s", diff)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tc.wantRest {
				t.Errorf("bytes after OK = %q, want %q", rest, tc.wantRest)
			}
		})
	}
}

func TestNewGUID(t *testing.T) {
	a, err := newGUID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := newGUID()
	if err != nil {
		t.Fatal(err)
	}
	if !validGUID(a) || a != strings.ToLower(a) || a == b {
		t.Errorf("newGUID gave %q and %q", a, b)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in          string
		wantNetwork []string
		wantAddr    []string
		wantErr     bool
	}{
		{in: "tcp:host=10.0.0.1,port=842", wantNetwork: []string{"tcp"}, wantAddr: []string{"10.0.0.1:842"}},
		{in: "tcp:host=::1,port=842", wantNetwork: []string{"tcp"}, wantAddr: []string{"[::1]:842"}},
		{in: "tcp:host=localhost,port=842,family=ipv6", wantNetwork: []string{"tcp6"}, wantAddr: []string{"localhost:842"}},
		{in: "tcp:host=localhost,port=842,family=ipv4", wantNetwork: []string{"tcp4"}, wantAddr: []string{"localhost:842"}},
		{in: "unix:path=/run/bluechi/bluechi.sock", wantNetwork: []string{"unix"}, wantAddr: []string{"/run/bluechi/bluechi.sock"}},
		{in: "unix:path=/tmp/a%20b%2cc", wantNetwork: []string{"unix"}, wantAddr: []string{"/tmp/a b,c"}},
		{in: "unix:abstract=bluechi", wantNetwork: []string{"unix"}, wantAddr: []string{"@bluechi"}},
		{
			in:          "unix:path=/x;tcp:host=h,port=1,guid=" + testGUID + ";",
			wantNetwork: []string{"unix", "tcp"},
			wantAddr:    []string{"/x", "h:1"},
		},
		{in: "", wantErr: true},
		{in: "tcp", wantErr: true},
		{in: "tcp:host=h", wantErr: true},
		{in: "tcp:port=1", wantErr: true},
		{in: "tcp:host=h,port=1,family=ipx", wantErr: true},
		{in: "tcp:host=h,host=i,port=1", wantErr: true},
		{in: "tcp:host", wantErr: true},
		{in: "unix:path=%2", wantErr: true},
		{in: "unix:path=%zz", wantErr: true},
		{in: "unix:", wantErr: true},
		{in: "unix:path=/a,abstract=b", wantErr: true},
		{in: "launchd:env=X", wantErr: true},
	}
	for _, tc := range tests {
		addrs, err := ParseAddress(tc.in)
		var nets, hosts []string
		for _, a := range addrs {
			if err != nil {
				break
			}
			var n, h string
			n, h, err = a.Network()
			nets, hosts = append(nets, n), append(hosts, h)
		}
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: no error, got %v %v", tc.in, nets, hosts)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.wantNetwork, nets); diff != "" {
			t.Errorf("%q networks (-want +got):\n%s", tc.in, diff)
		}
		if diff := cmp.Diff(tc.wantAddr, hosts); diff != "" {
			t.Errorf("%q addresses (-want +got):\n%s", tc.in, diff)
		}
	}
}
