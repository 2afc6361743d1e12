// SPDX-License-Identifier: Apache-2.0

// TEMPORARY stand-in (helper ctrl, session 9) for the wire bindings that
// helper gen generates on branch s9-gen (notes/wire-api.md): only what the
// controller uses, written by hand so that the controller builds and its
// tests run before s9-gen lands. It is deleted when s9-gen is merged.

package daemonapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

const (
	InternalAgentListUnitsOutSig           = "a(ssssssouso)"
	InternalAgentJobDoneSig                = "us"
	InternalAgentJobStateChangedSig        = "us"
	InternalAgentUnitNewSig                = "ss"
	InternalAgentUnitRemovedSig            = "s"
	InternalAgentUnitStateChangedSig       = "ssss"
	InternalAgentUnitPropertiesChangedSig  = "ssa{sv}"
	InternalAgentProxyNewSig               = "sso"
	InternalAgentProxyRemovedSig           = "ss"
	InternalAgentMetricsAgentJobMetricsSig = "sst"
	InternalControllerRegisterInSig        = "s"
)

func stubEncode(args ...any) (string, []byte, error) {
	if len(args) == 0 {
		return "", nil, nil
	}
	m := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(dbus.ObjectPath("/a")), dbus.FieldInterface: dbus.MakeVariant("a.b"),
		dbus.FieldMember: dbus.MakeVariant("C"), dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(args...)),
	}, Body: args}
	var b bytes.Buffer
	if err := m.EncodeTo(&b, binary.LittleEndian); err != nil {
		return "", nil, err
	}
	raw := b.Bytes()
	off := 16 + int(binary.LittleEndian.Uint32(raw[12:]))
	off = (off + 7) &^ 7
	return dbus.SignatureOf(args...).String(), append([]byte(nil), raw[off:]...), nil
}

func stubDecode(sig string, body []byte, outs ...any) error {
	if len(outs) == 0 {
		return nil
	}
	frame := wire.AppendSignal(nil, 1, "/a", "a.b", "C", "", sig, body)
	m, err := dbus.DecodeMessage(bytes.NewReader(frame))
	if err != nil {
		return err
	}
	return dbus.Store(m.Body, outs...)
}

type InternalAgentWireClient struct {
	conn       *wireconn.Conn
	dest, path string
}

func NewInternalAgentWireClient(conn *wireconn.Conn, dest, path string) *InternalAgentWireClient {
	return &InternalAgentWireClient{conn, dest, path}
}
func (c *InternalAgentWireClient) Conn() *wireconn.Conn { return c.conn }

func (c *InternalAgentWireClient) call(ctx context.Context, member string, outs []any, args ...any) error {
	sig, body, err := stubEncode(args...)
	if err != nil {
		return err
	}
	r, err := c.conn.Call(ctx, &wireconn.Request{Destination: c.dest, Path: c.path, Interface: InternalAgentInterface, Member: member, Signature: sig, Body: body})
	if err != nil {
		return err
	}
	if r.BigEndian {
		return fmt.Errorf("stub: big endian")
	}
	return stubDecode(r.Signature, r.Body, outs...)
}

func (c *InternalAgentWireClient) send(member string, args ...any) error {
	sig, body, err := stubEncode(args...)
	if err != nil {
		return err
	}
	return c.conn.Send(&wireconn.Request{Destination: c.dest, Path: c.path, Interface: InternalAgentInterface, Member: member, Signature: sig, Body: body})
}

func (c *InternalAgentWireClient) StartUnit(ctx context.Context, name, mode string, id uint32) error {
	return c.call(ctx, "StartUnit", nil, name, mode, id)
}
func (c *InternalAgentWireClient) StopUnit(ctx context.Context, name, mode string, id uint32) error {
	return c.call(ctx, "StopUnit", nil, name, mode, id)
}
func (c *InternalAgentWireClient) RestartUnit(ctx context.Context, name, mode string, id uint32) error {
	return c.call(ctx, "RestartUnit", nil, name, mode, id)
}
func (c *InternalAgentWireClient) ReloadUnit(ctx context.Context, name, mode string, id uint32) error {
	return c.call(ctx, "ReloadUnit", nil, name, mode, id)
}
func (c *InternalAgentWireClient) StartTransientUnit(ctx context.Context, name, mode string, props []bluechi.UnitProperty, aux []bluechi.AuxUnit) (job dbus.ObjectPath, err error) {
	err = c.call(ctx, "StartTransientUnit", []any{&job}, name, mode, props, aux)
	return
}
func (c *InternalAgentWireClient) FreezeUnit(ctx context.Context, name string) error {
	return c.call(ctx, "FreezeUnit", nil, name)
}
func (c *InternalAgentWireClient) ThawUnit(ctx context.Context, name string) error {
	return c.call(ctx, "ThawUnit", nil, name)
}
func (c *InternalAgentWireClient) KillUnit(ctx context.Context, name, who string, signal int32) error {
	return c.call(ctx, "KillUnit", nil, name, who, signal)
}
func (c *InternalAgentWireClient) GetUnitProperties(ctx context.Context, name, iface string) (props map[string]dbus.Variant, err error) {
	err = c.call(ctx, "GetUnitProperties", []any{&props}, name, iface)
	return
}
func (c *InternalAgentWireClient) GetUnitProperty(ctx context.Context, name, iface, prop string) (v dbus.Variant, err error) {
	err = c.call(ctx, "GetUnitProperty", []any{&v}, name, iface, prop)
	return
}
func (c *InternalAgentWireClient) SetUnitProperties(ctx context.Context, name string, runtime bool, kv []bluechi.UnitProperty) error {
	return c.call(ctx, "SetUnitProperties", nil, name, runtime, kv)
}
func (c *InternalAgentWireClient) EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (carries bool, changes []bluechi.UnitFileChange, err error) {
	err = c.call(ctx, "EnableUnitFiles", []any{&carries, &changes}, files, runtime, force)
	return
}
func (c *InternalAgentWireClient) DisableUnitFiles(ctx context.Context, files []string, runtime bool) (changes []bluechi.UnitFileChange, err error) {
	err = c.call(ctx, "DisableUnitFiles", []any{&changes}, files, runtime)
	return
}
func (c *InternalAgentWireClient) ListUnits(ctx context.Context) (units []bluechi.UnitInfo, err error) {
	err = c.call(ctx, "ListUnits", []any{&units})
	return
}
func (c *InternalAgentWireClient) ListUnitFiles(ctx context.Context) (files []bluechi.UnitFileInfo, err error) {
	err = c.call(ctx, "ListUnitFiles", []any{&files})
	return
}
func (c *InternalAgentWireClient) GetUnitFileState(ctx context.Context, file string) (state string, err error) {
	err = c.call(ctx, "GetUnitFileState", []any{&state}, file)
	return
}
func (c *InternalAgentWireClient) Reload(ctx context.Context) error {
	return c.call(ctx, "Reload", nil)
}
func (c *InternalAgentWireClient) SetLogLevel(ctx context.Context, l string) error {
	return c.call(ctx, "SetLogLevel", nil, l)
}
func (c *InternalAgentWireClient) ResetFailed(ctx context.Context) error {
	return c.call(ctx, "ResetFailed", nil)
}
func (c *InternalAgentWireClient) ResetFailedUnit(ctx context.Context, name string) error {
	return c.call(ctx, "ResetFailedUnit", nil, name)
}
func (c *InternalAgentWireClient) GetDefaultTarget(ctx context.Context) (t string, err error) {
	err = c.call(ctx, "GetDefaultTarget", []any{&t})
	return
}
func (c *InternalAgentWireClient) SetDefaultTarget(ctx context.Context, t string, force bool) (out []bluechi.UnitFileChange, err error) {
	err = c.call(ctx, "SetDefaultTarget", []any{&out}, t, force)
	return
}
func (c *InternalAgentWireClient) JobCancel(ctx context.Context, id uint32) error {
	return c.call(ctx, "JobCancel", nil, id)
}
func (c *InternalAgentWireClient) SendSubscribe(u string) error   { return c.send("Subscribe", u) }
func (c *InternalAgentWireClient) SendUnsubscribe(u string) error { return c.send("Unsubscribe", u) }
func (c *InternalAgentWireClient) SendStartDep(u string) error    { return c.send("StartDep", u) }
func (c *InternalAgentWireClient) SendStopDep(u string) error     { return c.send("StopDep", u) }
func (c *InternalAgentWireClient) SendEnableMetrics() error       { return c.send("EnableMetrics") }
func (c *InternalAgentWireClient) SendDisableMetrics() error      { return c.send("DisableMetrics") }

type InternalProxyWireClient struct {
	conn       *wireconn.Conn
	dest, path string
}

func NewInternalProxyWireClient(conn *wireconn.Conn, dest, path string) *InternalProxyWireClient {
	return &InternalProxyWireClient{conn, dest, path}
}
func (c *InternalProxyWireClient) send(member string, args ...any) error {
	sig, body, err := stubEncode(args...)
	if err != nil {
		return err
	}
	return c.conn.Send(&wireconn.Request{Destination: c.dest, Path: c.path, Interface: InternalProxyInterface, Member: member, Signature: sig, Body: body})
}
func (c *InternalProxyWireClient) SendError(m string) error     { return c.send("Error", m) }
func (c *InternalProxyWireClient) SendTargetNew(r string) error { return c.send("TargetNew", r) }
func (c *InternalProxyWireClient) SendTargetStateChanged(s, sub, r string) error {
	return c.send("TargetStateChanged", s, sub, r)
}
func (c *InternalProxyWireClient) SendTargetRemoved(r string) error {
	return c.send("TargetRemoved", r)
}

func EmitInternalControllerHeartbeatWire(conn *wireconn.Conn, path string, s InternalControllerHeartbeatSignal) error {
	return conn.Emit(path, InternalControllerInterface, InternalControllerSignalHeartbeat, "", nil)
}

func DecodeInternalAgentProxyNew(m *wire.Message) (s InternalAgentProxyNewSignal, err error) {
	if m.Signature != InternalAgentProxyNewSig {
		return s, fmt.Errorf("signature %q", m.Signature)
	}
	err = stubDecode(m.Signature, m.Body, &s.NodeName, &s.UnitName, &s.Proxy)
	return
}
func DecodeInternalAgentProxyRemoved(m *wire.Message) (s InternalAgentProxyRemovedSignal, err error) {
	if m.Signature != InternalAgentProxyRemovedSig {
		return s, fmt.Errorf("signature %q", m.Signature)
	}
	err = stubDecode(m.Signature, m.Body, &s.NodeName, &s.UnitName)
	return
}
func DecodeInternalAgentMetricsAgentJobMetrics(m *wire.Message) (s InternalAgentMetricsAgentJobMetricsSignal, err error) {
	if m.Signature != InternalAgentMetricsAgentJobMetricsSig {
		return s, fmt.Errorf("signature %q", m.Signature)
	}
	err = stubDecode(m.Signature, m.Body, &s.Unit, &s.Method, &s.SystemdJobTimeMicros)
	return
}

func InternalControllerWireInterface(srv InternalControllerServer) *wireconn.Interface {
	return &wireconn.Interface{Name: InternalControllerInterface, Methods: []string{InternalControllerMethodRegister}, XML: internalControllerXML,
		Call: func(c *wireconn.Conn, m *wire.Message) {
			call := &wire.Message{Serial: m.Serial, Sender: strings.Clone(m.Sender), Flags: m.Flags}
			if m.Signature != InternalControllerRegisterInSig {
				c.ReplyError(call, wireconn.ErrInvalidArgs, "Invalid arguments")
				return
			}
			r := wire.NewReader(m.Body, m.BigEndian)
			name, err := r.String()
			if err == nil {
				err = r.Done()
			}
			if err != nil {
				c.ReplyError(call, wireconn.ErrInvalidArgs, "Invalid arguments")
				return
			}
			name = strings.Clone(name)
			go func() {
				if err := srv.Register(context.Background(), name); err != nil {
					c.ReplyError(call, dbusrt.ErrorName(err), dbusrt.ErrorMessage(err))
					return
				}
				c.Reply(call, "", nil)
			}()
		}}
}
