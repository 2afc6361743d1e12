// SPDX-License-Identifier: Apache-2.0

package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// ErrNoVerifiedCertificate is the error of a connection without a
// verified client certificate.
var ErrNoVerifiedCertificate = errors.New("no verified client certificate")

// CertificateNames reports whether cert names the node called name: one of
// its DNS SANs equals name, or, for a certificate without any subject
// alternative name (DNS, IP, email or URI), its subject CN equals name.
// Names compare exactly, as node names do.
func CertificateNames(cert *x509.Certificate, name string) bool {
	if cert == nil || name == "" {
		return false
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) > 0 {
		return slices.Contains(cert.DNSNames, name)
	}
	return cert.Subject.CommonName == name
}

// CheckNodeName returns nil when the verified client certificate of a
// connection names the node name (see CertificateNames), and otherwise an
// error that says which names the certificate has, for the log.
func CheckNodeName(cs tls.ConnectionState, name string) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ErrNoVerifiedCertificate
	}
	leaf := cs.VerifiedChains[0][0]
	if CertificateNames(leaf, name) {
		return nil
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) > 0 {
		return fmt.Errorf("certificate %s names %q, not %q", describe(leaf), leaf.DNSNames, name)
	}
	return fmt.Errorf("certificate %s without SAN has CN %q, not %q", describe(leaf), leaf.Subject.CommonName, name)
}
