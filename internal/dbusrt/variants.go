// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
)

// FixVariants returns x with every nested dbus.Variant made encodable, so
// that a received a{sv} can be forwarded with its real signatures: the
// public client's implementation (bluechi.FixVariants), one copy for both.
func FixVariants(x any) any { return bluechi.FixVariants(x) }

var (
	variantType = reflect.TypeOf(dbus.Variant{})
	sigTypeMemo sync.Map // string -> reflect.Type
)

// goTypeForSig returns a Go type whose reflection encoding matches sig (for
// zeroVariant; the public package keeps its own for FixVariants).
func goTypeForSig(sig string) (reflect.Type, error) {
	if t, ok := sigTypeMemo.Load(sig); ok {
		return t.(reflect.Type), nil
	}
	t, rest, err := typeOfSig(sig)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("signature %q is not one complete type", sig)
	}
	sigTypeMemo.Store(sig, t)
	return t, nil
}

func typeOfSig(s string) (reflect.Type, string, error) {
	if s == "" {
		return nil, "", fmt.Errorf("empty signature")
	}
	switch s[0] {
	case 'y':
		return reflect.TypeOf(byte(0)), s[1:], nil
	case 'b':
		return reflect.TypeOf(false), s[1:], nil
	case 'n':
		return reflect.TypeOf(int16(0)), s[1:], nil
	case 'q':
		return reflect.TypeOf(uint16(0)), s[1:], nil
	case 'i':
		return reflect.TypeOf(int32(0)), s[1:], nil
	case 'u':
		return reflect.TypeOf(uint32(0)), s[1:], nil
	case 'x':
		return reflect.TypeOf(int64(0)), s[1:], nil
	case 't':
		return reflect.TypeOf(uint64(0)), s[1:], nil
	case 'd':
		return reflect.TypeOf(float64(0)), s[1:], nil
	case 's':
		return reflect.TypeOf(""), s[1:], nil
	case 'o':
		return reflect.TypeOf(dbus.ObjectPath("")), s[1:], nil
	case 'g':
		return reflect.TypeOf(dbus.Signature{}), s[1:], nil
	case 'h':
		return reflect.TypeOf(dbus.UnixFD(0)), s[1:], nil
	case 'v':
		return variantType, s[1:], nil
	case 'a':
		if len(s) > 1 && s[1] == '{' {
			k, rest, err := typeOfSig(s[2:])
			if err != nil {
				return nil, "", err
			}
			e, rest, err := typeOfSig(rest)
			if err != nil {
				return nil, "", err
			}
			if rest == "" || rest[0] != '}' {
				return nil, "", fmt.Errorf("unterminated dict entry")
			}
			return reflect.MapOf(k, e), rest[1:], nil
		}
		e, rest, err := typeOfSig(s[1:])
		if err != nil {
			return nil, "", err
		}
		return reflect.SliceOf(e), rest, nil
	case '(':
		var fields []reflect.StructField
		rest := s[1:]
		for rest != "" && rest[0] != ')' {
			f, r, err := typeOfSig(rest)
			if err != nil {
				return nil, "", err
			}
			fields = append(fields, reflect.StructField{Name: fmt.Sprintf("F%d", len(fields)), Type: f})
			rest = r
		}
		if rest == "" {
			return nil, "", fmt.Errorf("unterminated struct")
		}
		return reflect.StructOf(fields), rest[1:], nil
	}
	return nil, "", fmt.Errorf("unknown type code %q", s[0])
}
