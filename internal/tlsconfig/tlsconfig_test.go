// SPDX-License-Identifier: Apache-2.0

package tlsconfig

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCertificateNames(t *testing.T) {
	u, _ := url.Parse("spiffe://fleet/node1")
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		node string
		want bool
	}{
		{"DNS SAN equal", &x509.Certificate{DNSNames: []string{"node1"}}, "node1", true},
		{"second DNS SAN equal", &x509.Certificate{DNSNames: []string{"a", "node1"}}, "node1", true},
		{"DNS SAN differs", &x509.Certificate{DNSNames: []string{"node2"}}, "node1", false},
		{"DNS SAN differs in case", &x509.Certificate{DNSNames: []string{"Node1"}}, "node1", false},
		{"DNS SAN is a prefix", &x509.Certificate{DNSNames: []string{"node1.example"}}, "node1", false},
		{"wildcard SAN is no match", &x509.Certificate{DNSNames: []string{"*"}}, "node1", false},
		{"CN ignored when there are SANs", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}, DNSNames: []string{"node2"}}, "node1", false},
		{"CN ignored with only an IP SAN", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, "node1", false},
		{"CN ignored with only an email SAN", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}, EmailAddresses: []string{"a@b"}}, "node1", false},
		{"CN ignored with only a URI SAN", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}, URIs: []*url.URL{u}}, "node1", false},
		{"CN without SAN equal", &x509.Certificate{Subject: pkix.Name{CommonName: "node1"}}, "node1", true},
		{"CN without SAN differs", &x509.Certificate{Subject: pkix.Name{CommonName: "node2"}}, "node1", false},
		{"empty name never", &x509.Certificate{}, "", false},
		{"no certificate", nil, "node1", false},
	} {
		if got := CertificateNames(c.cert, c.node); got != c.want {
			t.Errorf("%s: CertificateNames = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "fleet CA")
	good := ca.files(dir, "good", leaf{cn: "node1", dns: []string{"node1"}})
	m, warnings, err := Load(good, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 || m.Pair.Leaf == nil || m.Pair.Leaf.Subject.CommonName != "node1" || len(m.Pair.Certificate) != 1 {
		t.Fatalf("loaded %+v, warnings %q", m.Pair.Leaf, warnings)
	}

	// A chain file with the intermediate after the leaf, and other PEM
	// blocks around, loads with both certificates.
	chained := good
	chained.Certificate = filepath.Join(dir, "chain.crt")
	certPEM, _ := os.ReadFile(good.Certificate)
	write(t, chained.Certificate, append(append([]byte("junk before\n-----BEGIN X-----\nAA==\n-----END X-----\n"), certPEM...), ca.pem...))
	if m, _, err := Load(chained, time.Now()); err != nil || len(m.Pair.Certificate) != 2 {
		t.Fatalf("chain: %v", err)
	}

	other := newCA(t, "other CA").files(dir, "other", leaf{cn: "node1"})
	soon := ca.files(dir, "soon", leaf{cn: "node1", notAfter: time.Now().Add(3 * 24 * time.Hour)})
	expired := ca.files(dir, "expired", leaf{cn: "node1", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	future := ca.files(dir, "future", leaf{cn: "node1", notBefore: time.Now().Add(24 * time.Hour)})
	garbage := filepath.Join(dir, "garbage")
	write(t, garbage, []byte("not PEM at all\n"))
	badDER := filepath.Join(dir, "bad.der")
	write(t, badDER, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	encrypted := filepath.Join(dir, "enc.key")
	write(t, encrypted, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	missing := filepath.Join(dir, "missing.crt")

	with := func(f Files, edit func(*Files)) Files { edit(&f); return f }
	for _, c := range []struct {
		name  string
		files Files
		want  []string // substrings of the error
	}{
		{"missing certificate", with(good, func(f *Files) { f.Certificate = missing }), []string{"TLSCertificate " + missing, "no such file"}},
		{"certificate is a directory", with(good, func(f *Files) { f.Certificate = dir }), []string{"TLSCertificate " + dir, "cannot read", "directory"}},
		{"missing key", with(good, func(f *Files) { f.PrivateKey = missing }), []string{"TLSPrivateKey " + missing, "no such file"}},
		{"missing CA", with(good, func(f *Files) { f.CA = missing }), []string{"TLSCA " + missing, "no such file"}},
		{"certificate not PEM", with(good, func(f *Files) { f.Certificate = garbage }), []string{"TLSCertificate " + garbage, "no PEM certificate"}},
		{"certificate not DER", with(good, func(f *Files) { f.Certificate = badDER }), []string{"TLSCertificate " + badDER, "certificate 1"}},
		{"key not PEM", with(good, func(f *Files) { f.PrivateKey = garbage }), []string{"TLSPrivateKey " + garbage, "no PEM private key"}},
		{"key encrypted", with(good, func(f *Files) { f.PrivateKey = encrypted }), []string{"TLSPrivateKey " + encrypted, "encrypted"}},
		{"key is a certificate", with(good, func(f *Files) { f.PrivateKey = good.Certificate }), []string{"TLSPrivateKey " + good.Certificate, "no PEM private key"}},
		{"CA not PEM", with(good, func(f *Files) { f.CA = garbage }), []string{"TLSCA " + garbage, "no PEM certificate"}},
		{"key of another certificate", with(good, func(f *Files) { f.PrivateKey = other.PrivateKey }),
			[]string{"TLSPrivateKey " + other.PrivateKey, "does not belong to the certificate in TLSCertificate " + good.Certificate, "CN=node1"}},
		{"expired certificate", expired, []string{"TLSCertificate " + expired.Certificate, "expired on"}},
		{"certificate not valid yet", future, []string{"TLSCertificate " + future.Certificate, "not valid before"}},
		{"nothing set", Files{}, []string{"UseTLS is on but TLSCertificate, TLSPrivateKey and TLSCA are not set"}},
		{"CA not set", with(good, func(f *Files) { f.CA = "" }), []string{"UseTLS is on but TLSCA is not set"}},
	} {
		_, _, err := Load(c.files, time.Now())
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
	}

	// Expiring within 7 days: loaded, with a warning naming the file; the
	// same material checked later (the daily check) says it has expired.
	m, warnings, err = Load(soon, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "TLSCertificate "+soon.Certificate) || !strings.Contains(warnings[0], "expires on") {
		t.Fatalf("warnings %q", warnings)
	}
	if w := m.Warnings(time.Now().Add(4 * 24 * time.Hour)); len(w) != 1 || !strings.Contains(w[0], "expired on") {
		t.Fatalf("warnings four days later %q", w)
	}
	if w := m.Warnings(time.Now().Add(-5 * 24 * time.Hour)); len(w) != 0 {
		t.Fatalf("warnings with eight days left %q", w)
	}
}

// TestCheckExpiry: the periodic check repeats the warning of a certificate
// close to its end, with the holder's clock.
func TestCheckExpiry(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "fleet CA")
	files := ca.files(dir, "n", leaf{cn: "n", notAfter: time.Now().Add(10 * 24 * time.Hour)})
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	h, warnings, err := newHolder(files, func() time.Time { return time.Unix(0, now.Load()) })
	if err != nil || len(warnings) != 0 {
		t.Fatalf("%v, %q", err, warnings)
	}
	now.Add(int64(5 * 24 * time.Hour)) // five days later: five left
	got := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.CheckExpiry(ctx, time.Millisecond, func(w string) { got <- w }); close(done) }()
	select {
	case w := <-got:
		if !strings.Contains(w, "TLSCertificate "+files.Certificate) || !strings.Contains(w, "expires on") {
			t.Errorf("warning %q", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no warning")
	}
	cancel()
	<-done
}

// TestCABundleChangeOver: a TLSCA bundle may keep an expired CA next to a
// valid one (a warning); one with no valid CA is refused.
func TestCABundleChangeOver(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "new CA")
	files := ca.files(dir, "n", leaf{cn: "n"})
	old := newCA(t, "old CA")
	oldPEM, _, _ := old.issue(leaf{cn: "old CA", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	write(t, files.CA, append(append([]byte{}, oldPEM...), ca.pem...))
	_, warnings, err := Load(files, time.Now())
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "TLSCA "+files.CA) || !strings.Contains(warnings[0], "expired on") {
		t.Fatalf("bundle with an expired and a valid CA: %v, %q", err, warnings)
	}
	write(t, files.CA, oldPEM)
	if _, _, err := Load(files, time.Now()); err == nil || !strings.Contains(err.Error(), "TLSCA "+files.CA) || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("bundle with only an expired CA: %v", err)
	}
}
