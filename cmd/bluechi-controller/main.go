// SPDX-License-Identifier: Apache-2.0

// Command bluechi-controller serves the org.eclipse.bluechi API and accepts
// bluechi-agent connections from the configured nodes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/memtrim"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
	"github.com/bluechi-go/bluechi/internal/tlslink"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/version"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

const prog = "bluechi-controller"

var options = []cliopt.Option{
	{Short: 'h', Long: "help"},
	{Short: 'v', Long: "version"},
	{Short: 'p', Long: "port", HasArg: true},
	{Short: 'c', Long: "config", HasArg: true},
	{Short: 'u', Long: "user"},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %s [OPTIONS]

Options:
  -h, --help           print this help and exit
  -v, --version        print the version and exit
  -p, --port PORT      TCP port to listen on for agents (overrides ControllerPort)
  -c, --config FILE    configuration file with the highest precedence
  -u, --user           serve the API on the session bus instead of the system bus
`, prog)
}

func main() {
	memtrim.SmallHeap()
	memtrim.OneProcessor()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	r, code, done := cliopt.Daemon(prog, version.Version, options, args, usage, stdout, stderr)
	if done {
		return code
	}
	cfgFile, _ := r.Value("config")
	cfg, err := config.LoadController(config.Options{Locations: config.ControllerLocations(), ConfigFile: cfgFile, Getenv: os.Getenv})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	var flags config.ControllerFlags
	if p, ok := r.Value("port"); ok {
		flags.Port = &p
	}
	if err := cfg.ApplyFlags(flags); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	log, err := logging.New(logging.Options{Level: cfg.Log.Level, Target: cfg.Log.Target, Quiet: cfg.Log.IsQuiet, Program: prog})
	if err != nil {
		log, _ = logging.New(logging.Options{Quiet: cfg.Log.IsQuiet, Program: prog})
	}
	log.DebugLines("configuration: ", cfg.Render())
	var tlsH *tlsconfig.Holder
	if cfg.TLS.Use {
		if tlsH, err = tlslink.Load(cfg.TLS, log.Slog()); err != nil {
			log.Error("exiting on a fatal error", logging.Err(err))
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return 1
		}
	}
	if err := serve(cfg, r.Has("user"), log, tlsH); err != nil {
		// One record: the log target (journal or stderr) has it, unless
		// logging is quiet. (On stderr too, a service's journal would
		// show it twice, the second time at info.)
		log.Error("exiting on a fatal error", logging.Err(err))
		if log.Quiet() {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		}
		return 1
	}
	return 0
}

func serve(cfg *config.Controller, user bool, log *logging.Logger, tlsH *tlsconfig.Holder) error {
	// The bus connection is ours end to end (internal/wireconn): its
	// object server takes every call in wire order, and monitor signals
	// are written with internal/wire.
	address := busconn.SystemBusAddress()
	if user {
		var err error
		if address, err = busconn.SessionBusAddress(); err != nil {
			return err
		}
	}
	api := dbusrt.NewServer()
	bus, err := busconn.Dial(context.Background(), address, wireconn.Options{MethodCall: api.ServeWire})
	if err != nil {
		return err
	}
	defer bus.Close()
	api.BindWire(bus.Wire())
	ctrl, err := controller.New(cfg, api, bus, log)
	if err != nil {
		return err
	}
	// The objects exist before any client can find them by name.
	if err := bus.RequestName(context.Background(), bluechi.ControllerBusName); err != nil {
		return err
	}
	listeners, ownUDS, err := listen(cfg, log, tlsH)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Go(func() {
			if err := ctrl.Serve(ctx, l); err != nil {
				log.Error("listener stopped", logging.Err(err))
			}
		})
	}
	wg.Go(func() { ctrl.Heartbeats(ctx) })
	daemon.SdNotify(false, daemon.SdNotifyReady)
	memtrim.Start(ctx, func(err error) {
		log.Debug("executable pages stay faulted in around each touch", logging.Err(err))
	})
	log.Info("controller started", logging.Attr{Key: "nodes", Value: logValue(len(cfg.Nodes))})

	if tlsH != nil {
		// The daily expiry warnings; the goroutine ends with ctx.
		wg.Go(tlslink.WatchExpiry(ctx, tlsH, 0, log.Slog()))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// SIGHUP reloads the TLS files (certificate rotation). It is taken
	// with TLS off too, where there is nothing to reload, so that
	// systemctl reload (ExecReload sends SIGHUP) never ends the controller.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for running := true; running; {
		select {
		case <-hup:
			if tlsH == nil {
				log.Info("SIGHUP: nothing to reload (UseTLS is off)")
				continue
			}
			tlslink.Reload(tlsH, log.Slog())
		case s := <-sig:
			log.Info("shutting down", logging.Attr{Key: "signal", Value: logValue(s.String())})
			running = false
		case <-bus.Done():
			cancel()
			ctrl.Close()
			wg.Wait()
			return fmt.Errorf("lost the connection to the bus at %s", address)
		}
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	ctrl.Close()
	cancel()
	wg.Wait()
	if ownUDS {
		os.Remove(config.DefaultUnixSocketPath)
	}
	return nil
}

// sameFile reports whether paths a and b name the same file, also through
// a symbolic link (/var/run is one to /run).
func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// listen opens the TCP and unix listeners and takes a socket-activated one.
// ownUDS reports whether it bound the unix socket path itself (and so
// removes it at shutdown).
func listen(cfg *config.Controller, log *logging.Logger, tlsH *tlsconfig.Holder) ([]net.Listener, bool, error) {
	opts := transport.SocketOptions{
		KeepAliveTime: secs(cfg.KeepAlive.Time), KeepAliveInterval: secs(cfg.KeepAlive.Interval),
		KeepAliveCount: int(cfg.KeepAlive.Count), IPReceiveErrors: cfg.IPReceiveErrors,
	}
	var out []net.Listener
	activated, err := transport.ActivatedListeners()
	if err != nil {
		return nil, false, err
	}
	if len(activated) > 1 {
		return nil, false, fmt.Errorf("socket activation: %d sockets passed, at most 1 supported", len(activated))
	}
	for _, l := range activated {
		out = append(out, transport.NewListener(l, opts))
	}
	if cfg.UseTCP {
		l, err := transport.Listen("tcp", fmt.Sprintf(":%d", cfg.Port), opts)
		if err != nil {
			// Only the passed socket holding this very port is forgiven
			// (config.md §3.2); any other failure is fatal.
			if !errors.Is(err, syscall.EADDRINUSE) || !slices.ContainsFunc(activated, func(a net.Listener) bool {
				ta, ok := a.Addr().(*net.TCPAddr)
				return ok && ta.Port == int(cfg.Port)
			}) {
				return nil, false, err
			}
			log.Warn("TCP listener not opened: the socket-activated listener holds the port", logging.Err(err))
		} else {
			out = append(out, l)
		}
	}
	ownUDS := false // whether the unix socket path was bound here
	switch {
	case !cfg.UseUDS:
	case slices.ContainsFunc(activated, func(l net.Listener) bool {
		return l.Addr().Network() == "unix" && sameFile(l.Addr().String(), config.DefaultUnixSocketPath)
	}):
		// systemd serves the path and passed it on: not ours to bind or
		// remove. The usual set-up (bluechi-controller.socket), so no warning.
		log.Info("unix socket path served by the socket-activated listener",
			logging.Attr{Key: "path", Value: logValue(config.DefaultUnixSocketPath)})
	default:
		// A passed socket at this path was handled above: a failure here
		// is fatal, whatever else systemd passed (config.md §3.2).
		l, err := transport.Listen("unix", config.DefaultUnixSocketPath, opts)
		if err != nil {
			return nil, false, err
		}
		out = append(out, l)
		ownUDS = true
	}
	if len(out) == 0 {
		return nil, false, errors.New("No connection request handler configured")
	}
	if tlsH != nil {
		// TCP is TLS only; the unix socket stays plain.
		for i, l := range out {
			if l.Addr().Network() != "unix" {
				out[i] = tlslink.NewListener(l, tlsH, tlslink.ListenerOptions{
					// As for the connections after the handshake.
					MaxHandshakes:    int(cfg.MaxUnregisteredPeers),
					HandshakeTimeout: min(time.Duration(cfg.RegistrationTimeout)*time.Millisecond, tlslink.DefaultHandshakeTimeout),
					Log:              log.Slog(),
				})
			}
		}
	}
	return out, ownUDS, nil
}

func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

func logValue(v any) slog.Value { return slog.AnyValue(v) }
