// SPDX-License-Identifier: Apache-2.0

package busconn

import (
	"fmt"
	"strings"
)

// MatchRule is a match rule for signals (D-Bus specification, "Match
// Rules") with the keys the daemons use; empty fields are left out.
type MatchRule struct {
	Sender, Path, PathNamespace, Interface, Member, Arg0 string
}

// String formats the rule as AddMatch takes it: type='signal' and the
// non-empty keys, each value quoted (an apostrophe in a value becomes '\”).
func (r MatchRule) String() string {
	var b strings.Builder
	b.WriteString("type='signal'")
	for _, kv := range [...]struct{ k, v string }{
		{"sender", r.Sender}, {"path", r.Path}, {"path_namespace", r.PathNamespace},
		{"interface", r.Interface}, {"member", r.Member}, {"arg0", r.Arg0},
	} {
		if kv.v == "" {
			continue
		}
		b.WriteString(",")
		b.WriteString(kv.k)
		b.WriteString("=")
		b.WriteString(quoteRuleValue(kv.v))
	}
	return b.String()
}

// quoteRuleValue quotes v for a match rule: inside apostrophes nothing is
// special, so an apostrophe ends the quote, is written escaped and a new
// quote begins.
func quoteRuleValue(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// Limits of bus names (D-Bus specification, "Bus names").
const (
	maxNameLength    = 255
	uniqueNamePrefix = ':'
	minNameElements  = 2
)

// CheckBusName returns an error unless name is a valid bus name (D-Bus
// specification, "Bus names"): a unique name (":1.42") or a well-known
// one ("org.example.Service"): at most 255 bytes, at least two non-empty
// elements separated by dots, of ASCII letters, digits, '_' and '-', the
// elements of a well-known name not starting with a digit.
func CheckBusName(name string) error {
	bad := func(why string) error { return fmt.Errorf("bad bus name %q: %s", name, why) }
	if name == "" {
		return bad("empty")
	}
	if len(name) > maxNameLength {
		return bad(fmt.Sprintf("longer than %d bytes", maxNameLength))
	}
	unique := name[0] == uniqueNamePrefix
	rest := name
	if unique {
		rest = name[1:]
	}
	elems := strings.Split(rest, ".")
	if len(elems) < minNameElements {
		return bad("needs at least two elements separated by dots")
	}
	for _, e := range elems {
		if e == "" {
			return bad("empty element")
		}
		for i := 0; i < len(e); i++ {
			c := e[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-':
			case c >= '0' && c <= '9':
				if i == 0 && !unique {
					return bad("an element starts with a digit")
				}
			default:
				return bad(fmt.Sprintf("character %q is not allowed", c))
			}
		}
	}
	return nil
}
