// SPDX-License-Identifier: Apache-2.0

package logging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// syncBuffer is a goroutine-safe bytes.Buffer that also records each Write.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes []string
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = append(b.writes, string(p))
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Writes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.writes...)
}

func newTest(t testing.TB, o Options) (*Logger, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	o.Out = out
	l, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return l, out
}

// here returns the line number of its caller.
func here() int {
	_, _, line, _ := runtime.Caller(1)
	return line
}

const tsRE = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}`

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Level
	}{{"DEBUG", LevelDebug}, {"INFO", LevelInfo}, {"WARN", LevelWarn}, {"ERROR", LevelError}} {
		got, err := ParseLevel(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, %v", tc.in, got, err)
		}
		if name := LevelName(got); name != tc.in {
			t.Errorf("LevelName(%v) = %q, want %q", got, name, tc.in)
		}
	}
	for _, in := range []string{"", "debug", "Info", "INF", "WARNING", "3", " INFO"} {
		if _, err := ParseLevel(in); !errors.Is(err, ErrInvalidLevel) {
			t.Errorf("ParseLevel(%q) err = %v, want ErrInvalidLevel", in, err)
		}
	}
	for l, want := range map[Level]string{LevelDebug - 4: "DEBUG", LevelInfo - 1: "DEBUG", LevelWarn - 1: "INFO", LevelError - 1: "WARN", LevelError + 10: "ERROR"} {
		if got := LevelName(l); got != want {
			t.Errorf("LevelName(%d) = %q, want %q", l, got, want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"journald": "journald", "JournalD": "journald", "stderr": "stderr",
		"STDERR": "stderr", "stderr-full": "stderr-full", "Stderr-Full": "stderr-full",
	} {
		if got, err := ParseTarget(in); err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "syslog", "stderr_full", "stderrfull", "journal"} {
		if _, err := ParseTarget(in); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("ParseTarget(%q) err = %v, want ErrInvalidTarget", in, err)
		}
	}
}

func TestNewValidation(t *testing.T) {
	if _, err := New(Options{Level: "debug"}); !errors.Is(err, ErrInvalidLevel) {
		t.Errorf("New(level debug) err = %v", err)
	}
	if _, err := New(Options{Target: "console"}); !errors.Is(err, ErrInvalidTarget) {
		t.Errorf("New(target console) err = %v", err)
	}
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Level() != "INFO" || l.Target() != "journald" || l.Quiet() {
		t.Errorf("defaults: level %q target %q quiet %v", l.Level(), l.Target(), l.Quiet())
	}
	l, err = New(Options{Level: "WARN", Target: "STDERR-FULL", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.Level() != "WARN" || l.Target() != "stderr-full" || !l.Quiet() {
		t.Errorf("got level %q target %q quiet %v", l.Level(), l.Target(), l.Quiet())
	}
}

func TestStderrFormat(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr", Level: "DEBUG"})
	node := "node-foo"
	l.Info("Node registered", slog.String("node", node), slog.Int("count", 3))
	l.Debug("plain")
	l.Warn("multi\nline \"quoted\"", slog.String("path", "a b"), slog.String("empty", ""), Err(errors.New("boom")))
	l.Error("err", slog.Bool("ok", false), slog.Duration("d", 1500*time.Millisecond), slog.Float64("f", 0.5))

	want := []string{
		`^` + tsRE + " INFO\t: Node registered node=node-foo count=3\n$",
		`^` + tsRE + " DEBUG\t: plain\n$",
		`^` + tsRE + " WARN\t: " + regexp.QuoteMeta(`multi\nline "quoted" path="a b" empty="" error=boom`) + "\n$",
		`^` + tsRE + " ERROR\t: err ok=false d=1.5s f=0.5\n$",
	}
	checkWrites(t, out.Writes(), want)
}

func checkWrites(t *testing.T, writes, want []string) {
	t.Helper()
	if len(writes) != len(want) {
		t.Fatalf("got %d writes, want %d:\n%s", len(writes), len(want), strings.Join(writes, ""))
	}
	for i, w := range writes {
		if !regexp.MustCompile(want[i]).MatchString(w) {
			t.Errorf("write %d = %q\nwant match %q", i, w, want[i])
		}
	}
}

func TestStderrFullFormat(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr-full"})
	line1 := here() + 1
	l.Info("Started", slog.String("node", "a"), slog.Group("unit", slog.String("name", "x y.service")))
	line2 := here() + 1
	l.With(slog.String("peer", "p1")).Error(`say "hi"`)
	line3 := here() + 1
	l.Warn("no data")

	loc := func(line int) string {
		return regexp.QuoteMeta("logging/logging_test.go:"+strconv.Itoa(line)+" logging.TestStderrFullFormat") + "\t"
	}
	checkWrites(t, out.Writes(), []string{
		`^` + tsRE + " INFO\t" + loc(line1) + regexp.QuoteMeta(`msg="Started", data="node=a unit.name=\"x y.service\""`) + "\n$",
		`^` + tsRE + " ERROR\t" + loc(line2) + regexp.QuoteMeta(`msg="say \"hi\"", data="peer=p1"`) + "\n$",
		`^` + tsRE + " WARN\t" + loc(line3) + regexp.QuoteMeta(`msg="no data"`) + "\n$",
	})
}

func TestTimestampAndHandlerRecord(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr"})
	zone := time.FixedZone("x", -(2*3600 + 30*60))
	r := slog.NewRecord(time.Date(2024, 3, 5, 7, 8, 9, 12_345_678, zone), LevelInfo, "fixed", 0)
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	fz := time.Date(2024, 3, 5, 7, 8, 9, 12_345_678, zone).Local()
	want := fz.Format("2006-01-02 15:04:05") + fmt.Sprintf(",%03d", fz.Nanosecond()/1e6) + fz.Format("-0700") + " INFO\t: fixed\n"
	if got := out.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// The layout itself, independent of the local zone.
	got := string(time.Date(2024, 3, 5, 7, 8, 9, 12_345_678, zone).AppendFormat(nil, timeLayout))
	if got != "2024-03-05 07:08:09,012-0230" {
		t.Errorf("timeLayout gives %q", got)
	}
}

func TestStderrFullNoSource(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr-full"})
	r := slog.NewRecord(time.Now(), LevelWarn, "m", 0)
	_ = l.Handler().Handle(context.Background(), r)
	checkWrites(t, out.Writes(), []string{`^` + tsRE + " WARN\t\\?:0 \\?\tmsg=\"m\"\n$"})
}

func TestLevelFilteringAndSetLevel(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr"})
	l.Debug("d1")
	l.Info("i1")
	if err := l.SetLevel("DEBUG"); err != nil {
		t.Fatal(err)
	}
	if l.Level() != "DEBUG" {
		t.Fatalf("Level() = %q", l.Level())
	}
	l.Debug("d2")
	for _, bad := range []string{"INF", "debug", ""} {
		if err := l.SetLevel(bad); !errors.Is(err, ErrInvalidLevel) {
			t.Errorf("SetLevel(%q) = %v", bad, err)
		}
	}
	if l.Level() != "DEBUG" {
		t.Fatalf("level changed by invalid SetLevel: %q", l.Level())
	}
	child := l.With(slog.String("k", "v"))
	if err := child.SetLevel("ERROR"); err != nil {
		t.Fatal(err)
	}
	if l.Level() != "ERROR" {
		t.Errorf("child SetLevel not shared: %q", l.Level())
	}
	l.Warn("w1")
	l.Error("e1")
	l.Log(LevelError+1, "e2")
	got := out.String()
	for _, s := range []string{"d1", "w1"} {
		if strings.Contains(got, ": "+s) {
			t.Errorf("%s logged although disabled:\n%s", s, got)
		}
	}
	for _, s := range []string{" INFO\t: i1\n", " DEBUG\t: d2\n", " ERROR\t: e1\n", " ERROR\t: e2\n"} {
		if !strings.Contains(got, s) {
			t.Errorf("missing %q in:\n%s", s, got)
		}
	}
	if !l.Enabled(LevelError) || l.Enabled(LevelWarn) {
		t.Error("Enabled does not follow the level")
	}
}

func TestQuiet(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr", Quiet: true, Level: "DEBUG"})
	l.Error("hidden")
	l.Slog().Error("hidden too")
	if l.Enabled(LevelError) {
		t.Error("Enabled while quiet")
	}
	if l.Level() != "DEBUG" {
		t.Errorf("Level() while quiet = %q", l.Level())
	}
	if err := l.SetLevel("INFO"); err != nil {
		t.Fatal(err)
	}
	l.Error("still hidden")
	l.SetQuiet(false)
	l.Debug("debug hidden by INFO")
	l.Info("shown")
	l.SetQuiet(true)
	l.Error("hidden again")
	checkWrites(t, out.Writes(), []string{`^` + tsRE + " INFO\t: shown\n$"})
}

// fakeJournal records journal entries.
type fakeJournal struct {
	mu      sync.Mutex
	avail   bool
	sendErr error
	entries []journalRec
}

type journalRec struct {
	msg    string
	prio   journal.Priority
	fields map[string]string
}

func (f *fakeJournal) backend() *journalBackend {
	return &journalBackend{
		enabled: func() bool { return f.avail },
		send: func(msg string, p journal.Priority, vars map[string]string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.sendErr != nil {
				return f.sendErr
			}
			f.entries = append(f.entries, journalRec{msg, p, vars})
			return nil
		},
	}
}

func TestJournald(t *testing.T) {
	fj := &fakeJournal{avail: true}
	l, out := newTest(t, Options{Level: "DEBUG", Program: "bluechi-controller", journal: fj.backend()})
	line := here() + 1
	l.Info("Registered", slog.String("node", "n1"), slog.String("unit", "a.service"), slog.Int("retry-count", 2))
	l.Debug("d")
	l.Warn("w", slog.Group("job", slog.Uint64("id", 7)))
	l.Error("e", Err(errors.New("bad")))
	l.Slog().WithGroup("g").With("peer", "p").Info("via slog", "x", 1)

	if s := out.String(); s != "" {
		t.Errorf("journald wrote to Out: %q", s)
	}
	if len(fj.entries) != 5 {
		t.Fatalf("got %d entries", len(fj.entries))
	}
	e := fj.entries[0]
	if e.msg != "Registered node=n1 unit=a.service retry-count=2" || e.prio != journal.PriInfo {
		t.Errorf("entry 0: %q prio %d", e.msg, e.prio)
	}
	wantFields := map[string]string{
		"NODE": "n1", "ATTR_UNIT": "a.service", "RETRY_COUNT": "2",
		"CODE_LINE": strconv.Itoa(line), "CODE_FUNC": "github.com/bluechi-go/bluechi/internal/logging.TestJournald",
		"SYSLOG_IDENTIFIER": "bluechi-controller",
	}
	for k, v := range wantFields {
		if e.fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, e.fields[k], v)
		}
	}
	if !strings.HasSuffix(e.fields["CODE_FILE"], "/internal/logging/logging_test.go") {
		t.Errorf("CODE_FILE = %q", e.fields["CODE_FILE"])
	}
	for k := range e.fields {
		if k == "MESSAGE" || k == "PRIORITY" {
			t.Errorf("field %s must be left to journal.Send", k)
		}
	}
	prios := []journal.Priority{journal.PriInfo, journal.PriDebug, journal.PriWarning, journal.PriErr, journal.PriInfo}
	for i, p := range prios {
		if fj.entries[i].prio != p {
			t.Errorf("entry %d prio %d, want %d", i, fj.entries[i].prio, p)
		}
	}
	if e := fj.entries[2]; e.msg != "w job.id=7" || e.fields["JOB_ID"] != "7" {
		t.Errorf("group entry: %q %v", e.msg, e.fields)
	}
	if e := fj.entries[3]; e.msg != "e error=bad" || e.fields["ERROR"] != "bad" {
		t.Errorf("error entry: %q %v", e.msg, e.fields)
	}
	if e := fj.entries[4]; e.msg != "via slog g.peer=p g.x=1" || e.fields["G_PEER"] != "p" || e.fields["G_X"] != "1" ||
		!strings.HasSuffix(e.fields["CODE_FUNC"], ".TestJournald") {
		t.Errorf("slog entry: %q %v", e.msg, e.fields)
	}
}

func TestJournaldFallback(t *testing.T) {
	fj := &fakeJournal{avail: false}
	l, out := newTest(t, Options{journal: fj.backend()})
	l.Debug("not shown")
	l.Info("first", slog.String("node", "n"))
	l.Error("second")
	if len(fj.entries) != 0 {
		t.Errorf("sent %d entries to an unavailable journal", len(fj.entries))
	}
	checkWrites(t, out.Writes(), []string{
		`^` + tsRE + " WARN\t" + `logging/journal.go:\d+ logging.\(\*handler\).emitJournal` + "\tmsg=\"journald socket not available, logging to stderr\"\n$",
		`^` + tsRE + " INFO\t" + `logging/logging_test.go:\d+ logging.TestJournaldFallback` + "\tmsg=\"first\", data=\"node=n\"\n$",
		`^` + tsRE + " ERROR\t" + `logging/logging_test.go:\d+ logging.TestJournaldFallback` + "\tmsg=\"second\"\n$",
	})
	if l.Target() != "journald" {
		t.Errorf("Target() = %q after fallback", l.Target())
	}
}

func TestJournaldQuietFallbackSilent(t *testing.T) {
	fj := &fakeJournal{avail: false}
	l, out := newTest(t, Options{journal: fj.backend(), Quiet: true})
	l.Error("x")
	if s := out.String(); s != "" {
		t.Errorf("quiet logger wrote %q", s)
	}
}

func TestJournaldSendError(t *testing.T) {
	fj := &fakeJournal{avail: true, sendErr: errors.New("ECONNREFUSED")}
	l, out := newTest(t, Options{journal: fj.backend()})
	l.Info("a", slog.Int("n", 1))
	l.Info("b")
	checkWrites(t, out.Writes(), []string{
		`^` + tsRE + " WARN\t.*msg=\"sending to journald failed, logging to stderr: ECONNREFUSED\"\n$",
		`^` + tsRE + " INFO\t.*\tmsg=\"a\", data=\"n=1\"\n$",
		`^` + tsRE + " INFO\t.*\tmsg=\"b\"\n$",
	})
}

// TestSystemJournal uses go-systemd's real journal functions. Without a
// journal socket (the usual case in CI) it checks the fallback path.
func TestSystemJournal(t *testing.T) {
	l, out := newTest(t, Options{Target: "journald", Program: "bluechi-logging-test"})
	l.Debug("bluechi logging test, debug (disabled)")
	l.Info("bluechi logging test entry", slog.String("node", "test"))
	if journal.Enabled() {
		if s := out.String(); s != "" {
			t.Errorf("journal available but wrote to Out: %q", s)
		}
		return
	}
	if s := out.String(); !strings.Contains(s, "journald socket not available") ||
		!strings.Contains(s, `msg="bluechi logging test entry", data="node=test"`) {
		t.Errorf("fallback output: %q", s)
	}
}

func TestJournalFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"node":                  "NODE",
		"Node_Name":             "NODE_NAME",
		"retry-count":           "RETRY_COUNT",
		"job.id":                "JOB_ID",
		"_private":              "PRIVATE",
		"__":                    "ATTR_",
		"":                      "ATTR_",
		"1st":                   "ATTR_1ST",
		"message":               "ATTR_MESSAGE",
		"PRIORITY":              "ATTR_PRIORITY",
		"code_file":             "ATTR_CODE_FILE",
		"syslog_identifier":     "ATTR_SYSLOG_IDENTIFIER",
		"unit":                  "ATTR_UNIT",
		"nœud":                  "N__UD",
		strings.Repeat("a", 80): strings.Repeat("A", 64),
	} {
		got := journalFieldName(in)
		if got != want {
			t.Errorf("journalFieldName(%q) = %q, want %q", in, got, want)
		}
		if len(got) > 64 || got[0] == '_' || (got[0] >= '0' && got[0] <= '9') {
			t.Errorf("journalFieldName(%q) = %q is not a valid field name", in, got)
		}
	}
}

func TestSlogHandler(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr"})
	sl := l.Slog()
	if sl.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("debug enabled at INFO")
	}
	sl.Debug("hidden")
	args := []any{"b", "two words", slog.Group("sub", "c", true), "odd"} // odd count on purpose
	sl.With("a", 1).WithGroup("grp").Info("hello", args...)
	sl.WithGroup("").Info("nogroup", slog.Group("", slog.Int("inl", 5)), slog.Attr{}, slog.Group("empty"))
	checkWrites(t, out.Writes(), []string{
		`^` + tsRE + regexp.QuoteMeta(` INFO	: hello a=1 grp.b="two words" grp.sub.c=true grp.!BADKEY=odd`) + "\n$",
		`^` + tsRE + regexp.QuoteMeta(` INFO	: nogroup inl=5`) + "\n$",
	})
}

type lazy struct{ n *int }

func (z lazy) LogValue() slog.Value { *z.n++; return slog.StringValue("resolved") }

func TestValueKinds(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr"})
	calls := 0
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	l.Info("kinds",
		slog.Any("lazy", lazy{&calls}),
		slog.Any("bytes", []byte("raw")),
		slog.Any("nil", nil),
		slog.Any("slice", []string{"a", "b"}),
		slog.Time("t", ts),
		slog.Int64("neg", -4),
		slog.String("eq", "a=b"),
		slog.String("bs", `c:\d`),
		slog.String("key with space", "v"),
	)
	want := ` INFO	: kinds lazy=resolved bytes=raw nil=<nil> slice="[a b]" t=2024-01-02T03:04:05Z neg=-4 eq="a=b" bs="c:\\d" "key with space"=v` + "\n"
	if got := out.String(); !strings.HasSuffix(got, want) {
		t.Errorf("got %q\nwant suffix %q", got, want)
	}
	if calls != 1 {
		t.Errorf("LogValue called %d times", calls)
	}
	l.Debug("disabled", slog.Any("lazy", lazy{&calls}))
	if calls != 1 {
		t.Error("LogValue called for a disabled record")
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	l.Debug("x")
	l.Info("x")
	l.Warn("x")
	l.Error("x")
	l.Log(LevelError, "x")
	l.SetQuiet(false)
	if err := l.SetLevel("DEBUG"); err != nil {
		t.Error(err)
	}
	if err := l.SetLevel("bad"); err == nil {
		t.Error("nil logger accepted an invalid level")
	}
	if l.With(slog.String("a", "b")) != nil || l.Enabled(LevelError) || !l.Quiet() {
		t.Error("nil logger misbehaves")
	}
	l.Slog().Error("discarded")
	_ = l.Level()
	_ = l.Target()
}

// TestConcurrentLevelChange logs from many goroutines while the level and
// quiet mode change; every Write must be exactly one well-formed line.
func TestConcurrentLevelChange(t *testing.T) {
	for _, target := range []string{"stderr", "stderr-full", "journald"} {
		t.Run(target, func(t *testing.T) {
			fj := &fakeJournal{avail: true}
			l, out := newTest(t, Options{Target: target, journal: fj.backend()})
			const workers, perWorker = 8, 300
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var setter sync.WaitGroup
			setter.Add(1)
			go func() {
				defer setter.Done()
				levels := []string{"DEBUG", "INFO", "WARN", "ERROR", "bogus"}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					err := l.SetLevel(levels[i%len(levels)])
					if (err != nil) != (i%len(levels) == 4) {
						t.Errorf("SetLevel(%s) = %v", levels[i%len(levels)], err)
					}
					l.SetQuiet(i%7 == 0)
					_ = l.Level()
					runtime.Gosched()
				}
			}()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wl := l.With(slog.Int("worker", w))
					sl := l.Slog()
					for i := range perWorker {
						wl.Debug("debug", slog.Int("i", i))
						wl.Info("info", slog.Int("i", i))
						wl.Warn("warn")
						wl.Error("error", slog.String("s", "x y"))
						sl.Info("slog", "i", i)
					}
				}()
			}
			wg.Wait()
			close(stop)
			setter.Wait()
			if err := l.SetLevel("DEBUG"); err != nil {
				t.Fatal(err)
			}
			l.SetQuiet(false)
			l.Debug("final")
			lineRE := regexp.MustCompile(`^` + tsRE + ` (DEBUG|INFO|WARN|ERROR)\t[^\n]*\n$`)
			for _, w := range out.Writes() {
				if !lineRE.MatchString(w) {
					t.Fatalf("malformed write %q", w)
				}
			}
			switch target {
			case "journald":
				fj.mu.Lock()
				last := fj.entries[len(fj.entries)-1]
				fj.mu.Unlock()
				if last.msg != "final" || last.prio != journal.PriDebug {
					t.Errorf("last entry %+v", last)
				}
			default:
				w := out.Writes()
				if !strings.Contains(w[len(w)-1], "final") {
					t.Errorf("last write %q", w[len(w)-1])
				}
			}
		})
	}
}

var sinkName = "node-foo"

func TestDisabledDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	l, _ := newTest(t, Options{Target: "stderr-full", Level: "INFO"})
	wl := l.With(slog.String("peer", "p"))
	err := errors.New("e")
	n := 4242
	allocs := testing.AllocsPerRun(1000, func() {
		wl.Debug("unit state changed", slog.String("node", sinkName), slog.Int("n", n), Err(err),
			slog.Duration("d", time.Duration(n)), slog.Any("x", err))
	})
	if allocs != 0 {
		t.Errorf("disabled Debug allocates %v times", allocs)
	}
	l.SetQuiet(true)
	allocs = testing.AllocsPerRun(1000, func() { l.Error("quiet", slog.String("node", sinkName)) })
	if allocs != 0 {
		t.Errorf("quiet Error allocates %v times", allocs)
	}
}

func benchLogger(b *testing.B, target, level string) *Logger {
	backend := &journalBackend{
		enabled: func() bool { return true },
		send:    func(string, journal.Priority, map[string]string) error { return nil },
	}
	l, err := New(Options{Target: target, Level: level, Out: io.Discard, journal: backend})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkDisabledDebug(b *testing.B) {
	l := benchLogger(b, "stderr-full", "INFO")
	b.ReportAllocs()
	for b.Loop() {
		l.Debug("unit state changed", slog.String("node", sinkName), slog.Int("n", 3))
	}
}

func BenchmarkEnabled(b *testing.B) {
	for _, target := range []string{"stderr", "stderr-full", "journald"} {
		b.Run(target, func(b *testing.B) {
			l := benchLogger(b, target, "DEBUG")
			b.ReportAllocs()
			for b.Loop() {
				l.Info("unit state changed", slog.String("node", sinkName), slog.Int("n", 3))
			}
		})
	}
}

func BenchmarkEnabledParallel(b *testing.B) {
	l := benchLogger(b, "stderr-full", "DEBUG")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Info("unit state changed", slog.String("node", sinkName), slog.Int("n", 3))
		}
	})
}

func TestDebugLines(t *testing.T) {
	l, out := newTest(t, Options{Target: "stderr-full", Level: "DEBUG"})
	line := here() + 1
	l.DebugLines("configuration: ", "[a]\nk=v\n\n[b]\n")
	loc := regexp.QuoteMeta("logging/logging_test.go:"+strconv.Itoa(line)+" logging.TestDebugLines") + "\t"
	var want []string
	for _, m := range []string{"[a]", "k=v", "[b]"} {
		want = append(want, `^`+tsRE+" DEBUG\t"+loc+regexp.QuoteMeta(`msg="configuration: `+m+`"`)+"\n$")
	}
	checkWrites(t, out.Writes(), want)
	l.SetLevel("INFO")
	l.DebugLines("x: ", "y")
	if n := len(out.Writes()); n != 3 {
		t.Errorf("DebugLines at INFO wrote %d records, want none more", n-3)
	}
}
