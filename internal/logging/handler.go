// SPDX-License-Identifier: Apache-2.0

package logging

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// timeLayout is upstream's "%Y-%m-%d %H:%M:%S,mmm%z".
const timeLayout = "2006-01-02 15:04:05,000-0700"

// handler implements slog.Handler on top of a shared state.
type handler struct {
	st     *state
	prefix string       // group prefix for record attributes, "a.b."
	pre    []groupedAtt // attributes added by WithAttrs
}

type groupedAtt struct {
	prefix string
	attr   slog.Attr
}

var _ slog.Handler = (*handler)(nil)

// Enabled implements slog.Handler.
func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return h.st.enabled(l)
}

// Handle implements slog.Handler.
func (h *handler) Handle(_ context.Context, r slog.Record) error {
	h.emit(r)
	return nil
}

// WithAttrs implements slog.Handler.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.withAttrs(attrs)
}

func (h *handler) withAttrs(attrs []slog.Attr) *handler {
	pre := make([]groupedAtt, len(h.pre), len(h.pre)+len(attrs))
	copy(pre, h.pre)
	for _, a := range attrs {
		a.Value = a.Value.Resolve()
		pre = append(pre, groupedAtt{prefix: h.prefix, attr: a})
	}
	return &handler{st: h.st, prefix: h.prefix, pre: pre}
}

// WithGroup implements slog.Handler; keys of later attributes are
// qualified as "name.key".
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{st: h.st, prefix: h.prefix + name + ".", pre: h.pre}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// emit writes r to the target.
func (h *handler) emit(r slog.Record) {
	st := h.st
	data := getBuf()
	defer putBuf(data)
	switch st.target {
	case TargetStderr:
		*data = h.appendData(*data, r, nil)
		st.writeLine(r, false, *data)
	case TargetStderrFull:
		*data = h.appendData(*data, r, nil)
		st.writeLine(r, true, *data)
	default:
		h.emitJournal(r, data)
	}
}

// writeLine formats a record in a stderr format and writes it to out.
func (st *state) writeLine(r slog.Record, full bool, data []byte) {
	line := getBuf()
	*line = appendLine(*line, r, full, data)
	st.outMu.Lock()
	_, _ = st.out.Write(*line)
	st.outMu.Unlock()
	putBuf(line)
}

// appendLine appends one stderr or stderr-full line, with newline.
func appendLine(b []byte, r slog.Record, full bool, data []byte) []byte {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = t.Local().AppendFormat(b, timeLayout)
	b = append(b, ' ')
	b = append(b, LevelName(r.Level)...)
	if !full {
		b = append(b, "\t: "...)
		b = appendEscaped(b, r.Message, false)
		if len(data) > 0 {
			b = append(b, ' ')
			b = append(b, data...)
		}
		return append(b, '\n')
	}
	b = append(b, '\t')
	b = append(b, location(r.PC).short...)
	b = append(b, "\tmsg=\""...)
	b = appendEscaped(b, r.Message, true)
	b = append(b, '"')
	if len(data) > 0 {
		b = append(b, ", data=\""...)
		b = appendEscaped(b, string(data), true)
		b = append(b, '"')
	}
	return append(b, '\n')
}

// srcLoc is the resolved source position of a call site.
type srcLoc struct {
	file  string // full path
	line  string // decimal line number
	fn    string // full function name
	short string // "dir/file.go:line pkg.Func", as stderr-full prints it
}

var unknownLoc = &srcLoc{file: "?", line: "0", fn: "?", short: "?:0 ?"}

// maxCachedLocs bounds locCache; call sites beyond it are resolved each time.
const maxCachedLocs = 8192

// locCache maps program counters to positions; there are few call sites,
// and resolving one through runtime.CallersFrames allocates.
var locCache struct {
	sync.RWMutex
	m map[uintptr]*srcLoc
}

// location returns the source position of pc (unknownLoc for 0).
func location(pc uintptr) *srcLoc {
	if pc == 0 {
		return unknownLoc
	}
	locCache.RLock()
	loc := locCache.m[pc]
	locCache.RUnlock()
	if loc != nil {
		return loc
	}
	fs := runtime.CallersFrames([]uintptr{pc})
	f, _ := fs.Next()
	if f.File == "" {
		return unknownLoc
	}
	line := strconv.Itoa(f.Line)
	loc = &srcLoc{file: f.File, line: line, fn: f.Function,
		short: shortFile(f.File) + ":" + line + " " + shortFunc(f.Function)}
	locCache.Lock()
	if locCache.m == nil {
		locCache.m = make(map[uintptr]*srcLoc)
	}
	if len(locCache.m) < maxCachedLocs {
		locCache.m[pc] = loc
	}
	locCache.Unlock()
	return loc
}

// shortFile keeps the last directory and the file name: "logging/logger.go".
func shortFile(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return p
	}
	if j := strings.LastIndexByte(p[:i], '/'); j >= 0 {
		return p[j+1:]
	}
	return p
}

// shortFunc drops the import path: "logging.(*Logger).Info".
func shortFunc(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

// appendData appends the handler's and the record's attributes as
// space-separated key=value pairs. When fields is not nil it also receives
// one journal field per attribute.
func (h *handler) appendData(b []byte, r slog.Record, fields map[string]string) []byte {
	for _, ga := range h.pre {
		b = appendAttr(b, ga.prefix, ga.attr, fields)
	}
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.prefix, a, fields)
		return true
	})
	return b
}

// appendAttr appends one attribute (groups flattened to dotted keys).
func appendAttr(b []byte, prefix string, a slog.Attr, fields map[string]string) []byte {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		if len(attrs) == 0 {
			return b
		}
		if a.Key != "" {
			prefix = prefix + a.Key + "."
		}
		for _, ga := range attrs {
			b = appendAttr(b, prefix, ga, fields)
		}
		return b
	}
	if a.Equal(slog.Attr{}) {
		return b // slog's rule: empty attributes are ignored
	}
	if len(b) > 0 {
		b = append(b, ' ')
	}
	key := a.Key
	if prefix != "" {
		key = prefix + key
	}
	b = appendMaybeQuoted(b, key)
	b = append(b, '=')
	if fields != nil {
		s := valueString(a.Value)
		fields[journalFieldName(key)] = s
		return appendMaybeQuoted(b, s)
	}
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return appendMaybeQuoted(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindTime:
		return v.Time().AppendFormat(b, time.RFC3339Nano)
	default:
		return appendMaybeQuoted(b, valueString(v))
	}
}

// valueString renders a (resolved) attribute value.
func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case []byte:
			return string(x)
		default:
			return fmt.Sprint(x) // also handles error, Stringer and nil
		}
	default:
		return v.String()
	}
}

// needsQuote reports whether a key or value must be quoted to keep
// key=value pairs unambiguous.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f {
			return true
		}
	}
	return false
}

func appendMaybeQuoted(b []byte, s string) []byte {
	if !needsQuote(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	b = appendEscaped(b, s, true)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s with control characters escaped so a record stays
// on one line; with quotes it also escapes '"' and '\\'. Invalid UTF-8 is
// passed through.
func appendEscaped(b []byte, s string, quotes bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			if quotes {
				b = append(b, '\\')
			}
			b = append(b, c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < ' ' || c == 0x7f:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}
