// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzServerHandshake runs the server half of the SASL exchange on
// arbitrary client bytes, read through a small buffer so lines cross buffer
// boundaries. It must never panic or read past BEGIN; every reply is one of
// the four lines the server speaks, at most one per client line; a success
// names a mechanism the server offers and follows a BEGIN line.
func FuzzServerHandshake(f *testing.F) {
	for _, s := range []string{
		"\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\nlrest",
		"\x00AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
		"\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n",
		"\x00AUTH EXTERNAL 31303030\r\nBEGIN\r\n",
		"\x00AUTH\nAUTH FOO\r\nAUTH ANONYMOUS\r\nDATA\r\nBEGIN\r\n",
		"\x00AUTH EXTERNAL zz\r\nAUTH EXTERNAL\r\nDATA zz\r\nDATA\r\nBEGIN\r\n",
		"\x00AUTH EXTERNAL\r\nCANCEL\r\nAUTH ANONYMOUS\r\nERROR oops\r\nAUTH EXTERNAL 30\r\nBEGIN\r\n",
		"\x00AUTH EXTERNAL\r\nBEGIN\r\n",
		"\x00" + strings.Repeat("AUTH\r\n", 20),
		"\x00AUTH EXTERNAL\r\nDA",
	} {
		f.Add([]byte(s), uint8(16))
	}
	f.Fuzz(func(t *testing.T, in []byte, bufSize uint8) {
		r := bufio.NewReaderSize(bytes.NewReader(in), int(bufSize)) // at least 16
		var out bytes.Buffer
		mech, err := serverHandshake(r, &out, testGUID, testLimits)
		replies := strings.Split(out.String(), "\r\n")
		if last := replies[len(replies)-1]; last != "" {
			t.Fatalf("reply without CRLF: %q", last)
		}
		replies = replies[:len(replies)-1]
		for _, l := range replies {
			switch l {
			case "DATA", "ERROR", serverMechanisms, "OK " + testGUID:
			default:
				t.Fatalf("unexpected reply %q", l)
			}
		}
		clientLines := bytes.Count(in, []byte{'\n'})
		if len(replies) > clientLines {
			t.Fatalf("%d replies to %d lines", len(replies), clientLines)
		}
		if len(replies) > testLimits.maxLines {
			t.Fatalf("%d replies, more than the %d lines allowed", len(replies), testLimits.maxLines)
		}
		if err != nil {
			if mech != "" {
				t.Fatalf("mechanism %q with error %v", mech, err)
			}
			var want bool
			for _, e := range []error{ErrHandshake, io.EOF, io.ErrUnexpectedEOF} {
				want = want || errors.Is(err, e)
			}
			if !want {
				t.Fatalf("error neither a handshake failure nor an end of input: %v", err)
			}
			return
		}
		if mech != MechanismExternal && mech != MechanismAnonymous {
			t.Fatalf("mechanism %q", mech)
		}
		if len(replies) == 0 || replies[len(replies)-1] != "OK "+testGUID && replies[len(replies)-1] != "ERROR" {
			t.Fatalf("success after replies %q", replies)
		}
		rest, _ := io.ReadAll(r)
		head := in[:len(in)-len(rest)]
		// The last line read is BEGIN (anything after the command is
		// ignored).
		lines := strings.Split(strings.TrimSuffix(string(head), "\n"), "\n")
		if cmd, _, _ := strings.Cut(strings.TrimSuffix(lines[len(lines)-1], "\r"), " "); cmd != "BEGIN" {
			t.Fatalf("success, but the bytes read end in %q", head[max(0, len(head)-16):])
		}
	})
}
