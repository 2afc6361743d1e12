// SPDX-License-Identifier: Apache-2.0

// Package testcerts makes the certificates of a mutual-TLS fleet with
// crypto/x509 (no openssl needed): a CA, a controller certificate, node
// certificates (with the node name as DNS SAN, or CN only) and the
// certificates a test wants refused (expired, signed by another CA). The
// tests and the local sandbox cluster use it; it has no place in the
// daemons.
//
// Keys are ECDSA P-256, written as PKCS#8 with mode 0600; certificates are
// written as PEM with mode 0644.
package testcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/bluechi-go/bluechi/internal/tlsconfig"
)

// CA is a certificate authority made here.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // Cert as PEM
}

// NewCA makes a self-signed CA valid from an hour ago for ten years.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA %q: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CN  string
	DNS []string // DNS SANs
	IPs []net.IP // IP SANs
	// NotBefore and NotAfter default to an hour ago and 30 days on.
	NotBefore, NotAfter time.Time
	// Server marks a controller certificate (server auth); otherwise it
	// is a node's (client auth).
	Server bool
}

// Pair is an issued certificate with its key.
type Pair struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte // PKCS#8
}

// Issue signs l with ca.
func (ca *CA) Issue(l Leaf) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(30 * 24 * time.Hour)
	}
	eku := x509.ExtKeyUsageClientAuth
	if l.Server {
		eku = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: l.CN},
		DNSNames:     l.DNS,
		IPAddresses:  l.IPs,
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: certificate %q: %w", l.CN, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	k8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", k8)}, nil
}

// Write writes p as dir/name.crt and dir/name.key.
func (p *Pair) Write(dir, name string) (cert, key string, err error) {
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, p.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(key, p.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	return cert, key, nil
}

// Set is the material of one fleet in one folder: the CA's certificate
// (ca.crt) and, per name, name.crt and name.key.
type Set struct {
	Dir    string
	CA     *CA
	CAFile string // Dir/ca.crt
	// Controller's files: the certificate carries the DNS names and IP
	// addresses given to New.
	Controller tlsconfig.Files
	// Nodes' files by node name, each with the name as DNS SAN (and CN).
	Nodes map[string]tlsconfig.Files
}

// New makes a CA and writes into dir (which must exist) its certificate,
// a controller certificate for controllerNames (DNS names or IP
// addresses; "localhost" and 127.0.0.1 when empty) and a certificate for
// each node.
func New(dir string, controllerNames []string, nodes ...string) (*Set, error) {
	ca, err := NewCA("BlueChi test CA")
	if err != nil {
		return nil, err
	}
	s := &Set{Dir: dir, CA: ca, CAFile: filepath.Join(dir, "ca.crt"), Nodes: map[string]tlsconfig.Files{}}
	if err := os.WriteFile(s.CAFile, ca.PEM, 0o644); err != nil {
		return nil, err
	}
	if len(controllerNames) == 0 {
		controllerNames = []string{"localhost", "127.0.0.1"}
	}
	l := Leaf{CN: controllerNames[0], Server: true}
	for _, n := range controllerNames {
		if ip := net.ParseIP(n); ip != nil {
			l.IPs = append(l.IPs, ip)
		} else {
			l.DNS = append(l.DNS, n)
		}
	}
	if s.Controller, err = s.Issue("controller", l); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if s.Nodes[n], err = s.Node(n); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Issue signs l with the set's CA and writes it as dir/file.crt and
// dir/file.key; the files' CA is the set's.
func (s *Set) Issue(file string, l Leaf) (tlsconfig.Files, error) {
	return s.issueBy(s.CA, file, l)
}

func (s *Set) issueBy(ca *CA, file string, l Leaf) (tlsconfig.Files, error) {
	p, err := ca.Issue(l)
	if err != nil {
		return tlsconfig.Files{}, err
	}
	cert, key, err := p.Write(s.Dir, file)
	if err != nil {
		return tlsconfig.Files{}, err
	}
	return tlsconfig.Files{Certificate: cert, PrivateKey: key, CA: s.CAFile}, nil
}

// Node issues a node certificate with name as CN and DNS SAN, in
// dir/name.crt and dir/name.key (a second call replaces them: a rotation).
func (s *Set) Node(name string) (tlsconfig.Files, error) {
	return s.Issue(name, Leaf{CN: name, DNS: []string{name}})
}

// CNOnly issues a node certificate without any SAN whose CN is name, in
// dir/name-cn.crt.
func (s *Set) CNOnly(name string) (tlsconfig.Files, error) {
	return s.Issue(name+"-cn", Leaf{CN: name})
}

// Expired issues a node certificate for name that expired an hour ago, in
// dir/name-expired.crt.
func (s *Set) Expired(name string) (tlsconfig.Files, error) {
	return s.Issue(name+"-expired", Leaf{CN: name, DNS: []string{name},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
}

// OtherCA issues a node certificate for name signed by a CA of its own
// (not the set's), in dir/name-other.crt; the files' CA is the set's, so
// the holder trusts the controller while the controller does not trust
// it.
func (s *Set) OtherCA(name string) (tlsconfig.Files, error) {
	other, err := NewCA("some other CA")
	if err != nil {
		return tlsconfig.Files{}, err
	}
	return s.issueBy(other, name+"-other", Leaf{CN: name, DNS: []string{name}})
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// serial returns a random 128-bit serial number, as CAs use.
func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
