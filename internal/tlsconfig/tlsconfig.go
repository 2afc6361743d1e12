// SPDX-License-Identifier: Apache-2.0

// Package tlsconfig loads the mutual-TLS material of the agent link
// (TLSCertificate, TLSPrivateKey, TLSCA) with errors that name the file
// and the problem, keeps it reloadable for SIGHUP, builds the controller's
// and the agent's crypto/tls configurations (TLS 1.3 only, the peer
// verified against TLSCA on both sides) and decides whether a verified
// certificate may register a node name.
//
// It only prepares configurations; the connection code dials and accepts.
package tlsconfig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// ExpiryWarning is how close to its end a certificate is reported with a
// warning (at start, on reload and by the daily check).
const ExpiryWarning = 7 * 24 * time.Hour

// Files names the PEM files of one daemon, as configured.
type Files struct {
	Certificate string // TLSCertificate: the daemon's chain, leaf first
	PrivateKey  string // TLSPrivateKey: the leaf's key (PKCS#8, PKCS#1 or SEC 1)
	CA          string // TLSCA: the certificates that verify the peer
}

// Material is one loaded set of files.
type Material struct {
	Files Files
	// Pair is the daemon's certificate chain and key; Pair.Leaf is set.
	Pair tls.Certificate
	// CAs verifies the peer's certificate.
	CAs *x509.CertPool
	// chain and caCerts are the certificates of Files.Certificate and
	// Files.CA, for expiry checks.
	chain, caCerts []*x509.Certificate
}

// Load reads and checks the three files at time now: every file must be
// readable PEM of the right kind, the key must belong to the leaf, and no
// certificate may be expired or not valid yet. It also returns a warning
// for each certificate that expires within ExpiryWarning.
func Load(f Files, now time.Time) (*Material, []string, error) {
	if f.Certificate == "" || f.PrivateKey == "" || f.CA == "" {
		var missing []string
		for _, k := range []struct{ key, v string }{{"TLSCertificate", f.Certificate}, {"TLSPrivateKey", f.PrivateKey}, {"TLSCA", f.CA}} {
			if k.v == "" {
				missing = append(missing, k.key)
			}
		}
		return nil, nil, fmt.Errorf("UseTLS is on but %s not set", joinKeys(missing))
	}
	chain, err := readCertificates("TLSCertificate", f.Certificate)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(f.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	if !publicKeyEqual(chain[0].PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("TLSPrivateKey %s does not belong to the certificate in TLSCertificate %s (%s)",
			f.PrivateKey, f.Certificate, describe(chain[0]))
	}
	cas, err := readCertificates("TLSCA", f.CA)
	if err != nil {
		return nil, nil, err
	}
	m := &Material{Files: f, CAs: x509.NewCertPool(), chain: chain, caCerts: cas}
	for _, c := range cas {
		m.CAs.AddCert(c)
	}
	m.Pair = tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		m.Pair.Certificate = append(m.Pair.Certificate, c.Raw)
	}
	if err := m.checkValidity(now); err != nil {
		return nil, nil, err
	}
	return m, m.Warnings(now), nil
}

func joinKeys(keys []string) string {
	switch len(keys) {
	case 1:
		return keys[0] + " is"
	case 2:
		return keys[0] + " and " + keys[1] + " are"
	}
	return keys[0] + ", " + keys[1] + " and " + keys[2] + " are"
}

// certificates returns each certificate of m with the key and file it
// came from.
func (m *Material) certificates() []namedCert {
	var out []namedCert
	for _, c := range m.chain {
		out = append(out, namedCert{"TLSCertificate", m.Files.Certificate, c})
	}
	for _, c := range m.caCerts {
		out = append(out, namedCert{"TLSCA", m.Files.CA, c})
	}
	return out
}

type namedCert struct {
	key, file string
	cert      *x509.Certificate
}

// checkValidity refuses an expired or not yet valid certificate in the
// daemon's chain, and a CA bundle none of whose certificates is valid (a
// bundle may keep an old CA during a change-over: that is a warning).
func (m *Material) checkValidity(now time.Time) error {
	var caErr error
	caValid := false
	for _, n := range m.certificates() {
		var err error
		switch {
		case now.After(n.cert.NotAfter):
			err = fmt.Errorf("%s %s: certificate %s expired on %s", n.key, n.file, describe(n.cert), n.cert.NotAfter.UTC().Format(time.RFC3339))
		case now.Before(n.cert.NotBefore):
			err = fmt.Errorf("%s %s: certificate %s is not valid before %s", n.key, n.file, describe(n.cert), n.cert.NotBefore.UTC().Format(time.RFC3339))
		}
		switch {
		case n.key != "TLSCA" && err != nil:
			return err
		case n.key == "TLSCA" && err == nil:
			caValid = true
		case n.key == "TLSCA" && caErr == nil:
			caErr = err
		}
	}
	if !caValid {
		return caErr
	}
	return nil
}

// Warnings returns one line per certificate of m that has expired or
// expires within ExpiryWarning of now, naming its file; the daemons log
// them at start, on reload and once a day.
func (m *Material) Warnings(now time.Time) []string {
	var out []string
	for _, n := range m.certificates() {
		left := n.cert.NotAfter.Sub(now)
		switch {
		case left < 0:
			out = append(out, fmt.Sprintf("%s %s: certificate %s expired on %s", n.key, n.file, describe(n.cert), n.cert.NotAfter.UTC().Format(time.RFC3339)))
		case left < ExpiryWarning:
			out = append(out, fmt.Sprintf("%s %s: certificate %s expires on %s (in %s)", n.key, n.file, describe(n.cert),
				n.cert.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Minute)))
		}
	}
	return out
}

// describe names a certificate for messages: its subject and serial.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %s)", c.Subject.String(), c.SerialNumber)
}

// readFile reads one configured file; the error names key and path.
func readFile(key, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named already
		}
		return nil, fmt.Errorf("%s %s: cannot read: %w", key, path, err)
	}
	return data, nil
}

// readCertificates reads the CERTIFICATE blocks of a PEM file (other
// blocks are skipped); at least one is required.
func readCertificates(key, path string) ([]*x509.Certificate, error) {
	data, err := readFile(key, path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for i := 1; ; {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s: certificate %d: %w", key, path, i, err)
		}
		out = append(out, c)
		i++
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %s: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file", key, path)
	}
	return out, nil
}

// readKey reads the first private key block of a PEM file.
func readKey(path string) (crypto.Signer, error) {
	data, err := readFile("TLSPrivateKey", path)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("TLSPrivateKey %s: no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in the file", path)
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("TLSPrivateKey %s: the key is encrypted; the daemons need it unencrypted (readable by root only)", path)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("TLSPrivateKey %s: %s: %w", path, b.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("TLSPrivateKey %s: unsupported key type %T", path, k)
		}
		return s, nil
	}
}

// publicKeyEqual compares two public keys of the kinds crypto/tls uses.
func publicKeyEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch k := a.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k.(equaler).Equal(b)
	}
	ka, err1 := x509.MarshalPKIXPublicKey(a)
	kb, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ka, kb)
}
