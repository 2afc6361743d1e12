package dbusrt

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

// Match selects signals. Empty fields match anything. Sender is compared only
// when it is a unique name (":1.5"); well-known names are left to the bus.
type Match struct {
	Sender        string
	Path          dbus.ObjectPath
	PathNamespace dbus.ObjectPath
	Interface     string
	Member        string
	Arg0          string
}

func (m *Match) matches(s *dbus.Signal) bool {
	// Unique names are compared; so is the bus itself, which always sends
	// under its own name (anyone could send a unicast NameOwnerChanged).
	// Other well-known names are left to the bus's match rules.
	if m.Sender != "" && (strings.HasPrefix(m.Sender, ":") || m.Sender == BusName) && s.Sender != m.Sender {
		return false
	}
	if m.Path != "" && s.Path != m.Path {
		return false
	}
	if ns := string(m.PathNamespace); ns != "" && ns != "/" {
		p := string(s.Path)
		if p != ns && !strings.HasPrefix(p, ns+"/") {
			return false
		}
	}
	if m.Interface != "" || m.Member != "" {
		i := strings.LastIndexByte(s.Name, '.')
		if i < 0 {
			return false
		}
		if m.Interface != "" && s.Name[:i] != m.Interface {
			return false
		}
		if m.Member != "" && s.Name[i+1:] != m.Member {
			return false
		}
	}
	if m.Arg0 != "" {
		if len(s.Body) == 0 {
			return false
		}
		if a, ok := s.Body[0].(string); !ok || a != m.Arg0 {
			return false
		}
	}
	return true
}

func (m *Match) options() []dbus.MatchOption {
	var o []dbus.MatchOption
	if m.Sender != "" {
		o = append(o, dbus.WithMatchSender(m.Sender))
	}
	if m.Path != "" {
		o = append(o, dbus.WithMatchObjectPath(m.Path))
	}
	if m.PathNamespace != "" {
		o = append(o, dbus.WithMatchPathNamespace(m.PathNamespace))
	}
	if m.Interface != "" {
		o = append(o, dbus.WithMatchInterface(m.Interface))
	}
	if m.Member != "" {
		o = append(o, dbus.WithMatchMember(m.Member))
	}
	if m.Arg0 != "" {
		o = append(o, dbus.WithMatchArg(0, m.Arg0))
	}
	return o
}

// Subscription is one signal subscription; Close ends it.
type Subscription struct {
	r     *router
	id    uint64
	match Match
	fn    func(*dbus.Signal)
	bus   bool
	once  sync.Once
}

// Subscribe calls fn for every signal on conn that m selects, in arrival
// order, from one goroutine per connection (so fn must not block for long).
// On a bus connection it also adds the match rule; on a peer-to-peer
// connection there is no bus to ask and every signal arrives anyway.
func Subscribe(ctx context.Context, conn *dbus.Conn, m Match, fn func(*dbus.Signal)) (*Subscription, error) {
	bus := IsBus(conn)
	if bus {
		if err := conn.AddMatchSignalContext(ctx, m.options()...); err != nil {
			return nil, fmt.Errorf("add match: %w", err)
		}
	}
	r := routerFor(conn)
	s := &Subscription{r: r, match: m, fn: fn, bus: bus}
	r.add(s)
	return s, nil
}

// Close ends the subscription; fn is not called after Close returns unless
// a delivery was already running.
func (s *Subscription) Close() error {
	var err error
	s.once.Do(func() {
		s.r.remove(s)
		if s.bus && s.r.conn.Context().Err() == nil {
			err = s.r.conn.RemoveMatchSignal(s.match.options()...)
		}
	})
	return err
}

type router struct {
	conn *dbus.Conn
	ch   chan *dbus.Signal
	mu   sync.RWMutex
	subs map[uint64]*Subscription
	next uint64
}

var (
	routersMu sync.Mutex
	routers   = map[*dbus.Conn]*router{}
)

func routerFor(conn *dbus.Conn) *router {
	routersMu.Lock()
	defer routersMu.Unlock()
	if r := routers[conn]; r != nil {
		return r
	}
	r := &router{conn: conn, ch: make(chan *dbus.Signal, 256), subs: map[uint64]*Subscription{}}
	routers[conn] = r
	conn.Signal(r.ch)
	go r.loop()
	return r
}

func (r *router) add(s *Subscription) {
	r.mu.Lock()
	r.next++
	s.id = r.next
	r.subs[s.id] = s
	r.mu.Unlock()
}

func (r *router) remove(s *Subscription) {
	r.mu.Lock()
	delete(r.subs, s.id)
	r.mu.Unlock()
}

func (r *router) loop() {
	defer func() {
		routersMu.Lock()
		delete(routers, r.conn)
		routersMu.Unlock()
	}()
	var batch []*Subscription
	for {
		var sig *dbus.Signal
		var ok bool
		select {
		case sig, ok = <-r.ch:
		case <-r.conn.Context().Done():
			r.conn.RemoveSignal(r.ch)
			return
		}
		if !ok {
			return
		}
		batch = batch[:0]
		r.mu.RLock()
		for _, s := range r.subs {
			if s.match.matches(sig) {
				batch = append(batch, s)
			}
		}
		r.mu.RUnlock()
		if len(batch) > 1 {
			sortSubs(batch)
		}
		for _, s := range batch {
			s.fn(sig)
		}
	}
}

func sortSubs(b []*Subscription) {
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && b[j].id < b[j-1].id; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

// PropertiesChanged is a parsed org.freedesktop.DBus.Properties.PropertiesChanged signal.
type PropertiesChanged struct {
	Sender      string
	Path        dbus.ObjectPath
	Interface   string
	Changed     map[string]dbus.Variant
	Invalidated []string
}

// ParsePropertiesChanged reads a PropertiesChanged signal.
func ParsePropertiesChanged(s *dbus.Signal) (*PropertiesChanged, error) {
	if s.Name != PropertiesInterface+".PropertiesChanged" {
		return nil, fmt.Errorf("signal %s is not PropertiesChanged", s.Name)
	}
	p := &PropertiesChanged{Sender: s.Sender, Path: s.Path}
	if err := Decode(s.Body, &p.Interface, &p.Changed, &p.Invalidated); err != nil {
		return nil, fmt.Errorf("parse PropertiesChanged: %w", err)
	}
	return p, nil
}

// SubscribePropertiesChanged calls fn for PropertiesChanged of iface on path.
func SubscribePropertiesChanged(ctx context.Context, conn *dbus.Conn, sender string, path dbus.ObjectPath, iface string, fn func(*PropertiesChanged)) (*Subscription, error) {
	m := Match{Sender: sender, Path: path, Interface: PropertiesInterface, Member: "PropertiesChanged", Arg0: iface}
	return Subscribe(ctx, conn, m, func(s *dbus.Signal) {
		if p, err := ParsePropertiesChanged(s); err == nil {
			fn(p)
		}
	})
}
