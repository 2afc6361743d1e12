// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/testcerts"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
)

// ControllerHost is where the cluster's agents reach the controller over
// TCP; the controller certificate of MakeCerts carries it as IP SAN (and
// "localhost" as DNS SAN).
const ControllerHost = "127.0.0.1"

// MakeCerts makes the cluster's TLS material in dir/tls: a CA, a
// controller certificate for ControllerHost and localhost, and a
// certificate per node with the node name as DNS SAN.
func MakeCerts(dir string, names []string) (*testcerts.Set, error) {
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return nil, err
	}
	s, err := testcerts.New(tdir, []string{"localhost", ControllerHost}, names...)
	if err != nil {
		return nil, fmt.Errorf("cluster: making certificates: %w", err)
	}
	return s, nil
}

// ControllerConfig returns the controller's configuration file of a
// cluster of names listening on port (and on its unix socket); with
// certs, UseTLS=yes and the controller's files. extra are more lines.
func ControllerConfig(names []string, port int, certs *testcerts.Set, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[bluechi-controller]\nAllowedNodeNames=%s\nControllerPort=%d\nUseTCP=true\nUseUDS=true\nLogTarget=stderr\n",
		strings.Join(names, ","), port)
	if certs != nil {
		writeTLS(&b, certs.Controller)
	}
	b.WriteString(extra)
	return b.String()
}

// AgentConfig returns the configuration file of node name's agent; with
// certs, UseTLS=yes and the node's files (TLSServerName is left to its
// default, ControllerHost). extra are more lines.
func AgentConfig(name string, certs *testcerts.Set, extra string) string {
	var b strings.Builder
	b.WriteString("[bluechi-agent]\nLogTarget=stderr\n")
	if certs != nil {
		writeTLS(&b, certs.Nodes[name])
	}
	b.WriteString(extra)
	return b.String()
}

func writeTLS(b *strings.Builder, f tlsconfig.Files) {
	fmt.Fprintf(b, "%s=yes\n%s=%s\n%s=%s\n%s=%s\n", config.KeyUseTLS,
		config.KeyTLSCertificate, f.Certificate, config.KeyTLSPrivateKey, f.PrivateKey, config.KeyTLSCA, f.CA)
}
