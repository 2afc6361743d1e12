// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Standard interface names served for every exported object.
const (
	IntrospectableInterface = "org.freedesktop.DBus.Introspectable"
	PropertiesInterface     = "org.freedesktop.DBus.Properties"
	PeerInterface           = "org.freedesktop.DBus.Peer"
	busInterface            = "org.freedesktop.DBus"
	busPath                 = "/org/freedesktop/DBus"
)

// EmitMode says what a property change sends, following the
// org.freedesktop.DBus.Property.EmitsChangedSignal annotation.
type EmitMode int

// The four values of EmitsChangedSignal.
const (
	EmitTrue EmitMode = iota
	EmitInvalidates
	EmitConst
	EmitFalse
)

// MethodFunc serves one D-Bus method: body holds the call's arguments, whose
// signature the runtime has already checked; the result is the reply body.
type MethodFunc func(ctx context.Context, body []any) ([]any, error)

// Method describes one method of an interface.
type Method struct {
	Name  string
	InSig string
	Call  MethodFunc
}

// Property describes one property of an interface.
type Property struct {
	Name     string
	Sig      string
	Writable bool
	Emit     EmitMode
	// Explicit properties are left out of GetAll (Get reads them), as
	// upstream's SD_BUS_VTABLE_PROPERTY_EXPLICIT.
	Explicit bool
}

// Interface describes one D-Bus interface as served on an object.
type Interface struct {
	Name string
	// XML is the <interface> element served by Introspect.
	XML        string
	Methods    []Method
	Properties []Property
}

// Server dispatches method calls of one connection to the objects exported on
// it. It is a godbus Handler: install it with ConnOptions before the
// connection starts, then Bind it to the connection.
type Server struct {
	mu       sync.RWMutex
	conn     *dbus.Conn
	objects  map[dbus.ObjectPath]*serverObject
	busShim  bool
	baseCtx  context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	queue    *orderQueue

	idleHandlers atomic.Int32 // handler goroutines waiting for a call (see handleCalls)

	overrides map[overrideKey]*Method // guarded by mu
}

// NewServer returns a Server with no objects.
func NewServer() *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{objects: map[dbus.ObjectPath]*serverObject{}, baseCtx: ctx, cancel: cancel}
}

// ServeBusShim makes the server answer org.freedesktop.DBus.Hello (":1.0") and
// accept AddMatch/RemoveMatch as no-ops on /org/freedesktop/DBus, so that
// bus-minded clients work over a peer-to-peer connection.
func (s *Server) ServeBusShim() { s.mu.Lock(); s.busShim = true; s.mu.Unlock() }

// ConnOptions returns the godbus options that make a new connection use s.
func (s *Server) ConnOptions() []dbus.ConnOption {
	return []dbus.ConnOption{dbus.WithHandler(s), dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()),
		dbus.WithIncomingInterceptor(s.intercept)}
}

// Bind attaches s to conn (made with s.ConnOptions) so that ServerFor finds it.
func (s *Server) Bind(conn *dbus.Conn) {
	s.mu.Lock()
	s.conn = conn
	q := s.queue
	s.mu.Unlock()
	servers.Store(conn, s)
	if q != nil {
		go s.runQueue()
	}
}

// Conn returns the connection s serves, or nil before Bind.
func (s *Server) Conn() *dbus.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.conn
}

// Context is cancelled when the connection closes; handler contexts derive from it.
func (s *Server) Context() context.Context { return s.baseCtx }

// Terminate is called by godbus when the connection closes.
func (s *Server) Terminate() {
	s.stopOnce.Do(func() {
		s.cancel()
		s.mu.Lock()
		conn := s.conn
		s.objects = map[dbus.ObjectPath]*serverObject{}
		s.mu.Unlock()
		if conn != nil {
			servers.Delete(conn)
		}
	})
}

// debugOut receives stack traces of handler panics.
var debugOut io.Writer = os.Stderr

var servers sync.Map // *dbus.Conn -> *Server

// ServerFor returns the Server bound to conn.
func ServerFor(conn *dbus.Conn) (*Server, error) {
	if v, ok := servers.Load(conn); ok {
		return v.(*Server), nil
	}
	return nil, fmt.Errorf("dbusrt: connection has no object server (create it with dbusrt connection helpers or Server.ConnOptions and Bind)")
}

// Export serves iface on exactly path with the given initial property values
// (keyed by property name; missing ones start as zero values of their type).
func (s *Server) Export(path dbus.ObjectPath, iface *Interface, values map[string]any) (*Export, error) {
	if !path.IsValid() {
		return nil, fmt.Errorf("dbusrt: invalid object path %q", path)
	}
	// An export holds no tables of its own: methods and properties are
	// looked up in iface (a few dozen names at most), values are kept in
	// iface's property order. With thousands of node objects, per-export
	// maps were most of a configured node's memory.
	e := &Export{srv: s, path: path, iface: iface, values: make([]dbus.Variant, len(iface.Properties))}
	for i := range iface.Properties {
		p := &iface.Properties[i]
		v, err := zeroVariant(p.Sig)
		if err != nil {
			return nil, fmt.Errorf("dbusrt: property %s.%s: %w", iface.Name, p.Name, err)
		}
		if init, ok := values[p.Name]; ok {
			if v, err = makeVariant(init, p.Sig); err != nil {
				return nil, fmt.Errorf("dbusrt: property %s.%s: %w", iface.Name, p.Name, err)
			}
		}
		e.values[i] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.baseCtx.Err() != nil {
		return nil, dbus.ErrClosed
	}
	var ifaces []*Export
	if obj := s.objects[path]; obj != nil {
		if obj.lookup(iface.Name) != nil {
			return nil, fmt.Errorf("dbusrt: %s already exported on %s", iface.Name, path)
		}
		ifaces = append(ifaces, obj.ifaces...)
	}
	ifaces = append(ifaces, e)
	s.objects[path] = &serverObject{srv: s, path: path, ifaces: ifaces}
	return e, nil
}

func (s *Server) unexport(e *Export) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.objects[e.path]
	if obj == nil || obj.lookup(e.iface.Name) != e {
		return
	}
	var ifaces []*Export
	for _, v := range obj.ifaces {
		if v != e {
			ifaces = append(ifaces, v)
		}
	}
	if len(ifaces) == 0 {
		delete(s.objects, e.path)
		return
	}
	s.objects[e.path] = &serverObject{srv: s, path: e.path, ifaces: ifaces}
}

// Paths returns the exported object paths, sorted.
func (s *Server) Paths() []dbus.ObjectPath {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]dbus.ObjectPath, 0, len(s.objects))
	for p := range s.objects {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// children lists the next path elements below path that lead to exported objects.
func (s *Server) children(path dbus.ObjectPath) []string {
	prefix := string(path)
	if prefix != "/" {
		prefix += "/"
	}
	seen := map[string]bool{}
	var out []string
	for p := range s.objects {
		rest, ok := strings.CutPrefix(string(p), prefix)
		if !ok || rest == "" {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// LookupObject implements dbus.Handler. Unknown paths answer every call with
// UnknownObject; paths above exported objects answer Introspect only.
func (s *Server) LookupObject(path dbus.ObjectPath) (dbus.ServerObject, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if obj, ok := s.objects[path]; ok {
		return obj, true
	}
	if s.busShim && path == busPath {
		return shimObject{}, true
	}
	if kids := s.children(path); len(kids) > 0 {
		return &serverObject{srv: s, path: path, intermediate: true}, true
	}
	return missingObject{path: path}, true
}

// serverObject is an immutable view of one path: exporting or unexporting
// replaces it, so lookups need no locking. It holds no method tables:
// LookupInterface returns the object itself under another type, and
// LookupMethod finds the method in the export's Interface (or an
// override), so an object costs the same whatever its interfaces hold.
type serverObject struct {
	srv          *Server
	path         dbus.ObjectPath
	ifaces       []*Export // in export order; one or two
	intermediate bool
}

// lookup returns the export of iface on the object, or nil.
func (o *serverObject) lookup(iface string) *Export {
	for _, e := range o.ifaces {
		if e.iface.Name == iface {
			return e
		}
	}
	return nil
}

// The dbus.Interface views of an object and an export.
type (
	introspectTable serverObject // org.freedesktop.DBus.Introspectable
	propertiesTable serverObject // org.freedesktop.DBus.Properties
	anyTable        serverObject // no interface header: every interface's members
	exportTable     Export       // one exported interface
)

func (o *serverObject) LookupInterface(name string) (dbus.Interface, bool) {
	switch name {
	case IntrospectableInterface:
		return (*introspectTable)(o), true
	case PropertiesInterface:
		if o.intermediate {
			return missingObject{path: o.path}, true
		}
		return (*propertiesTable)(o), true
	case "":
		return (*anyTable)(o), true
	}
	if o.intermediate {
		return missingObject{path: o.path}, true
	}
	if e := o.lookup(name); e != nil {
		return (*exportTable)(e), true
	}
	return nil, false
}

func (t *introspectTable) LookupMethod(name string) (dbus.Method, bool) {
	if name != "Introspect" {
		return nil, false
	}
	o := (*serverObject)(t)
	return o.method("", o.introspect), true
}

func (t *propertiesTable) LookupMethod(name string) (dbus.Method, bool) {
	o := (*serverObject)(t)
	switch name {
	case "Get":
		return o.method("ss", o.propGet), true
	case "GetAll":
		return o.method("s", o.propGetAll), true
	case "Set":
		return o.method("ssv", o.propSet), true
	}
	return nil, false
}

func (t *anyTable) LookupMethod(name string) (dbus.Method, bool) {
	o := (*serverObject)(t)
	if name == "Introspect" {
		return o.method("", o.introspect), true
	}
	for _, e := range o.ifaces {
		if m, ok := (*exportTable)(e).LookupMethod(name); ok {
			return m, true
		}
	}
	return nil, false
}

func (t *exportTable) LookupMethod(name string) (dbus.Method, bool) {
	e := (*Export)(t)
	m := e.method(name)
	if m == nil {
		return nil, false
	}
	e.srv.mu.RLock()
	ov := e.srv.overrides[overrideKey{e.path, e.iface.Name, name}]
	e.srv.mu.RUnlock()
	if ov != nil {
		m = ov
	}
	return &handlerMethod{srv: e.srv, inSig: m.InSig, fn: m.Call}, true
}

// Override makes fn serve method member of iface on path in place of what
// an export there (now or later) provides, with the same argument check
// against inSig. It is for hot methods whose handler builds its reply
// itself (RawReply); the export's introspection is unchanged.
func (s *Server) Override(path dbus.ObjectPath, iface, member, inSig string, fn MethodFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overrides == nil {
		s.overrides = map[overrideKey]*Method{}
	}
	s.overrides[overrideKey{path, iface, member}] = &Method{Name: member, InSig: inSig, Call: fn}
}

type overrideKey struct {
	path          dbus.ObjectPath
	iface, member string
}

func (o *serverObject) method(inSig string, fn MethodFunc) dbus.Method {
	return &handlerMethod{srv: o.srv, inSig: inSig, fn: fn}
}

func (o *serverObject) introspect(ctx context.Context, body []any) ([]any, error) {
	o.srv.mu.RLock()
	kids := o.srv.children(o.path)
	o.srv.mu.RUnlock()
	ifaces := slices.SortedFunc(slices.Values(o.ifaces), func(a, b *Export) int { return strings.Compare(a.iface.Name, b.iface.Name) })
	var b strings.Builder
	b.WriteString(IntrospectHeader)
	b.WriteString("<node>\n")
	b.WriteString(peerXML)
	b.WriteString(introspectableXML)
	if !o.intermediate {
		b.WriteString(propertiesXML)
	}
	for _, e := range ifaces {
		b.WriteString(e.iface.XML)
	}
	for _, k := range kids {
		fmt.Fprintf(&b, " <node name=%q/>\n", k)
	}
	b.WriteString("</node>\n")
	return []any{b.String()}, nil
}

func (o *serverObject) export(iface string) (*Export, error) {
	e := o.lookup(iface)
	if e == nil {
		return nil, NewError(ErrUnknownInterface, "Unknown interface '%s'.", iface)
	}
	return e, nil
}

func (o *serverObject) propGet(ctx context.Context, body []any) ([]any, error) {
	iface, name := body[0].(string), body[1].(string)
	e, err := o.export(iface)
	if err != nil {
		return nil, err
	}
	i := e.prop(name)
	if i < 0 {
		return nil, NewError(ErrUnknownProperty, "Unknown property '%s'.", name)
	}
	e.mu.Lock()
	v := e.values[i]
	e.mu.Unlock()
	return []any{v}, nil
}

func (o *serverObject) propGetAll(ctx context.Context, body []any) ([]any, error) {
	iface := body[0].(string)
	out := map[string]dbus.Variant{}
	if iface == "" {
		for _, e := range o.ifaces {
			e.copyValues(out)
		}
		return []any{out}, nil
	}
	e, err := o.export(iface)
	if err != nil {
		return nil, err
	}
	e.copyValues(out)
	return []any{out}, nil
}

func (o *serverObject) propSet(ctx context.Context, body []any) ([]any, error) {
	iface, name, v := body[0].(string), body[1].(string), body[2].(dbus.Variant)
	e, err := o.export(iface)
	if err != nil {
		return nil, err
	}
	i := e.prop(name)
	if i < 0 {
		return nil, NewError(ErrUnknownProperty, "Unknown property '%s'.", name)
	}
	p := &e.iface.Properties[i]
	if !p.Writable {
		return nil, NewError(ErrPropertyReadOnly, "Property '%s' is not writable.", name)
	}
	if v.Signature().String() != p.Sig {
		return nil, NewError(ErrInvalidArgs, "Property '%s' has type '%s', not '%s'.", name, p.Sig, v.Signature().String())
	}
	return nil, e.SetProperty(name, v)
}

// handlerMethod adapts a MethodFunc to godbus: it checks the argument
// signature, passes the caller in the context and turns panics into errors.
type handlerMethod struct {
	srv   *Server
	inSig string
	fn    MethodFunc
}

func (m *handlerMethod) DecodeArguments(conn *dbus.Conn, sender string, msg *dbus.Message, args []any) ([]any, error) {
	got := ""
	if v, ok := msg.Headers[dbus.FieldSignature]; ok {
		if sig, ok := v.Value().(dbus.Signature); ok {
			got = sig.String()
		}
	}
	if got != m.inSig {
		return nil, NewError(ErrInvalidArgs, "Invalid arguments '%s' to call %s.%s(), expecting '%s'.",
			got, headerString(msg, dbus.FieldInterface), headerString(msg, dbus.FieldMember), m.inSig)
	}
	return []any{&Call{Conn: conn, Sender: sender, Message: msg}}, nil
}

func headerString(msg *dbus.Message, f dbus.HeaderField) string {
	if v, ok := msg.Headers[f]; ok {
		if s, ok := v.Value().(string); ok {
			return s
		}
	}
	return ""
}

func (m *handlerMethod) Call(args ...any) ([]any, error) {
	c := args[0].(*Call)
	out, err := m.call(m.srv.baseCtx, c)
	if err == nil && len(out) == 1 {
		if r, ok := out[0].(RawReply); ok {
			if c.Message.Flags&dbus.FlagNoReplyExpected != 0 {
				return nil, nil
			}
			if err := sendRawReply(c.Conn, c.Message, r); err != nil {
				return nil, err
			}
			// Replied: keep godbus (which reads the flag after this
			// returns, in this goroutine) from replying again.
			c.Message.Flags |= dbus.FlagNoReplyExpected
			return nil, nil
		}
	}
	return out, err
}

// call runs the handler with the caller in ctx, turning panics into Failed.
func (m *handlerMethod) call(ctx context.Context, c *Call) (out []any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, NewError(ErrFailed, "internal error: %v", r)
			fmt.Fprintf(debugOut, "dbusrt: panic in handler: %v\n%s", r, debug.Stack())
		}
	}()
	out, err = m.fn(WithCall(ctx, c), c.Message.Body)
	if err != nil {
		return nil, AsDBusError(err)
	}
	return out, nil
}

func (m *handlerMethod) NumArguments() int     { return 0 }
func (m *handlerMethod) NumReturns() int       { return 0 }
func (m *handlerMethod) ArgumentValue(int) any { return nil }
func (m *handlerMethod) ReturnValue(int) any   { return nil }
func (t methodTable) LookupMethod(name string) (dbus.Method, bool) {
	m, ok := t[name]
	return m, ok
}

type methodTable map[string]dbus.Method

// missingObject answers everything with UnknownObject.
type missingObject struct{ path dbus.ObjectPath }

func (o missingObject) LookupInterface(string) (dbus.Interface, bool) { return o, true }
func (o missingObject) LookupMethod(string) (dbus.Method, bool)       { return errMethod{o.err()}, true }
func (o missingObject) err() error {
	return NewError(ErrUnknownObject, "Unknown object '%s'.", o.path)
}

// errMethod fails every call with err before any handler runs.
type errMethod struct{ err error }

func (m errMethod) DecodeArguments(*dbus.Conn, string, *dbus.Message, []any) ([]any, error) {
	return nil, m.err
}
func (m errMethod) Call(...any) ([]any, error) { return nil, m.err }
func (m errMethod) NumArguments() int          { return 0 }
func (m errMethod) NumReturns() int            { return 0 }
func (m errMethod) ArgumentValue(int) any      { return nil }
func (m errMethod) ReturnValue(int) any        { return nil }

// shimObject answers the few org.freedesktop.DBus calls bus clients make.
type shimObject struct{}

func (shimObject) LookupInterface(name string) (dbus.Interface, bool) {
	if name != busInterface && name != "" && name != IntrospectableInterface {
		return nil, false
	}
	s := &Server{baseCtx: context.Background()}
	ok := func(ctx context.Context, body []any) ([]any, error) { return nil, nil }
	if name == IntrospectableInterface {
		return methodTable{"Introspect": &handlerMethod{srv: s, fn: func(context.Context, []any) ([]any, error) {
			return []any{IntrospectHeader + "<node>\n" + peerXML + introspectableXML + busShimXML + "</node>\n"}, nil
		}}}, true
	}
	return methodTable{
		"Hello":       &handlerMethod{srv: s, fn: func(context.Context, []any) ([]any, error) { return []any{":1.0"}, nil }},
		"AddMatch":    &handlerMethod{srv: s, inSig: "s", fn: ok},
		"RemoveMatch": &handlerMethod{srv: s, inSig: "s", fn: ok},
	}, true
}

// Export is one interface served on one path. Its methods are safe for
// concurrent use.
type Export struct {
	srv   *Server
	path  dbus.ObjectPath
	iface *Interface

	mu     sync.Mutex
	values []dbus.Variant // guarded by mu; in the order of iface.Properties
}

// method returns the method name of the interface, or nil.
func (e *Export) method(name string) *Method {
	for i := range e.iface.Methods {
		if e.iface.Methods[i].Name == name {
			return &e.iface.Methods[i]
		}
	}
	return nil
}

// prop returns the index of property name in the interface, or -1.
func (e *Export) prop(name string) int {
	for i := range e.iface.Properties {
		if e.iface.Properties[i].Name == name {
			return i
		}
	}
	return -1
}

// Path returns the object path.
func (e *Export) Path() dbus.ObjectPath { return e.path }

// Conn returns the connection the object is served on.
func (e *Export) Conn() *dbus.Conn { return e.srv.Conn() }

// Unexport stops serving the interface on the path; calls then get
// UnknownObject (or UnknownInterface when other interfaces remain).
func (e *Export) Unexport() { e.srv.unexport(e) }

// copyValues adds the values GetAll returns to out.
func (e *Export) copyValues(out map[string]dbus.Variant) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, v := range e.values {
		if p := &e.iface.Properties[i]; !p.Explicit {
			out[p.Name] = v
		}
	}
}

// Property returns the current value of a property.
func (e *Export) Property(name string) dbus.Variant {
	i := e.prop(name)
	if i < 0 {
		return dbus.Variant{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.values[i]
}

// SetProperty changes a property and, when the value differs, emits
// PropertiesChanged as the property's EmitsChangedSignal annotation says.
func (e *Export) SetProperty(name string, value any) error {
	return e.setProperty(name, value, false)
}

// QueueProperty is SetProperty, except that on a tapped connection
// (transport.Tap) the PropertiesChanged signal of a simple-typed value is
// encoded by internal/wire and queued: it leaves with the connection's next
// write, in order, so a signal that soon follows goes out in the same
// write. The caller makes sure a write or a Tap.Flush follows. On any other
// connection, or for other types, the signal is sent at once.
func (e *Export) QueueProperty(name string, value any) error {
	return e.setProperty(name, value, true)
}

func (e *Export) setProperty(name string, value any, queue bool) error {
	i := e.prop(name)
	if i < 0 {
		return fmt.Errorf("dbusrt: %s has no property %s", e.iface.Name, name)
	}
	p := &e.iface.Properties[i]
	e.mu.Lock()
	old := e.values[i]
	// A value of the old one's basic Go type (the heartbeat's timestamps,
	// Status) is compared and wrapped without reflection.
	same, equal := basicCompare(old.Value(), value)
	if equal {
		e.mu.Unlock()
		return nil
	}
	var v dbus.Variant
	if same {
		v = dbus.MakeVariantWithSignature(value, old.Signature())
	} else {
		var err error
		if v, err = makeVariant(value, p.Sig); err != nil {
			e.mu.Unlock()
			return fmt.Errorf("dbusrt: property %s.%s: %w", e.iface.Name, name, err)
		}
		if reflect.DeepEqual(old.Value(), v.Value()) {
			e.mu.Unlock()
			return nil
		}
	}
	e.values[i] = v
	e.mu.Unlock()
	switch p.Emit {
	case EmitTrue:
		if queue && e.queueChanged(name, v.Value(), false) {
			return nil
		}
		return e.emitChanged(map[string]dbus.Variant{name: v}, []string{})
	case EmitInvalidates:
		if queue && e.queueChanged(name, nil, true) {
			return nil
		}
		return e.emitChanged(map[string]dbus.Variant{}, []string{name})
	}
	return nil
}

// queueChanged queues PropertiesChanged for one property on the
// connection's tap; false when there is no tap or the value is not of a
// simple type (the caller then sends it through godbus).
func (e *Export) queueChanged(name string, value any, invalidated bool) bool {
	conn := e.srv.Conn()
	if conn == nil {
		return false
	}
	tap := transport.TapOf(conn)
	if tap == nil {
		return false
	}
	var w wire.Writer
	w.String(e.iface.Name)
	m := w.BeginArray(8)
	if !invalidated {
		sig, body, ok := simpleArgs([]any{value})
		if !ok || len(sig) != 1 || !strings.Contains("soubi", sig) {
			return false
		}
		w.Align(8)
		w.String(name)
		w.Signature(sig)
		w.Align(4) // s, o, u, i and b align to 4
		w.Buf = append(w.Buf, body...)
	}
	w.EndArray(m)
	m = w.BeginArray(4)
	if invalidated {
		w.String(name)
	}
	w.EndArray(m)
	msg := wire.AppendSignal(nil, tap.GetSerial(), string(e.path), PropertiesInterface, "PropertiesChanged", "", "sa{sv}as", w.Buf)
	if tap.Queue(msg) != nil {
		return false
	}
	queuedProps.Add(1)
	return true
}

// queuedProps counts the signals queueChanged queued (for tests).
var queuedProps atomic.Int64

func (e *Export) emitChanged(changed map[string]dbus.Variant, invalidated []string) error {
	conn := e.srv.Conn()
	if conn == nil {
		return nil
	}
	return conn.Emit(e.path, PropertiesInterface+".PropertiesChanged", e.iface.Name, changed, invalidated)
}

// Emit broadcasts signal member of the exported interface from the path.
func (e *Export) Emit(member string, args ...any) error {
	conn := e.srv.Conn()
	if conn == nil {
		return dbus.ErrClosed
	}
	return conn.Emit(e.path, e.iface.Name+"."+member, args...)
}

// EmitTo sends signal member to one destination only (a unicast signal).
func (e *Export) EmitTo(dest, member string, args ...any) error {
	conn := e.srv.Conn()
	if conn == nil {
		return dbus.ErrClosed
	}
	return EmitTo(conn, dest, e.path, e.iface.Name, member, args...)
}

// EmitTo sends a signal with a DESTINATION header on conn.
func EmitTo(conn *dbus.Conn, dest string, path dbus.ObjectPath, iface, member string, args ...any) error {
	if conn.Context().Err() != nil {
		return dbus.ErrClosed
	}
	return conn.Send(signalMessage(dest, path, iface, member, args), nil).Err
}

// signalMessage builds a signal to dest ("" broadcasts).
func signalMessage(dest string, path dbus.ObjectPath, iface, member string, args []any) *dbus.Message {
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(path),
		dbus.FieldInterface: dbus.MakeVariant(iface),
		dbus.FieldMember:    dbus.MakeVariant(member),
	}, Body: args}
	if dest != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return msg
}

// EncodeSignal returns the wire bytes (little endian) of the signal EmitTo
// would send, with the given serial, for sending them later through a
// transport.Tap.
func EncodeSignal(serial uint32, dest string, path dbus.ObjectPath, iface, member string, args ...any) ([]byte, error) {
	msg := signalMessage(dest, path, iface, member, args)
	msg.Flags = dbus.FlagNoReplyExpected
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encode %s.%s: %w", iface, member, err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[8:12], serial) // godbus has no serial setter
	return b, nil
}

// basicCompare tells whether value has the same basic Go type as old
// (string, bool or a number), and if so whether they are equal.
func basicCompare(old, value any) (same, equal bool) {
	switch o := old.(type) {
	case string:
		return compareTo(o, value)
	case uint64:
		return compareTo(o, value)
	case uint32:
		return compareTo(o, value)
	case int32:
		return compareTo(o, value)
	case int64:
		return compareTo(o, value)
	case bool:
		return compareTo(o, value)
	case float64:
		return compareTo(o, value)
	}
	return false, false
}

func compareTo[T comparable](old T, value any) (same, equal bool) {
	v, ok := value.(T)
	return ok, ok && v == old
}

func makeVariant(value any, sig string) (dbus.Variant, error) {
	v, ok := value.(dbus.Variant)
	if !ok {
		v = dbus.MakeVariant(value)
	}
	if got := v.Signature().String(); got != sig {
		return dbus.Variant{}, fmt.Errorf("value of type %s, want %s", got, sig)
	}
	return v, nil
}

// zeroVariant is the value a property has before it is set: the zero value
// of the type goTypeForSig gives (a valid path and variant where the zero
// value would not encode).
func zeroVariant(sig string) (dbus.Variant, error) {
	s, err := dbus.ParseSignature(sig)
	if err != nil {
		return dbus.Variant{}, err
	}
	switch sig {
	case "o":
		return dbus.MakeVariant(dbus.ObjectPath("/")), nil
	case "v":
		return dbus.MakeVariant(dbus.MakeVariant("")), nil
	}
	t, err := goTypeForSig(sig)
	if err != nil {
		return dbus.Variant{}, err
	}
	return dbus.MakeVariantWithSignature(reflect.Zero(t).Interface(), s), nil
}
