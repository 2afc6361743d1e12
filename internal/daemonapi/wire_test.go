// SPDX-License-Identifier: Apache-2.0

package daemonapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// wirePair connects a client wireconn to a server wireconn over a unix
// socket; prep exports the server's objects before it reads.
func wirePair(t *testing.T, sopts, copts wireconn.Options, prep func(*wireconn.Conn)) (server, client *wireconn.Conn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *wireconn.Conn, 1)
	errs := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			errs <- err
			return
		}
		c, err := wireconn.Accept(context.Background(), nc, sopts)
		if err != nil {
			errs <- err
			return
		}
		c.MarkRegistered()
		if prep != nil {
			prep(c)
		}
		c.Start()
		ch <- c
	}()
	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, err = wireconn.Client(context.Background(), nc, copts)
	if err != nil {
		t.Fatal(err)
	}
	client.Start()
	select {
	case server = <-ch:
	case err := <-errs:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
		<-client.Done()
		<-server.Done()
	})
	return server, client
}

// agentSrv records calls and answers fixed values.
type agentSrv struct {
	UnimplementedInternalAgentServer
	mu      sync.Mutex
	started []string // guarded by mu
	props   []bluechi.UnitProperty
	block   chan struct{}
}

func (s *agentSrv) StartUnit(ctx context.Context, name, mode string, jobID uint32) error {
	if call, ok := wireconn.CallFrom(ctx); !ok || call.Member != InternalAgentMethodStartUnit || wireconn.ConnFrom(ctx) == nil {
		return errors.New("no call in ctx")
	}
	if name == "blocked.service" {
		wireconn.Release(ctx)
		<-s.block
	}
	s.mu.Lock()
	s.started = append(s.started, name+"/"+mode)
	s.mu.Unlock()
	if name == "bad.service" {
		return dbusrt.NewError("org.freedesktop.systemd1.NoSuchUnit", "Unit bad.service not found.")
	}
	if name == "plain.service" {
		return errors.New("plain failure")
	}
	return nil
}

func (s *agentSrv) ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error) {
	return []bluechi.UnitInfo{{Name: "a.service", Description: "A", LoadState: "loaded", ActiveState: "active", SubState: "running",
		Path: "/org/freedesktop/systemd1/unit/a_2eservice", JobID: 3, JobType: "start", JobPath: "/org/freedesktop/systemd1/job/3"}}, nil
}

func (s *agentSrv) GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error) {
	return map[string]dbus.Variant{"Id": dbus.MakeVariant(name), "Interface": dbus.MakeVariant(iface),
		"ExecStart": dbus.MakeVariantWithSignature([]any{[]any{"/bin/true", []string{"/bin/true"}, false}}, dbus.ParseSignatureMust("a(sasb)"))}, nil
}

func (s *agentSrv) SetUnitProperties(ctx context.Context, name string, runtime bool, kv []bluechi.UnitProperty) error {
	s.mu.Lock()
	s.props = kv
	s.mu.Unlock()
	return nil
}

func TestWireServerAndClient(t *testing.T) {
	srv := &agentSrv{block: make(chan struct{})}
	_, client := wirePair(t, wireconn.Options{}, wireconn.Options{}, func(c *wireconn.Conn) {
		c.Export(string(InternalAgentPath), InternalAgentWireInterface(srv))
	})
	ac := NewInternalAgentWireClient(client, "", string(InternalAgentPath))
	if ac.Conn() != client {
		t.Fatal("Conn")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := ac.StartUnit(ctx, "a.service", "replace", 1); err != nil {
		t.Fatal(err)
	}
	// Error mapping: a D-Bus error keeps its name, anything else is Failed.
	var we *wireconn.Error
	if err := ac.StartUnit(ctx, "bad.service", "replace", 2); !errors.As(err, &we) ||
		we.Name != "org.freedesktop.systemd1.NoSuchUnit" || we.Message != "Unit bad.service not found." {
		t.Fatalf("bad.service: %v", err)
	}
	if err := ac.StartUnit(ctx, "plain.service", "replace", 3); !errors.As(err, &we) || we.Name != dbusrt.ErrFailed || we.Message != "plain failure" {
		t.Fatalf("plain.service: %v", err)
	}
	if name := dbusrt.ErrorName(we); name != dbusrt.ErrFailed {
		t.Fatalf("dbusrt.ErrorName(*wireconn.Error) = %q", name)
	}
	// Not implemented: UnknownMethod from the Unimplemented embed.
	if err := ac.Reload(ctx); !errors.As(err, &we) || we.Name != dbusrt.ErrUnknownMethod {
		t.Fatalf("Reload: %v", err)
	}
	units, err := ac.ListUnits(ctx)
	if err != nil || len(units) != 1 || units[0].JobPath != "/org/freedesktop/systemd1/job/3" {
		t.Fatalf("ListUnits: %v %v", units, err)
	}
	props, err := ac.GetUnitProperties(ctx, "a.service", "org.freedesktop.systemd1.Unit")
	if err != nil || props["Id"].Value() != "a.service" || props["ExecStart"].Signature().String() != "a(sasb)" {
		t.Fatalf("GetUnitProperties: %v %v", props, err)
	}
	kv := []bluechi.UnitProperty{{Name: "CPUWeight", Value: dbus.MakeVariant(uint64(50))}}
	if err := ac.SetUnitProperties(ctx, "a.service", true, kv); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	got := srv.props
	srv.mu.Unlock()
	if diff := cmp.Diff(kv, got, cmp.Transformer("v", func(v dbus.Variant) string { return v.String() })); diff != "" {
		t.Fatal(diff)
	}

	// Async: GoStartUnit's done runs with the reply; a released handler
	// lets later calls through; SendStartUnit gets no reply.
	blocked := make(chan error, 1)
	ac.GoStartUnit(ctx, "blocked.service", "replace", 4, func(err error) { blocked <- err })
	if err := ac.SendStartUnit("sent.service", "fail", 5); err != nil {
		t.Fatal(err)
	}
	if err := ac.StartUnit(ctx, "after.service", "replace", 6); err != nil {
		t.Fatal(err)
	}
	close(srv.block)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	want := []string{"a.service/replace", "bad.service/replace", "plain.service/replace", "sent.service/fail", "after.service/replace", "blocked.service/replace"}
	if diff := cmp.Diff(want, srv.started); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
}

func TestWireWrongSignature(t *testing.T) {
	srv := &agentSrv{}
	_, client := wirePair(t, wireconn.Options{}, wireconn.Options{}, func(c *wireconn.Conn) {
		c.Export(string(InternalAgentPath), InternalAgentWireInterface(srv))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var w wire.Writer
	w.String("x.service")
	_, err := client.Call(ctx, &wireconn.Request{Path: string(InternalAgentPath), Interface: InternalAgentInterface,
		Member: InternalAgentMethodStartUnit, Signature: "s", Body: w.Buf})
	var we *wireconn.Error
	if !errors.As(err, &we) || we.Name != wireconn.ErrInvalidArgs {
		t.Fatalf("wrong signature: %v", err)
	}
	// The right signature with a malformed body (a bad boolean).
	w.Reset()
	w.String("x.service")
	w.Uint32(7)
	m := w.BeginArray(8)
	w.EndArray(m)
	_, err = client.Call(ctx, &wireconn.Request{Path: string(InternalAgentPath), Interface: InternalAgentInterface,
		Member: InternalAgentMethodSetUnitProperties, Signature: InternalAgentSetUnitPropertiesInSig, Body: w.Buf})
	if !errors.As(err, &we) || we.Name != wireconn.ErrInvalidArgs {
		t.Fatalf("bad boolean: %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.started) != 0 || srv.props != nil {
		t.Fatal("a bad call reached the handler")
	}
}

func TestWireRawMethodAndSignals(t *testing.T) {
	srv := &agentSrv{}
	signals := make(chan *InternalAgentUnitPropertiesChangedSignal, 1)
	hb := make(chan struct{}, 1)
	_, client := wirePair(t, wireconn.Options{}, wireconn.Options{Signal: func(c *wireconn.Conn, m *wire.Message) {
		switch m.Member {
		case InternalAgentSignalUnitPropertiesChanged:
			s, err := DecodeInternalAgentUnitPropertiesChanged(m)
			if err != nil {
				t.Error(err)
			}
			signals <- &s
		case InternalAgentSignalHeartbeat:
			if _, err := DecodeInternalAgentHeartbeat(m); err != nil {
				t.Error(err)
			}
			hb <- struct{}{}
		}
	}}, func(c *wireconn.Conn) {
		c.Export(string(InternalAgentPath), InternalAgentWireInterface(srv, wireconn.RawMethod{
			Member: InternalAgentMethodListUnits,
			Call: func(c *wireconn.Conn, m *wire.Message) {
				_ = c.ReplyCall(wireconn.CallOf(m), InternalAgentListUnitsOutSig, make([]byte, 8))
				s := InternalAgentUnitPropertiesChangedSignal{Unit: "a.service", Interface: "org.freedesktop.systemd1.Unit",
					Props: map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("active")}}
				if err := EmitInternalAgentUnitPropertiesChangedWire(c, string(InternalAgentPath), s); err != nil {
					t.Error(err)
				}
				if err := EmitInternalAgentHeartbeatWire(c, string(InternalAgentPath), InternalAgentHeartbeatSignal{}); err != nil {
					t.Error(err)
				}
			},
		}))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	units, err := NewInternalAgentWireClient(client, "", string(InternalAgentPath)).ListUnits(ctx)
	if err != nil || len(units) != 0 {
		t.Fatalf("raw ListUnits: %v %v", units, err)
	}
	s := <-signals
	if s.Unit != "a.service" || s.Props["ActiveState"].Value() != "active" {
		t.Fatalf("signal %+v", s)
	}
	<-hb
	// A signal with the wrong signature is refused.
	if _, err := DecodeInternalAgentUnitPropertiesChanged(&wire.Message{Signature: "s", Body: make([]byte, 5)}); err == nil {
		t.Fatal("wrong signal signature accepted")
	}
}

// godbusEncode returns the body godbus makes of args (signature sig) in
// the given byte order.
func godbusEncode(t *testing.T, sig string, bigEndian bool, args ...any) []byte {
	t.Helper()
	if got := dbus.SignatureOf(args...).String(); got != sig {
		t.Fatalf("sample values have signature %q, want %q", got, sig)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/t")),
		dbus.FieldInterface: dbus.MakeVariant("org.example.T"),
		dbus.FieldMember:    dbus.MakeVariant("T"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.ParseSignatureMust(sig)),
	}}
	for _, a := range args {
		// godbus encodes a variant by its value's Go type unless fixed.
		msg.Body = append(msg.Body, dbusrt.FixVariants(a))
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, order); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	start := (16 + int(order.Uint32(b[12:])) + 7) &^ 7
	return b[start:]
}

// godbusDecode decodes a little-endian body of signature sig with godbus
// and stores its values in ptrs (as dbusrt.Decode does).
func godbusDecode(t *testing.T, sig string, body []byte, ptrs ...any) {
	t.Helper()
	// A message with the signature but no body, then the body appended
	// and its length set: only godbus's own encoder and decoder are used.
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/t")),
		dbus.FieldInterface: dbus.MakeVariant("org.example.T"),
		dbus.FieldMember:    dbus.MakeVariant("T"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.ParseSignatureMust(sig)),
	}}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	b := append(buf.Bytes(), body...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[8:], 1) // serial
	got, err := dbus.DecodeMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("godbus cannot decode our body % x: %v", body, err)
	}
	// dbusrt.Decode, not dbus.Store: Store remakes the variants of a
	// map[string]dbus.Variant from their values' Go types.
	if err := dbusrt.Decode(got.Body, ptrs...); err != nil {
		t.Fatalf("godbus cannot store our body: %v", err)
	}
}

// checkSame compares D-Bus values by their wire meaning: structs, slices
// and []any by elements, variants by signature and value, empty and nil
// alike.
func checkSame(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(generic(want), generic(got)); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", what, d)
	}
}

type genericVariant struct {
	Sig   string
	Value any
}

func generic(x any) any {
	if x == nil {
		return nil
	}
	return genericValue(reflect.ValueOf(x))
}

func genericValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return genericValue(v.Elem())
	case reflect.Struct:
		if vv, ok := v.Interface().(dbus.Variant); ok {
			return genericVariant{Sig: vv.Signature().String(), Value: generic(vv.Value())}
		}
		if s, ok := v.Interface().(dbus.Signature); ok {
			return "sig:" + s.String()
		}
		out := []any{}
		for i := 0; i < v.NumField(); i++ {
			out = append(out, genericValue(v.Field(i)))
		}
		return out
	case reflect.Slice, reflect.Array:
		out := []any{}
		for i := 0; i < v.Len(); i++ {
			out = append(out, genericValue(v.Index(i)))
		}
		return out
	case reflect.Map:
		type kv struct {
			K string
			V any
		}
		var out []kv
		it := v.MapRange()
		for it.Next() {
			out = append(out, kv{K: fmt.Sprint(it.Key().Interface()), V: genericValue(it.Value())})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
		res := []any{"map"}
		for _, e := range out {
			res = append(res, e.K, e.V)
		}
		return res
	}
	return v.Interface()
}

func sampleUnits(n int) []bluechi.UnitInfo {
	units := make([]bluechi.UnitInfo, n)
	for i := range units {
		name := fmt.Sprintf("unit%d.service", i)
		units[i] = bluechi.UnitInfo{Name: name, Description: "A unit for benchmarks", LoadState: "loaded", ActiveState: "active",
			SubState: "running", Path: Systemd1UnitPath(name), JobType: "", JobPath: "/"}
	}
	return units
}

// BenchmarkListUnitsCodec measures the reply of ListUnits with 20 units,
// encoded and decoded by the generated code and by godbus (the codec
// bridge), in one run.
func BenchmarkListUnitsCodec(b *testing.B) {
	units := sampleUnits(20)
	body, err := wireEncodeInternalAgentListUnitsOut(units)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode/wire", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := wireEncodeInternalAgentListUnitsOut(units); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/godbus", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := dbusrt.EncodeBody(InternalAgentListUnitsOutSig, units); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/wire", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := wireDecodeInternalAgentListUnitsOut(body, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/godbus", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			vals, err := dbusrt.DecodeBody(InternalAgentListUnitsOutSig, body, false)
			if err != nil {
				b.Fatal(err)
			}
			var out []bluechi.UnitInfo
			if err := dbusrt.Decode(vals, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWireCall measures one ListUnits call (empty reply) through the
// generated client and server over a unix socket.
func BenchmarkWireCall(b *testing.B) {
	srv := &agentSrv{}
	l, err := net.Listen("unix", filepath.Join(b.TempDir(), "s"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *wireconn.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		c, err := wireconn.Accept(context.Background(), nc, wireconn.Options{})
		if err != nil {
			close(ch)
			return
		}
		c.MarkRegistered()
		c.Export(string(InternalAgentPath), InternalAgentWireInterface(srv))
		c.Start()
		ch <- c
	}()
	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	client, err := wireconn.Client(context.Background(), nc, wireconn.Options{})
	if err != nil {
		b.Fatal(err)
	}
	client.Start()
	server := <-ch
	if server == nil {
		b.Fatal("accept failed")
	}
	defer func() {
		client.Close()
		server.Close()
		<-client.Done()
		<-server.Done()
	}()
	ac := NewInternalAgentWireClient(client, "", string(InternalAgentPath))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ac.ListUnits(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
