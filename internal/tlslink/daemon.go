// SPDX-License-Identifier: Apache-2.0

package tlslink

import (
	"context"
	"log/slog"
	"time"

	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
)

// Files returns the file names of a daemon's TLS keys.
func Files(t config.TLS) tlsconfig.Files {
	return tlsconfig.Files{Certificate: t.Certificate, PrivateKey: t.PrivateKey, CA: t.CA}
}

// Load reads the TLS files of a daemon at start (UseTLS=yes) and logs a
// warning for each certificate that expires within a week (log may be
// nil: no warnings logged). The error names
// the key and file that is wrong; the daemon exits with it.
func Load(t config.TLS, log *slog.Logger) (*tlsconfig.Holder, error) {
	h, warnings, err := tlsconfig.NewHolder(Files(t))
	if err != nil {
		return nil, err
	}
	logWarnings(log, warnings)
	return h, nil
}

// Reload reads the files of h again (SIGHUP) and logs the outcome: on
// success new connections use the new material, established ones go on;
// on error h keeps the material it had and the error names the file.
func Reload(h *tlsconfig.Holder, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	warnings, err := h.Reload()
	if err != nil {
		log.Error("TLS: reload failed, keeping the certificates loaded before", "error", err)
		return err
	}
	f := h.Current().Files
	log.Info("TLS: certificates reloaded; new connections use them",
		"certificate", f.Certificate, "ca", f.CA, "serial", h.Current().Pair.Leaf.SerialNumber.String())
	logWarnings(log, warnings)
	return nil
}

// WatchExpiry logs the expiry warnings of h's current material every
// interval (0: tlsconfig.ExpiryCheckInterval, daily) in a goroutine that
// ends with ctx; the returned function waits for it to end.
func WatchExpiry(ctx context.Context, h *tlsconfig.Holder, interval time.Duration, log *slog.Logger) (wait func()) {
	if interval <= 0 {
		interval = tlsconfig.ExpiryCheckInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.CheckExpiry(ctx, interval, func(w string) { log.Warn("TLS: " + w) })
	}()
	return func() { <-done }
}

func logWarnings(log *slog.Logger, warnings []string) {
	if log == nil {
		return
	}
	for _, w := range warnings {
		log.Warn("TLS: " + w)
	}
}
