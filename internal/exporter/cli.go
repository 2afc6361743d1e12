// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/version"
)

// Prog is the command's name.
const Prog = "bluechi-exporter"

// DefaultPort is the default HTTP port: outside 9100-9999, the range of
// Prometheus's default port allocations, which is fully taken.
const DefaultPort = 8842

var options = []cliopt.Option{
	{Short: 'h', Long: "help"},
	{Short: 'v', Long: "version"},
	{Short: 'u', Long: "user"},
	{Long: "web.listen-address", HasArg: true},
	{Long: "web.telemetry-path", HasArg: true},
	{Long: "units", HasArg: true},
	{Long: "enable-metrics"},
	{Long: "last-seen-interval", HasArg: true},
	{Long: "bus-address", HasArg: true},
	{Long: "log.level", HasArg: true},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %s [OPTIONS]

Serves the state of a BlueChi controller as Prometheus metrics.

Options:
  -h, --help                      print this help and exit
  -v, --version                   print the version and exit
  -u, --user                      follow the controller on the session bus instead of the system bus
      --web.listen-address ADDR   address to serve HTTP on (default 127.0.0.1:%d)
      --web.telemetry-path PATH   path of the metrics (default /metrics)
      --units GLOB                units that get per-unit series (repeatable, or comma-separated; default none)
      --enable-metrics            switch the controller's metrics signals on (for bluechi_agent_job_seconds)
      --last-seen-interval DUR    how often to read the nodes' last-seen time (default 30s; 0: on status changes only)
      --bus-address ADDRESS       D-Bus address of the bus to use instead of the system or session bus
      --log.level LEVEL           debug, info, warn or error (default info)
`, Prog, DefaultPort)
}

// Config is a parsed command line.
type Config struct {
	ListenAddress string
	TelemetryPath string
	User          bool
	BusAddress    string
	Options       Options
}

// ParseArgs parses the command line; done means exit with code.
func ParseArgs(args []string, stdout, stderr io.Writer) (cfg Config, code int, done bool) {
	r, code, done := cliopt.Daemon(Prog, version.Version, options, args, usage, stdout, stderr)
	if done {
		return cfg, code, true
	}
	fail := func(format string, a ...any) (Config, int, bool) {
		fmt.Fprintf(stderr, "%s: %s\n", Prog, fmt.Sprintf(format, a...))
		return cfg, 1, true
	}
	cfg = Config{ListenAddress: fmt.Sprintf("127.0.0.1:%d", DefaultPort), TelemetryPath: "/metrics", User: r.Has("user")}
	cfg.Options.LastSeenInterval = 30 * time.Second
	if v, ok := r.Value("web.listen-address"); ok {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fail("invalid --web.listen-address %q: %v", v, err)
		}
		cfg.ListenAddress = v
	}
	if v, ok := r.Value("web.telemetry-path"); ok {
		if !strings.HasPrefix(v, "/") {
			return fail("invalid --web.telemetry-path %q: must start with /", v)
		}
		cfg.TelemetryPath = v
	}
	for _, v := range r.Set["units"] {
		for _, g := range strings.Split(v, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			if _, err := path.Match(g, ""); err != nil {
				return fail("invalid --units pattern %q: %v", g, err)
			}
			cfg.Options.Units = append(cfg.Options.Units, g)
		}
	}
	cfg.Options.EnableMetrics = r.Has("enable-metrics")
	if v, ok := r.Value("last-seen-interval"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fail("invalid --last-seen-interval %q: want a duration like 30s, or 0", v)
		}
		cfg.Options.LastSeenInterval = d
	}
	cfg.BusAddress, _ = r.Value("bus-address")
	level := slog.LevelInfo
	if v, ok := r.Value("log.level"); ok {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return fail("invalid --log.level %q: want debug, info, warn or error", v)
		}
	}
	cfg.Options.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, 0, false
}

// Main runs the exporter until ctx ends and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, done := ParseArgs(args, stdout, stderr)
	if done {
		return code
	}
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Prog, err)
		return 1
	}
	dial := DialBus(cfg.User)
	if cfg.BusAddress != "" {
		dial = DialAddress(cfg.BusAddress)
	}
	e := New(dial, cfg.Options)
	ll := limitListener(ln, defaultLimits.maxConns)
	srv := newServer(HTTPHandler(e, cfg.TelemetryPath), defaultLimits, ll)
	log := cfg.Options.Logger
	log.Info("serving metrics", "address", ln.Addr().String(), "path", cfg.TelemetryPath, "version", version.Version)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan struct{})
	go func() { e.Run(ctx); close(runDone) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ll) }()
	code = 0
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server failed", "error", err)
			code = 1
		}
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	<-runDone
	return code
}

// HTTPHandler serves the metrics of e at telemetryPath, with Go runtime and
// process metrics, and a small landing page at "/".
func HTTPHandler(e *Exporter, telemetryPath string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(e.Collectors()...)
	mux := http.NewServeMux()
	mux.Handle(telemetryPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(e.log.Handler(), slog.LevelError)}))
	if telemetryPath != "/" {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			p := html.EscapeString(telemetryPath)
			fmt.Fprintf(w, "<html><head><title>BlueChi exporter</title></head><body><h1>BlueChi exporter</h1><p><a href=\"%s\">%s</a></p></body></html>\n", p, p)
		})
	}
	return mux
}
