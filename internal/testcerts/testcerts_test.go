// SPDX-License-Identifier: Apache-2.0

package testcerts

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/tlsconfig"
)

// TestSet: what New and the variants write loads with tlsconfig as a
// daemon would load it, and each certificate is what its name says.
func TestSet(t *testing.T) {
	s, err := New(t.TempDir(), nil, "node1", "node2")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	load := func(f tlsconfig.Files) *tlsconfig.Material {
		t.Helper()
		m, warnings, err := tlsconfig.Load(f, now)
		if err != nil || len(warnings) > 0 {
			t.Fatalf("%s: %v %v", f.Certificate, err, warnings)
		}
		return m
	}
	verify := func(m *tlsconfig.Material, usage x509.ExtKeyUsage) error {
		_, err := m.Pair.Leaf.Verify(x509.VerifyOptions{Roots: m.CAs, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	ctrl := load(s.Controller)
	if err := verify(ctrl, x509.ExtKeyUsageServerAuth); err != nil {
		t.Error(err)
	}
	if err := ctrl.Pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := ctrl.Pair.Leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	for _, n := range []string{"node1", "node2"} {
		m := load(s.Nodes[n])
		if err := verify(m, x509.ExtKeyUsageClientAuth); err != nil {
			t.Error(err)
		}
		if !tlsconfig.CertificateNames(m.Pair.Leaf, n) || tlsconfig.CertificateNames(m.Pair.Leaf, "node3") {
			t.Errorf("%s: certificate names %v", n, m.Pair.Leaf.DNSNames)
		}
	}
	cn, err := s.CNOnly("node3")
	if err != nil {
		t.Fatal(err)
	}
	if m := load(cn); len(m.Pair.Leaf.DNSNames) != 0 || !tlsconfig.CertificateNames(m.Pair.Leaf, "node3") {
		t.Errorf("CN-only certificate: %v %q", m.Pair.Leaf.DNSNames, m.Pair.Leaf.Subject.CommonName)
	}
	other, err := s.OtherCA("node1")
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(load(other), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("a certificate of another CA verifies against the set's CA")
	}
	exp, err := s.Expired("node1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tlsconfig.Load(exp, now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired certificate: %v", err)
	}
}
