// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/godbus/dbus/v5"
)

// godbus decodes a struct inside a variant as []any, but encodes []any as an
// array of variants: a received struct-valued variant cannot be sent on as
// it is. FixVariants rebuilds such values, guided by the variant's
// signature, into Go values (runtime struct types) that encode correctly, so
// a forwarded a{sv} keeps its real signatures.

var (
	variantType  = reflect.TypeOf(dbus.Variant{})
	containsMemo sync.Map // reflect.Type -> bool
	sigTypeMemo  sync.Map // string -> reflect.Type
)

// FixVariants returns x with every nested dbus.Variant made encodable. Values
// without variants are returned unchanged and cheaply.
func FixVariants(x any) any {
	if x == nil {
		return nil
	}
	v := reflect.ValueOf(x)
	if !containsVariant(v.Type()) {
		return x
	}
	return fixValue(v).Interface()
}

func containsVariant(t reflect.Type) bool {
	if r, ok := containsMemo.Load(t); ok {
		return r.(bool)
	}
	containsMemo.Store(t, false) // breaks cycles
	var r bool
	switch t.Kind() {
	case reflect.Struct:
		if t == variantType {
			r = true
			break
		}
		for i := 0; i < t.NumField(); i++ {
			if containsVariant(t.Field(i).Type) {
				r = true
			}
		}
	case reflect.Slice, reflect.Array, reflect.Pointer:
		r = containsVariant(t.Elem())
	case reflect.Map:
		r = containsVariant(t.Key()) || containsVariant(t.Elem())
	case reflect.Interface:
		r = true
	}
	containsMemo.Store(t, r)
	return r
}

func fixValue(v reflect.Value) reflect.Value {
	t := v.Type()
	if !containsVariant(t) {
		return v
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == variantType {
			return reflect.ValueOf(fixVariant(v.Interface().(dbus.Variant)))
		}
		out := reflect.New(t).Elem()
		out.Set(v)
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).PkgPath == "" {
				out.Field(i).Set(fixValue(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(fixValue(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(t, v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(it.Key(), fixValue(it.Value()))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(fixValue(v.Elem()))
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		inner := fixValue(v.Elem())
		out := reflect.New(t).Elem()
		out.Set(inner)
		return out
	}
	return v
}

// fixVariant rebuilds the value of v to match its signature when needed.
func fixVariant(v dbus.Variant) dbus.Variant {
	sig := v.Signature().String()
	val := v.Value()
	if val == nil {
		return v
	}
	want, err := goTypeForSig(sig)
	if err != nil {
		return v
	}
	rv := reflect.ValueOf(val)
	if rv.Type() == want && !containsVariant(want) {
		return v
	}
	out, err := rebuild(sig, rv)
	if err != nil {
		return v
	}
	return dbus.MakeVariantWithSignature(out.Interface(), v.Signature())
}

// goTypeForSig returns a Go type whose reflection encoding matches sig.
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

// rebuild converts a decoded value into the type goTypeForSig(sig) gives.
func rebuild(sig string, v reflect.Value) (reflect.Value, error) {
	t, err := goTypeForSig(sig)
	if err != nil {
		return reflect.Value{}, err
	}
	return convert(t, sig, v)
}

func convert(t reflect.Type, sig string, v reflect.Value) (reflect.Value, error) {
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	if t == variantType {
		if vv, ok := v.Interface().(dbus.Variant); ok {
			return reflect.ValueOf(fixVariant(vv)), nil
		}
		return reflect.Value{}, fmt.Errorf("want variant, have %s", v.Type())
	}
	switch t.Kind() {
	case reflect.Slice:
		if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
			return reflect.Value{}, fmt.Errorf("want array, have %s", v.Type())
		}
		elemSig := sig[1:]
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			e, err := convert(t.Elem(), elemSig, v.Index(i))
			if err != nil {
				return reflect.Value{}, err
			}
			out.Index(i).Set(e)
		}
		return out, nil
	case reflect.Map:
		if v.Kind() != reflect.Map {
			return reflect.Value{}, fmt.Errorf("want dict, have %s", v.Type())
		}
		_, valSig, err := splitDictSig(sig)
		if err != nil {
			return reflect.Value{}, err
		}
		out := reflect.MakeMapWithSize(t, v.Len())
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			for k.Kind() == reflect.Interface {
				k = k.Elem()
			}
			if !k.Type().ConvertibleTo(t.Key()) {
				return reflect.Value{}, fmt.Errorf("bad dict key %s", k.Type())
			}
			e, err := convert(t.Elem(), valSig, it.Value())
			if err != nil {
				return reflect.Value{}, err
			}
			out.SetMapIndex(k.Convert(t.Key()), e)
		}
		return out, nil
	case reflect.Struct:
		if t == reflect.TypeOf(dbus.Signature{}) {
			break
		}
		if v.Kind() == reflect.Struct {
			if v.Type() == t {
				return v, nil
			}
			// A typed Go struct already encodes as a D-Bus struct.
			return reflect.Value{}, fmt.Errorf("keep")
		}
		if v.Kind() != reflect.Slice || v.Len() != t.NumField() {
			return reflect.Value{}, fmt.Errorf("want struct of %d fields, have %s", t.NumField(), v.Type())
		}
		fieldSigs, err := splitStructSig(sig)
		if err != nil {
			return reflect.Value{}, err
		}
		out := reflect.New(t).Elem()
		for i := 0; i < t.NumField(); i++ {
			e, err := convert(t.Field(i).Type, fieldSigs[i], v.Index(i))
			if err != nil {
				return reflect.Value{}, err
			}
			out.Field(i).Set(e)
		}
		return out, nil
	}
	if !v.Type().ConvertibleTo(t) {
		return reflect.Value{}, fmt.Errorf("want %s, have %s", t, v.Type())
	}
	return v.Convert(t), nil
}

// splitDictSig splits "a{KV}" into its key and value signatures.
func splitDictSig(sig string) (string, string, error) {
	inner := sig[2 : len(sig)-1]
	_, rest, err := typeOfSig(inner)
	if err != nil {
		return "", "", err
	}
	return inner[:len(inner)-len(rest)], rest, nil
}

// splitStructSig splits "(ABC)" into field signatures.
func splitStructSig(sig string) ([]string, error) {
	inner := sig[1 : len(sig)-1]
	var out []string
	for inner != "" {
		_, rest, err := typeOfSig(inner)
		if err != nil {
			return nil, err
		}
		out = append(out, inner[:len(inner)-len(rest)])
		inner = rest
	}
	return out, nil
}
