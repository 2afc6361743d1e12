// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"fmt"
	"net"
	"strings"
)

// Address is one entry of a D-Bus address such as
// "tcp:host=10.0.0.1,port=842" or "unix:path=/run/bluechi/bluechi.sock".
type Address struct {
	// Transport is the part before the colon, e.g. "tcp" or "unix".
	Transport string
	// Params holds the unescaped key=value pairs.
	Params map[string]string
}

// ParseAddress splits a D-Bus address into its entries (separated by ';')
// and unescapes their values. It does not check that the transports are
// supported; Address.Network does.
func ParseAddress(s string) ([]Address, error) {
	var out []Address
	for entry := range strings.SplitSeq(s, ";") {
		if entry == "" {
			continue
		}
		transport, rest, ok := strings.Cut(entry, ":")
		if !ok || transport == "" {
			return nil, fmt.Errorf("transport: address entry %q has no transport name", entry)
		}
		a := Address{Transport: transport, Params: map[string]string{}}
		if rest != "" {
			for kv := range strings.SplitSeq(rest, ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return nil, fmt.Errorf("transport: address entry %q: malformed key=value %q", entry, kv)
				}
				uv, err := unescapeValue(v)
				if err != nil {
					return nil, fmt.Errorf("transport: address entry %q, key %s: %w", entry, k, err)
				}
				if _, dup := a.Params[k]; dup {
					return nil, fmt.Errorf("transport: address entry %q: duplicate key %s", entry, k)
				}
				a.Params[k] = uv
			}
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("transport: empty D-Bus address %q", s)
	}
	return out, nil
}

// unescapeValue decodes the %XX escapes of a D-Bus address value.
func unescapeValue(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", fmt.Errorf("truncated escape in %q", v)
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q in %q", v[i:i+3], v)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Network returns the Go network and address (as for net.Dial) of a
// "tcp:host=H,port=P[,family=ipv4|ipv6]", "unix:path=P" or
// "unix:abstract=N" entry. Host may be a raw IPv6 literal.
func (a Address) Network() (network, address string, err error) {
	switch a.Transport {
	case "tcp":
		host, port := a.Params["host"], a.Params["port"]
		if host == "" || port == "" {
			return "", "", fmt.Errorf("transport: tcp address needs host and port")
		}
		network = "tcp"
		switch a.Params["family"] {
		case "":
		case "ipv4":
			network = "tcp4"
		case "ipv6":
			network = "tcp6"
		default:
			return "", "", fmt.Errorf("transport: unknown tcp family %q", a.Params["family"])
		}
		return network, net.JoinHostPort(strings.Trim(host, "[]"), port), nil
	case "unix":
		path, hasPath := a.Params["path"]
		abstract, hasAbstract := a.Params["abstract"]
		switch {
		case hasPath && hasAbstract:
			return "", "", fmt.Errorf("transport: unix address has both path and abstract")
		case hasPath && path != "":
			return "unix", path, nil
		case hasAbstract && abstract != "":
			return "unix", "@" + abstract, nil
		}
		return "", "", fmt.Errorf("transport: unix address needs path or abstract")
	}
	return "", "", fmt.Errorf("transport: unsupported D-Bus transport %q", a.Transport)
}
