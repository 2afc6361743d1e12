// SPDX-License-Identifier: Apache-2.0

package logging

import (
	"log/slog"
	"runtime"
	"time"
)

// maxFieldName is journald's limit on field name length.
const maxFieldName = 64

// reservedFields are set by this package or interpreted by journald and
// journalctl; attributes mapping to one of them get the prefix "ATTR_".
var reservedFields = map[string]bool{
	"MESSAGE": true, "MESSAGE_ID": true, "PRIORITY": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true,
	"ERRNO": true, "TID": true, "DOCUMENTATION": true,
	"SYSLOG_FACILITY": true, "SYSLOG_IDENTIFIER": true, "SYSLOG_PID": true,
	"SYSLOG_TIMESTAMP": true, "SYSLOG_RAW": true,
	"INVOCATION_ID": true, "USER_INVOCATION_ID": true,
	"UNIT": true, "USER_UNIT": true, "OBJECT_PID": true,
}

// journalFieldName maps an attribute key to a valid journal field name:
// upper case, every byte outside [A-Z0-9_] replaced by '_', no leading
// underscore, at most 64 bytes; names that would be empty, start with a
// digit or hit a reserved field are prefixed with "ATTR_".
func journalFieldName(key string) string {
	b := make([]byte, 0, len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		default:
			c = '_'
		}
		if c == '_' && len(b) == 0 {
			continue // leading underscores mark trusted fields
		}
		b = append(b, c)
	}
	name := string(b)
	if name == "" || (name[0] >= '0' && name[0] <= '9') || reservedFields[name] {
		name = "ATTR_" + name
	}
	if len(name) > maxFieldName {
		name = name[:maxFieldName]
	}
	return name
}

// journalEntry builds the MESSAGE and the extra fields of a record. The
// message carries the attributes as key=value text too, so they show up in
// journalctl's default output.
func (h *handler) journalEntry(r slog.Record, data *[]byte) (string, map[string]string) {
	fields := make(map[string]string, 4+len(h.pre)+r.NumAttrs())
	*data = h.appendData(*data, r, fields)
	msg := r.Message
	if len(*data) > 0 {
		msg = msg + " " + string(*data)
	}
	if r.PC != 0 {
		loc := location(r.PC)
		fields["CODE_FILE"] = loc.file
		fields["CODE_LINE"] = loc.line
		fields["CODE_FUNC"] = loc.fn
	}
	if h.st.program != "" {
		fields["SYSLOG_IDENTIFIER"] = h.st.program
	}
	return msg, fields
}

// emitJournal sends r to the journal, or writes it in the stderr-full
// format when the journal is unavailable.
func (h *handler) emitJournal(r slog.Record, data *[]byte) {
	st := h.st
	st.journalOnce.Do(func() { st.journalOK = st.journal.enabled() })
	if !st.journalOK {
		st.warnFallback("journald socket not available, logging to stderr")
		*data = h.appendData(*data, r, nil)
		st.writeLine(r, true, *data)
		return
	}
	msg, fields := h.journalEntry(r, data)
	if err := st.journal.send(msg, journalPriority(r.Level), fields); err != nil {
		st.warnFallback("sending to journald failed, logging to stderr: " + err.Error())
		st.writeLine(r, true, *data)
	}
}

// warnFallback writes a WARN line in the stderr-full format, once per
// Logger tree, regardless of the level.
func (st *state) warnFallback(msg string) {
	if st.warned.Load() || !st.warned.CompareAndSwap(false, true) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:])
	r := slog.NewRecord(time.Now(), LevelWarn, msg, pcs[0])
	st.writeLine(r, true, nil)
}
