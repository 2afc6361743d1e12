// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"os"
)

// Start-up errors reported by Agent.Check (texts as upstream logs them).
var (
	ErrNoAgentName      = errors.New("No agent name specified")
	ErrNoControllerHost = errors.New("No controller host specified")
)

// Agent is the validated configuration of bluechi-agent (section
// [bluechi-agent]).
//
// Numeric keys that were explicitly unset (empty value) are 0, booleans
// false and strings "", matching upstream.
type Agent struct {
	NodeName          string // NodeName (host name)
	ControllerHost    string // ControllerHost (127.0.0.1)
	ControllerPort    uint16 // ControllerPort (842); 0 when unset
	ControllerAddress string // ControllerAddress (unset); also set by -a
	// HeartbeatInterval is the agent timer period in ms (1000); <= 0
	// disables heartbeats and periodic reconnects.
	HeartbeatInterval int64
	// ControllerHeartbeatThreshold in ms (2500); <= 0 disables the check.
	ControllerHeartbeatThreshold int64
	// ConnectionRetryCountUntilQuiet (10): failed reconnects before logging
	// is switched to quiet.
	ConnectionRetryCountUntilQuiet int64
	Log                            Logging // LogLevel (INFO), LogTarget (journald), LogIsQuiet (false)
	IPReceiveErrors                bool    // IPReceiveErrors (true)
	KeepAlive                      KeepAlive
	TLS                            TLS // UseTLS (false), TLSCertificate, TLSPrivateKey, TLSCA, TLSServerName (tls.go)
	// User is set by --user: use the session bus and the user systemd
	// instance. It is not a configuration key.
	User bool
	// Settings are the layered raw settings the configuration was built from.
	Settings *Settings
}

// AgentFlags are the agent's command-line overrides (layer 6). nil fields
// were not given.
type AgentFlags struct {
	User     bool    // -u/--user
	Port     *string // -p/--port
	Host     *string // -H/--host
	Address  *string // -a/--address
	Name     *string // -n/--name
	Interval *string // -i/--interval
}

// AgentDefaults returns the built-in defaults of the agent's main section as
// key/value pairs (layer 0). hostname is the default NodeName ("" = unset).
func AgentDefaults(hostname string) [][2]string {
	return append(commonDefaults(), [][2]string{
		{KeyNodeName, hostname},
		{KeyControllerHost, DefaultControllerHost},
		{KeyHeartbeatInterval, itoa(DefaultAgentHeartbeatInterval)},
		{KeyControllerHeartbeatThreshold, itoa(DefaultControllerHeartbeatThreshold)},
		{KeyConnectionRetryCountUntilQuiet, itoa(DefaultConnectionRetryCountUntilQuiet)},
		{KeyControllerPort, itoa(DefaultPort)},
	}...)
}

// LoadAgent reads all configuration layers of bluechi-agent (config.md §2,
// layers 0–5) and validates the result. Errors are *ParseError (syntax),
// *ValueError (joined with errors.Join when several values are invalid) or
// wrapped I/O errors. Apply flags afterwards and call Check before starting.
func LoadAgent(opts Options) (*Agent, error) {
	hostname := opts.Hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	h, err := hostname()
	if err != nil {
		h = ""
	}
	s, err := loadSettings(SectionAgent, AgentDefaults(h), opts)
	if err != nil {
		return nil, err
	}
	return NewAgent(s)
}

// NewAgent validates already layered settings and builds the typed agent
// configuration.
func NewAgent(s *Settings) (*Agent, error) {
	r := &reader{s: s, section: SectionAgent}
	a := &Agent{
		NodeName:                       r.agentNodeName(),
		ControllerHost:                 r.str(KeyControllerHost),
		ControllerPort:                 r.port(KeyControllerPort),
		ControllerAddress:              r.str(KeyControllerAddress),
		HeartbeatInterval:              r.unrestricted(KeyHeartbeatInterval),
		ControllerHeartbeatThreshold:   r.unrestricted(KeyControllerHeartbeatThreshold),
		ConnectionRetryCountUntilQuiet: r.unrestricted(KeyConnectionRetryCountUntilQuiet),
		Log:                            r.logging(),
		IPReceiveErrors:                r.bool(KeyIPReceiveErrors),
		KeepAlive:                      r.keepAlive(),
		TLS:                            r.tls(true),
		Settings:                       s,
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	return a, nil
}

// agentNodeName returns NodeName, checked with CheckNodeName unless it is
// the built-in default (the host name): -n may still replace that one, so
// Check tests it after the flags are applied.
func (r *reader) agentNodeName() string {
	if v, ok := r.lookup(KeyNodeName); ok && v.Source.Origin == OriginDefault {
		return v.Text
	}
	return r.nodeName(KeyNodeName)
}

// SetPort applies -p/--port (overrides ControllerPort). An invalid value
// returns a *ValueError (the daemon exits with status 1).
func (a *Agent) SetPort(s string) error {
	p, err := ParsePort(s)
	if err != nil {
		return &ValueError{Key: KeyControllerPort, Value: s, Source: Source{Origin: OriginCommandLine}, Err: err}
	}
	a.ControllerPort = p
	return nil
}

// SetHost applies -H/--host (overrides ControllerHost).
func (a *Agent) SetHost(s string) { a.ControllerHost = s }

// SetAddress applies -a/--address. It is treated exactly like a configured
// ControllerAddress, i.e. it is used for every connection attempt and beats
// host/port.
func (a *Agent) SetAddress(s string) { a.ControllerAddress = s }

// SetName applies -n/--name (overrides NodeName). A name that fails
// CheckNodeName returns a *ValueError (the daemon exits with status 1) and
// leaves NodeName as it was; the empty name is left to Check.
func (a *Agent) SetName(s string) error {
	if err := CheckNodeName(s); err != nil {
		return &ValueError{Key: KeyNodeName, Value: s, Source: Source{Origin: OriginCommandLine}, Err: err}
	}
	a.NodeName = s
	return nil
}

// SetHeartbeatInterval applies -i/--interval (milliseconds). An invalid
// value returns a *ValueError (the daemon exits with status 1).
func (a *Agent) SetHeartbeatInterval(s string) error {
	n, err := ParseLong(s)
	if err != nil {
		return &ValueError{Key: KeyHeartbeatInterval, Value: s, Source: Source{Origin: OriginCommandLine}, Err: err}
	}
	a.HeartbeatInterval = n
	return nil
}

// ApplyFlags applies the command-line overrides in upstream order: --user,
// port, host, address, name, interval. It stops at the first invalid value.
func (a *Agent) ApplyFlags(f AgentFlags) error {
	a.User = f.User
	if f.Port != nil {
		if err := a.SetPort(*f.Port); err != nil {
			return err
		}
	}
	if f.Host != nil {
		a.SetHost(*f.Host)
	}
	if f.Address != nil {
		a.SetAddress(*f.Address)
	}
	if f.Name != nil {
		if err := a.SetName(*f.Name); err != nil {
			return err
		}
	}
	if f.Interval != nil {
		if err := a.SetHeartbeatInterval(*f.Interval); err != nil {
			return err
		}
	}
	return nil
}

// Check performs the start-up checks that upstream does after flags were
// applied: a node name is required (ErrNoAgentName), and without a
// controller address a controller host is required (ErrNoControllerHost).
// A node name that fails CheckNodeName (only the host name default can get
// this far) is a *ValueError.
func (a *Agent) Check() error {
	if a.NodeName == "" {
		return ErrNoAgentName
	}
	if err := CheckNodeName(a.NodeName); err != nil {
		var src Source
		if a.Settings != nil {
			if v, ok := a.Settings.Lookup(SectionAgent, KeyNodeName); ok && v.Text == a.NodeName {
				src = v.Source
				if src.Origin == OriginDefault {
					src.Origin += " (host name)"
				}
			}
		}
		return &ValueError{Key: KeyNodeName, Value: a.NodeName, Source: src, Err: err}
	}
	if a.ControllerAddress == "" && a.ControllerHost == "" {
		return ErrNoControllerHost
	}
	return nil
}

// Render returns the effective configuration (including flag overrides) as
// a "[bluechi-agent]" header and "key=value" lines in the key order of
// config.md §4.
func (a *Agent) Render() string {
	var w renderer
	w.section(SectionAgent)
	w.kv(KeyNodeName, a.NodeName)
	w.kv(KeyControllerHost, a.ControllerHost)
	w.kv(KeyControllerPort, a.ControllerPort)
	w.kv(KeyControllerAddress, a.ControllerAddress)
	w.kv(KeyHeartbeatInterval, a.HeartbeatInterval)
	w.kv(KeyControllerHeartbeatThreshold, a.ControllerHeartbeatThreshold)
	w.kv(KeyConnectionRetryCountUntilQuiet, a.ConnectionRetryCountUntilQuiet)
	w.common(a.Log, a.IPReceiveErrors, a.KeepAlive)
	serverName := a.TLSServerName()
	w.tls(a.TLS, &serverName)
	return w.b.String()
}

// ControllerHeartbeatThresholdExplicit reports whether the threshold was set
// by a configuration file or the environment rather than being the built-in
// default (the agent arms an explicit threshold at once, the default one
// only after the controller's first heartbeat).
func (a *Agent) ControllerHeartbeatThresholdExplicit() bool {
	if a.Settings == nil {
		return false
	}
	v, ok := a.Settings.Lookup(SectionAgent, KeyControllerHeartbeatThreshold)
	return ok && v.Source.Origin != OriginDefault
}
