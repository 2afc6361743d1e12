// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/busnames"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// Standard interface names served for every exported object.
const (
	IntrospectableInterface = busnames.DBusIntrospectableInterface
	PropertiesInterface     = busnames.DBusPropertiesInterface
	PeerInterface           = busnames.DBusPeerInterface
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
// it. On a wireconn connection it serves every call in wire order (see
// ServeWire and BindWire). On a godbus connection it is a godbus Handler,
// installed with ConnOptions before the connection starts and then Bound
// to it; godbus runs each call in a goroutine of its own.
type Server struct {
	mu       sync.RWMutex // guards conn, wc, objects and overrides
	conn     *dbus.Conn
	wc       *wireconn.Conn
	objects  map[dbus.ObjectPath]*serverObject
	baseCtx  context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once

	overrides map[overrideKey]*Method
}

// NewServer returns a Server with no objects.
func NewServer() *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{objects: map[dbus.ObjectPath]*serverObject{}, baseCtx: ctx, cancel: cancel}
}

// ConnOptions returns the godbus options that make a new connection use s.
func (s *Server) ConnOptions() []dbus.ConnOption {
	return []dbus.ConnOption{dbus.WithHandler(s), dbus.WithSignalHandler(dbus.NewSequentialSignalHandler())}
}

// Bind attaches s to conn (made with s.ConnOptions) so that ServerFor finds it.
func (s *Server) Bind(conn *dbus.Conn) {
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	servers.Store(conn, s)
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

// LookupObject implements dbus.Handler: every call is resolved by the
// same rules as on a wireconn connection (resolve).
func (s *Server) LookupObject(path dbus.ObjectPath) (dbus.ServerObject, bool) {
	return pathObject{srv: s, path: path}, true
}

// pathObject and pathInterface are the godbus views of one path and one
// interface name on it; the method is looked up only once godbus asks.
type (
	pathObject struct {
		srv  *Server
		path dbus.ObjectPath
	}
	pathInterface struct {
		pathObject
		iface string
	}
)

func (o pathObject) LookupInterface(name string) (dbus.Interface, bool) {
	return pathInterface{o, name}, true
}

func (i pathInterface) LookupMethod(member string) (dbus.Method, bool) {
	inSig, fn, err := i.srv.resolve(i.path, i.iface, member)
	if err != nil {
		return errMethod{err}, true
	}
	return &handlerMethod{srv: i.srv, inSig: inSig, fn: fn}, true
}

// resolve finds what serves member of iface on path: the handler and its
// argument signature, or the error that answers the call. Unknown paths
// answer every call with UnknownObject; paths above exported objects
// answer Introspect only.
func (s *Server) resolve(path dbus.ObjectPath, iface, member string) (inSig string, fn MethodFunc, err error) {
	s.mu.RLock()
	obj := s.objects[path]
	if obj == nil && len(s.children(path)) > 0 {
		obj = &serverObject{srv: s, path: path, intermediate: true}
	}
	s.mu.RUnlock()
	if obj == nil {
		return "", nil, NewError(ErrUnknownObject, "Unknown object '%s'.", path)
	}
	unknown := func() (string, MethodFunc, error) {
		return "", nil, NewError(ErrUnknownMethod, "Unknown method '%s' or interface '%s'.", member, iface)
	}
	switch iface {
	case IntrospectableInterface:
		if member != busnames.DBusIntrospectableMethodIntrospect {
			return unknown()
		}
		return "", obj.introspect, nil
	case PropertiesInterface:
		if obj.intermediate {
			return "", nil, NewError(ErrUnknownObject, "Unknown object '%s'.", path)
		}
		switch member {
		case busnames.DBusPropertiesMethodGet:
			return busnames.DBusPropertiesGetInSig, obj.propGet, nil
		case busnames.DBusPropertiesMethodGetAll:
			return busnames.DBusPropertiesGetAllInSig, obj.propGetAll, nil
		case busnames.DBusPropertiesMethodSet:
			return busnames.DBusPropertiesSetInSig, obj.propSet, nil
		}
		return unknown()
	case "":
		if member == busnames.DBusIntrospectableMethodIntrospect {
			return "", obj.introspect, nil
		}
		for _, e := range obj.ifaces {
			if m := e.lookupMethod(member); m != nil {
				return m.InSig, m.Call, nil
			}
		}
		return unknown()
	}
	if obj.intermediate {
		return "", nil, NewError(ErrUnknownObject, "Unknown object '%s'.", path)
	}
	e := obj.lookup(iface)
	if e == nil {
		return "", nil, NewError(ErrUnknownInterface, "Object does not implement the interface '%s'.", iface)
	}
	m := e.lookupMethod(member)
	if m == nil {
		return unknown()
	}
	return m.InSig, m.Call, nil
}

// serverObject is an immutable view of one path: exporting or unexporting
// replaces it, so lookups need no locking. It holds no method tables:
// methods are found in the export's Interface (or an override), so an
// object costs the same whatever its interfaces hold.
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

// lookupMethod returns the method member of the export, an override in
// its place if there is one, or nil.
func (e *Export) lookupMethod(name string) *Method {
	m := e.method(name)
	if m == nil {
		return nil
	}
	e.srv.mu.RLock()
	ov := e.srv.overrides[overrideKey{e.path, e.iface.Name, name}]
	e.srv.mu.RUnlock()
	if ov != nil {
		return ov
	}
	return m
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
	out, err := runHandler(WithCall(m.srv.baseCtx, c), m.fn, c.Message.Body)
	if err != nil {
		return nil, err
	}
	if len(out) == 1 {
		if r, ok := out[0].(RawReply); ok {
			// godbus encodes what it sends: give it the values.
			return DecodeBody(r.Signature, r.Body, false)
		}
	}
	// godbus panics reporting a reply it cannot encode on a peer
	// connection (the error has no destination): find out first.
	if len(out) > 0 {
		if _, err := EncodeBody(dbus.SignatureOf(out...).String(), out...); err != nil {
			return nil, NewError(ErrFailed, "reply cannot be encoded: %v", err)
		}
	}
	return out, nil
}

func (m *handlerMethod) NumArguments() int     { return 0 }
func (m *handlerMethod) NumReturns() int       { return 0 }
func (m *handlerMethod) ArgumentValue(int) any { return nil }
func (m *handlerMethod) ReturnValue(int) any   { return nil }

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

// Export is one interface served on one path. Its methods are safe for
// concurrent use.
type Export struct {
	srv   *Server
	path  dbus.ObjectPath
	iface *Interface

	// setMu serialises the sets of properties from storing a value to
	// sending its PropertiesChanged, so that the signals leave in the
	// order the values were stored and the last one a client gets carries
	// the value the object has. It is taken before mu, which readers take
	// alone.
	setMu  sync.Mutex
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

// QueueProperty is SetProperty, except that on a wireconn connection the
// PropertiesChanged signal is held (wireconn.Conn.HoldSignal): it leaves
// with the connection's next write, in order, so a signal that soon
// follows goes out in the same write. The caller makes sure a write or a
// Flush follows. On a godbus connection the signal is sent at once.
func (e *Export) QueueProperty(name string, value any) error {
	return e.setProperty(name, value, true)
}

func (e *Export) setProperty(name string, value any, queue bool) error {
	i := e.prop(name)
	if i < 0 {
		return fmt.Errorf("dbusrt: %s has no property %s", e.iface.Name, name)
	}
	p := &e.iface.Properties[i]
	e.setMu.Lock()
	defer e.setMu.Unlock()
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
		return e.emitChanged(map[string]dbus.Variant{name: v}, []string{}, queue)
	case EmitInvalidates:
		return e.emitChanged(map[string]dbus.Variant{}, []string{name}, queue)
	}
	return nil
}

func (e *Export) emitChanged(changed map[string]dbus.Variant, invalidated []string, hold bool) error {
	return e.srv.emit("", e.path, PropertiesInterface, busnames.DBusPropertiesSignalPropertiesChanged, hold, e.iface.Name, changed, invalidated)
}

// Emit broadcasts signal member of the exported interface from the path.
func (e *Export) Emit(member string, args ...any) error {
	return e.srv.emit("", e.path, e.iface.Name, member, false, args...)
}

// EmitTo sends signal member to one destination only (a unicast signal).
func (e *Export) EmitTo(dest, member string, args ...any) error {
	return e.srv.emit(dest, e.path, e.iface.Name, member, false, args...)
}

// emit sends a signal on the server's connection (dest "" broadcasts).
func (s *Server) emit(dest string, path dbus.ObjectPath, iface, member string, hold bool, args ...any) error {
	s.mu.RLock()
	wc, conn := s.wc, s.conn
	s.mu.RUnlock()
	switch {
	case wc != nil:
		return emitWire(wc, dest, path, iface, member, hold, args)
	case conn != nil:
		return EmitTo(conn, dest, path, iface, member, args...)
	}
	return dbus.ErrClosed
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
