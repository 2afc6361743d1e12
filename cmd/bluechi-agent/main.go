// SPDX-License-Identifier: Apache-2.0

// Command bluechi-agent runs on every managed node: it connects to
// bluechi-controller, registers the node and executes the controller's
// requests on the local systemd.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/agent"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/memtrim"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
	"github.com/bluechi-go/bluechi/internal/tlslink"
	"github.com/bluechi-go/bluechi/internal/version"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

const prog = "bluechi-agent"

var options = []cliopt.Option{
	{Short: 'h', Long: "help"},
	{Short: 'v', Long: "version"},
	{Short: 'H', Long: "host", HasArg: true},
	{Short: 'p', Long: "port", HasArg: true},
	{Short: 'a', Long: "address", HasArg: true},
	{Short: 'n', Long: "name", HasArg: true},
	{Short: 'i', Long: "interval", HasArg: true},
	{Short: 'c', Long: "config", HasArg: true},
	{Short: 'u', Long: "user"},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %s [OPTIONS]

Options:
  -h, --help             print this help and exit
  -v, --version          print the version and exit
  -H, --host HOST        controller host (overrides ControllerHost)
  -p, --port PORT        controller port (overrides ControllerPort)
  -a, --address ADDR     controller D-Bus address (overrides host and port)
  -n, --name NAME        node name (overrides NodeName)
  -i, --interval MS      heartbeat interval in milliseconds (overrides HeartbeatInterval)
  -c, --config FILE      configuration file with the highest precedence
  -u, --user             use the session bus and the user's systemd instance
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
	cfg, err := config.LoadAgent(config.Options{Locations: config.AgentLocations(), ConfigFile: cfgFile, Getenv: os.Getenv, Hostname: os.Hostname})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	flags := config.AgentFlags{User: r.Has("user")}
	for key, dst := range map[string]**string{"port": &flags.Port, "host": &flags.Host, "address": &flags.Address, "name": &flags.Name, "interval": &flags.Interval} {
		if v, ok := r.Value(key); ok {
			*dst = &v
		}
	}
	if err := cfg.ApplyFlags(flags); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	if err := cfg.Check(); err != nil {
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
	if err := serve(cfg, log, tlsH); err != nil {
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

func busKind(user bool) string {
	if user {
		return "session bus"
	}
	return "system bus"
}

func serve(cfg *config.Agent, log *logging.Logger, tlsH *tlsconfig.Holder) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	address := busconn.SystemBusAddress()
	if cfg.User {
		var err error
		if address, err = busconn.SessionBusAddress(); err != nil {
			return err
		}
	}
	// The bus connection is ours end to end (internal/wireconn), its
	// calls served in wire order. It is dialed while systemd is: each
	// waits on its daemon's answers, and the node is online sooner.
	api := dbusrt.NewServer()
	type dialed struct {
		bus *busconn.Conn
		err error
	}
	busc := make(chan dialed, 1)
	go func() {
		bus, err := busconn.Dial(ctx, address, wireconn.Options{MethodCall: api.ServeWire})
		busc <- dialed{bus, err}
	}()
	sd, err := systemd.Connect(ctx, systemd.Options{System: !cfg.User})
	if err == nil {
		defer sd.Close()
		if err = sd.Subscribe(ctx); err != nil {
			err = fmt.Errorf("subscribe to systemd: %w", err)
		}
	} else {
		err = fmt.Errorf("connect to systemd: %w", err)
	}
	d := <-busc
	if d.err == nil {
		defer d.bus.Close()
	}
	if err != nil {
		return err
	}
	if d.err != nil {
		return d.err
	}
	bus := d.bus
	api.BindWire(bus.Wire())
	a, err := agent.New(cfg, log, sd, api)
	if err != nil {
		return err
	}
	if err := bus.RequestName(ctx, bluechi.AgentBusName); err != nil {
		return err
	}
	if tlsH != nil {
		// TLSServerName as configured; empty: the host dialed.
		a.UseTLS(&tlslink.Dialer{Holder: tlsH, ServerName: cfg.TLS.ServerName})
		waitExpiry := tlslink.WatchExpiry(ctx, tlsH, 0, log.Slog())
		defer func() { cancel(); waitExpiry() }()
	}
	// SIGHUP reloads the TLS files; the next connection uses them. Taken
	// with TLS off too, where there is nothing to reload, so that
	// systemctl reload (ExecReload sends SIGHUP) never ends the agent.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	lost := make(chan error, 1) // why the agent stops other than by a signal
	go func() {
		for {
			select {
			case <-hup:
				if tlsH == nil {
					log.Info("SIGHUP: nothing to reload (UseTLS is off)")
				} else {
					tlslink.Reload(tlsH, log.Slog())
				}
				continue
			case <-sig:
				log.Info("shutting down")
			case <-sd.Done():
				lost <- errors.New("lost the connection to systemd")
			case <-bus.Done():
				lost <- errors.New("lost the connection to the " + busKind(cfg.User))
			}
			break
		}
		cancel()
	}()
	daemon.SdNotify(false, daemon.SdNotifyReady)
	memtrim.Start(ctx, func(err error) {
		log.Debug("executable pages stay faulted in around each touch", logging.Err(err))
	})
	err = a.Run(ctx)
	select {
	case why := <-lost:
		return why // exit status 1, so that Restart=on-failure starts the agent again
	default:
		return err
	}
}
