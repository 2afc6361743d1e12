// SPDX-License-Identifier: Apache-2.0

package tlsconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made in the test.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var serial atomic.Int64

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t *testing.T, name string) *testCA {
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf describes a certificate to issue.
type leaf struct {
	cn        string
	dns       []string
	ips       []net.IP
	emails    []string
	notBefore time.Time // zero: an hour ago
	notAfter  time.Time // zero: in 30 days
	server    bool      // server auth (else client auth)
}

// issue signs l and returns the certificate PEM and its key PEM (PKCS#8).
func (ca *testCA) issue(l leaf) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t := ca.t
	key := newKey(t)
	if l.notBefore.IsZero() {
		l.notBefore = time.Now().Add(-time.Hour)
	}
	if l.notAfter.IsZero() {
		l.notAfter = time.Now().Add(30 * 24 * time.Hour)
	}
	eku := x509.ExtKeyUsageClientAuth
	if l.server {
		eku = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(serial.Add(1)),
		Subject:        pkix.Name{CommonName: l.cn},
		DNSNames:       l.dns,
		IPAddresses:    l.ips,
		EmailAddresses: l.emails,
		NotBefore:      l.notBefore,
		NotAfter:       l.notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	k8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8}), cert
}

// files writes a daemon's three files into dir and returns their names.
func (ca *testCA) files(dir, name string, l leaf) Files {
	certPEM, keyPEM, _ := ca.issue(l)
	f := Files{
		Certificate: filepath.Join(dir, name+".crt"),
		PrivateKey:  filepath.Join(dir, name+".key"),
		CA:          filepath.Join(dir, name+"-ca.crt"),
	}
	write(ca.t, f.Certificate, certPEM)
	write(ca.t, f.PrivateKey, keyPEM)
	write(ca.t, f.CA, ca.pem)
	return f
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
