// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

const testName = "org.eclipse.bluechi.Test"

// rtEnv is a pair of connected D-Bus connections for round-trip tests.
type rtEnv struct {
	name       string
	server     *dbus.Conn // exports the objects
	client     *dbus.Conn // calls them
	dest       string     // bus name of the server side
	clientName string     // unique name of the client
}

// newRoundTripEnvs returns the round-trip environments: two godbus
// connections on a private dbus-daemon. (A peer-to-peer environment is
// gone: godbus has only the client half of SASL, and the peer links run on
// internal/wireconn, tested there and in internal/daemonapi.)
func newRoundTripEnvs(t *testing.T) []*rtEnv {
	return []*rtEnv{busEnv(t)}
}

func busEnv(t *testing.T) *rtEnv {
	server, client := peerPair(t)
	return &rtEnv{name: "bus", server: server, client: client, dest: testName, clientName: dbusrt.UniqueName(client)}
}

// peerPair connects two dbusrt-served godbus connections to a private
// dbus-daemon; the server end, prepared by prepare, owns testName.
func peerPair(t testing.TB, prepare ...func(*dbusrt.Server)) (server, client *dbus.Conn) {
	bus := testbus.Start(t)
	server, _, err := dbusrt.ConnectBus(bus.Address, prepare...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	if err := dbusrt.RequestName(server, testName); err != nil {
		t.Fatal(err)
	}
	client, _, err = dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return server, client
}

// recv waits for one value with a deadline.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing received within 10s")
		panic("unreachable")
	}
}

// checkSame compares two D-Bus values by their wire meaning: structs,
// slices of any kind and []any compare by elements, variants by signature
// and value.
func checkSame(t testing.TB, what string, got, want any) {
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
			if v.Type().Field(i).PkgPath == "" {
				out = append(out, genericValue(v.Field(i)))
			}
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
			out = append(out, kv{K: formatKey(it.Key()), V: genericValue(it.Value())})
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

func formatKey(v reflect.Value) string {
	for v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	return fmt.Sprintf("%T:%v", v.Interface(), v.Interface())
}
