// SPDX-License-Identifier: Apache-2.0

package tlsconfig

import (
	"context"
	"crypto/tls"
	"sync"
	"time"
)

// Holder keeps the current Material of one daemon and swaps it on Reload.
// Configurations from Holder pick the material per handshake, so a
// rotation (SIGHUP) reaches every new connection and leaves established
// ones alone.
type Holder struct {
	files Files
	now   func() time.Time

	mu  sync.RWMutex // guards cur
	cur *Material
}

// NewHolder loads files (see Load) and returns a Holder serving them, with
// the warnings of the loaded certificates.
func NewHolder(files Files) (*Holder, []string, error) {
	return newHolder(files, time.Now)
}

func newHolder(files Files, now func() time.Time) (*Holder, []string, error) {
	m, warnings, err := Load(files, now())
	if err != nil {
		return nil, nil, err
	}
	return &Holder{files: files, now: now, cur: m}, warnings, nil
}

// Reload reads the files again. On success new handshakes use the new
// material; on error the Holder keeps what it had, and the error says
// which file is wrong.
func (h *Holder) Reload() ([]string, error) {
	m, warnings, err := Load(h.files, h.now())
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.cur = m
	h.mu.Unlock()
	return warnings, nil
}

// Current returns the material new handshakes use.
func (h *Holder) Current() *Material {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cur
}

// Warnings returns the expiry warnings of the current material now (for
// the daily check).
func (h *Holder) Warnings() []string { return h.Current().Warnings(h.now()) }

// ServerConfig returns the controller's listener configuration: TLS 1.3
// only, the current certificate, and a client certificate required and
// verified against the current TLSCA.
func (h *Holder) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := h.Current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				MaxVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{m.Pair},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.CAs,
				// No resumption: every connection is verified
				// against the current TLSCA, and agents keep
				// their connection anyway.
				SessionTicketsDisabled: true,
			}, nil
		},
	}
}

// ClientConfig returns the agent's configuration for one connection
// attempt: TLS 1.3 only, the controller verified against the current
// TLSCA and serverName (TLSServerName, by default ControllerHost; an IP
// address is matched against the certificate's IP SANs), and the current
// certificate offered. Call it for every attempt, so a reload is used by
// the next one.
func (h *Holder) ClientConfig(serverName string) *tls.Config {
	m := h.Current()
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		ServerName: serverName,
		RootCAs:    m.CAs,
		// Offered whatever CAs the controller names, so a controller
		// that does not trust it logs why (unknown authority) instead
		// of seeing no certificate at all.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &m.Pair, nil },
	}
}

// ExpiryCheckInterval is how often the daemons repeat the expiry warnings.
const ExpiryCheckInterval = 24 * time.Hour

// CheckExpiry calls warn with each expiry warning of the current material
// every interval until ctx ends (the daily check; the warnings at start and
// on reload come from NewHolder and Reload).
func (h *Holder) CheckExpiry(ctx context.Context, interval time.Duration, warn func(string)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, w := range h.Warnings() {
				warn(w)
			}
		}
	}
}
