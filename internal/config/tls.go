// SPDX-License-Identifier: Apache-2.0

package config

// Mutual TLS on the agent link (issue 15), both daemons' main sections:
//
//	UseTLS=          bool, default false: the controller's TCP listener and
//	                 the agent's TCP connection speak TLS 1.3 with
//	                 certificates on both sides; the unix socket stays plain
//	TLSCertificate=  PEM file: the daemon's certificate chain, leaf first
//	TLSPrivateKey=   PEM file: the leaf's unencrypted private key
//	TLSCA=           PEM file: the certificates that verify the peer
//	TLSServerName=   agent only, default ControllerHost: the name the
//	                 controller's certificate must carry
//
// They layer like every key (defaults, distribution file, admin file,
// drop-ins, -c file; an empty value unsets) and, like every key but the
// three log keys, have no environment variable (config.md §5). The files
// are read by internal/tlsconfig, at start and on SIGHUP.

// TLS configuration keys.
const (
	KeyUseTLS         = "UseTLS"
	KeyTLSCertificate = "TLSCertificate"
	KeyTLSPrivateKey  = "TLSPrivateKey"
	KeyTLSCA          = "TLSCA"
	KeyTLSServerName  = "TLSServerName"
)

// DefaultUseTLS keeps the agent link plain, as upstream's, so upstream
// agents and controllers still connect.
const DefaultUseTLS = false

// TLS holds the TLS keys of one daemon.
type TLS struct {
	Use         bool   // UseTLS (false)
	Certificate string // TLSCertificate (unset)
	PrivateKey  string // TLSPrivateKey (unset)
	CA          string // TLSCA (unset)
	// ServerName is TLSServerName as configured (agent only); "" means
	// ControllerHost, see Agent.TLSServerName.
	ServerName string
}

// tls reads the TLS keys; agent says whether TLSServerName is one.
func (r *reader) tls(agent bool) TLS {
	t := TLS{
		Use:         r.bool(KeyUseTLS),
		Certificate: r.str(KeyTLSCertificate),
		PrivateKey:  r.str(KeyTLSPrivateKey),
		CA:          r.str(KeyTLSCA),
	}
	if agent {
		t.ServerName = r.str(KeyTLSServerName)
	}
	return t
}

// tls writes the TLS keys; serverName is written when not nil (agent).
func (w *renderer) tls(t TLS, serverName *string) {
	w.kv(KeyUseTLS, t.Use)
	w.kv(KeyTLSCertificate, t.Certificate)
	w.kv(KeyTLSPrivateKey, t.PrivateKey)
	w.kv(KeyTLSCA, t.CA)
	if serverName != nil {
		w.kv(KeyTLSServerName, *serverName)
	}
}

// TLSServerName returns the name the controller's certificate must
// carry: TLSServerName, or ControllerHost (after -H) when it is unset.
func (a *Agent) TLSServerName() string {
	if a.TLS.ServerName != "" {
		return a.TLS.ServerName
	}
	return a.ControllerHost
}
