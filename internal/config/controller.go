// SPDX-License-Identifier: Apache-2.0

package config

import (
	"math"
	"strings"
)

// Controller is the validated configuration of bluechi-controller
// (section [bluechi-controller] plus [node NAME] sections).
//
// Numeric keys that were explicitly unset (empty value) are 0, booleans
// false, matching upstream, where an unset key leaves the zero value.
type Controller struct {
	Port                   uint16   // ControllerPort (842); 0 when unset
	UseTCP                 bool     // UseTCP (true)
	UseUDS                 bool     // UseUDS (true)
	AllowedNodeNames       []string // AllowedNodeNames as written (trimmed, deduplicated)
	HeartbeatInterval      int64    // HeartbeatInterval in ms (1000); <= 0 disables
	NodeHeartbeatThreshold int64    // NodeHeartbeatThreshold in ms (2500); <= 0 disables
	// RegistrationTimeout (ms, 10000) closes a peer connection that has
	// not registered this long after it was accepted; 0 disables.
	RegistrationTimeout int64
	// MaxUnregisteredPeers (64) bounds the peer connections that have not
	// registered yet; further ones are closed at once. 0 disables.
	MaxUnregisteredPeers int64
	Log                  Logging // LogLevel (INFO), LogTarget (journald), LogIsQuiet (false)
	IPReceiveErrors      bool    // IPReceiveErrors (true)
	KeepAlive            KeepAlive
	TLS                  TLS // UseTLS (false), TLSCertificate, TLSPrivateKey, TLSCA (tls.go)
	// Nodes are the configured nodes in API order: AllowedNodeNames in the
	// order written, then nodes added by [node NAME] sections with
	// Allowed=true, sorted by section name.
	Nodes []Node
	// Settings are the layered raw settings the configuration was built from.
	Settings *Settings
}

// Node is one configured node of the controller.
type Node struct {
	Name string
	// RequiredSelinuxContext is the SELinux type a peer registering under
	// this name must have ("" = no requirement).
	RequiredSelinuxContext string
	// AllowDependenciesOn lists the nodes this node may create proxies to;
	// empty denies all.
	AllowDependenciesOn []string
}

// ControllerFlags are the controller's command-line overrides (layer 6).
// nil fields were not given.
type ControllerFlags struct {
	Port *string // -p/--port
}

// ControllerDefaults returns the built-in defaults of the controller's main
// section as key/value pairs (layer 0).
func ControllerDefaults() [][2]string {
	return append(commonDefaults(), [][2]string{
		{KeyUseTCP, "true"},
		{KeyUseUDS, "true"},
		{KeyControllerPort, itoa(DefaultPort)},
		{KeyAllowedNodeNames, ""},
		{KeyHeartbeatInterval, itoa(DefaultControllerHeartbeatInterval)},
		{KeyNodeHeartbeatThreshold, itoa(DefaultNodeHeartbeatThreshold)},
		{KeyRegistrationTimeout, itoa(DefaultRegistrationTimeout)},
		{KeyMaxUnregisteredPeers, itoa(DefaultMaxUnregisteredPeers)},
	}...)
}

// LoadController reads all configuration layers of bluechi-controller
// (config.md §2, layers 0–5) and validates the result. Errors are
// *ParseError (syntax), *ValueError (joined with errors.Join when several
// values are invalid) or wrapped I/O errors.
func LoadController(opts Options) (*Controller, error) {
	s, err := loadSettings(SectionController, ControllerDefaults(), opts)
	if err != nil {
		return nil, err
	}
	return NewController(s)
}

// NewController validates already layered settings and builds the typed
// controller configuration.
func NewController(s *Settings) (*Controller, error) {
	r := &reader{s: s, section: SectionController}
	c := &Controller{
		Port:                   r.port(KeyControllerPort),
		UseTCP:                 r.bool(KeyUseTCP),
		UseUDS:                 r.bool(KeyUseUDS),
		AllowedNodeNames:       r.nodeNames(KeyAllowedNodeNames),
		HeartbeatInterval:      r.unrestricted(KeyHeartbeatInterval),
		NodeHeartbeatThreshold: r.unrestricted(KeyNodeHeartbeatThreshold),
		RegistrationTimeout:    r.long(KeyRegistrationTimeout, 0, math.MaxInt32),
		MaxUnregisteredPeers:   r.long(KeyMaxUnregisteredPeers, 0, math.MaxInt32),
		Log:                    r.logging(),
		IPReceiveErrors:        r.bool(KeyIPReceiveErrors),
		KeepAlive:              r.keepAlive(),
		TLS:                    r.tls(false),
		Settings:               s,
	}
	c.Nodes = controllerNodes(r, c.AllowedNodeNames)
	if err := r.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// controllerNodes computes the configured nodes in API order. Node names
// that fail CheckNodeName are recorded as errors on r: the name of a
// [node NAME] section with Allowed=true (at the line of Allowed, which
// made it a node) and AllowDependenciesOn items of configured nodes.
// Sections that do not configure a node are ignored, names included.
func controllerNodes(r *reader, allowed []string) []Node {
	s := r.s
	var nodes []Node
	listed := map[string]bool{}
	for _, name := range allowed {
		listed[name] = true
		nodes = append(nodes, Node{Name: name})
	}
	// Sections() is sorted byte-wise, which is the required order.
	for _, sec := range s.Sections() {
		name, ok := strings.CutPrefix(sec, NodeSectionPrefix)
		if !ok || name == "" || listed[name] {
			continue
		}
		if v, _ := s.Lookup(sec, KeyAllowed); ParseBool(v.Text) {
			if err := CheckNodeName(name); err != nil {
				r.errs = append(r.errs, &ValueError{Key: "section", Value: sec, Source: v.Source, Err: err})
			}
			listed[name] = true
			nodes = append(nodes, Node{Name: name})
		}
	}
	for i := range nodes {
		nr := &reader{s: s, section: NodeSectionPrefix + nodes[i].Name}
		nodes[i].RequiredSelinuxContext = nr.str(KeyRequiredSelinuxContext)
		nodes[i].AllowDependenciesOn = nr.nodeNames(KeyAllowDependenciesOn)
		r.errs = append(r.errs, nr.errs...)
	}
	return nodes
}

// Node returns the configured node called name.
func (c *Controller) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// NodeNames returns the names of the configured nodes in API order.
func (c *Controller) NodeNames() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Name
	}
	return out
}

// SetPort applies -p/--port: it overrides ControllerPort. An invalid value
// returns a *ValueError (the daemon exits with status 1).
func (c *Controller) SetPort(s string) error {
	p, err := ParsePort(s)
	if err != nil {
		return &ValueError{Key: KeyControllerPort, Value: s, Source: Source{Origin: OriginCommandLine}, Err: err}
	}
	c.Port = p
	return nil
}

// ApplyFlags applies the controller's command-line overrides (layer 6).
func (c *Controller) ApplyFlags(f ControllerFlags) error {
	if f.Port != nil {
		return c.SetPort(*f.Port)
	}
	return nil
}

// Render returns the effective configuration (including flag overrides) as
// "[section]" and "key=value" lines in a stable order: the main section in
// the key order of config.md §3, then one [node NAME] section per
// configured node in API order.
func (c *Controller) Render() string {
	var w renderer
	w.section(SectionController)
	w.kv(KeyControllerPort, c.Port)
	w.kv(KeyUseTCP, c.UseTCP)
	w.kv(KeyUseUDS, c.UseUDS)
	w.kv(KeyAllowedNodeNames, strings.Join(c.AllowedNodeNames, ","))
	w.kv(KeyHeartbeatInterval, c.HeartbeatInterval)
	w.kv(KeyNodeHeartbeatThreshold, c.NodeHeartbeatThreshold)
	w.kv(KeyRegistrationTimeout, c.RegistrationTimeout)
	w.kv(KeyMaxUnregisteredPeers, c.MaxUnregisteredPeers)
	w.common(c.Log, c.IPReceiveErrors, c.KeepAlive)
	w.tls(c.TLS, nil)
	for _, n := range c.Nodes {
		w.section(NodeSectionPrefix + n.Name)
		w.kv(KeyAllowed, true)
		w.kv(KeyRequiredSelinuxContext, n.RequiredSelinuxContext)
		w.kv(KeyAllowDependenciesOn, strings.Join(n.AllowDependenciesOn, ","))
	}
	return w.b.String()
}
