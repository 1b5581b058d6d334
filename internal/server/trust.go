package server

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/ctlog"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/timestamp"
	"github.com/custody-dev/custody/internal/trustedroot"
)

// sigstoreTrust is what the server's trusted_root.json and
// signing_config.json are made of (docs/keyless.md, "Trust
// distribution"): the CA and its retired certificates, the CT log and its
// retired keys, the key ring's TSA chains, and the transparency logs.
type sigstoreTrust struct {
	ca          *ca.CA    // nil without a CA
	caStart     time.Time // the current CA's window start
	retiredCAs  []trustedroot.Authority
	ctlog       *ctlog.Log // nil without a CT log
	ctlogStart  time.Time
	retiredLogs []trustedroot.Log
	ring        *key.Ring
	tsa         *timestamp.Authority // the TSA the server serves, or nil
	// tlogs are the transparency logs. A current one (no End) is served
	// by this server: its URL is relative to the server's base URL ("" for
	// the base itself); a retired one gets no URL.
	tlogs []trustedroot.Log
}

// openCTLog opens ca.ctlog's key with the CA's passphrase, nil when none
// is configured.
func openCTLog(c config.CA) (*ctlog.Log, io.Closer, error) {
	if c.CTLog.Key == "" {
		return nil, io.NopCloser(nil), nil
	}
	pass, err := caPassphrase(c)
	if err != nil {
		return nil, nil, err
	}
	l, closer, err := ctlog.Open(c.CTLog.Key, pass)
	if err != nil {
		return nil, nil, fmt.Errorf("ca.ctlog: %w", err)
	}
	return l, closer, nil
}

// retiredTrust reads ca.retired and ca.ctlog.retired.
func (t *sigstoreTrust) retiredTrust(c config.CA) error {
	for i, r := range c.Retired {
		b, err := os.ReadFile(r.Certificate)
		if err != nil {
			return fmt.Errorf("ca.retired[%d]: %w", i, err)
		}
		chain, err := ca.ParseChain(b)
		if err != nil {
			return fmt.Errorf("ca.retired[%d] %s: %w", i, r.Certificate, err)
		}
		if r.Until.Before(chain[0].NotBefore) {
			return fmt.Errorf("ca.retired[%d]: until is before the certificate's notBefore", i)
		}
		t.retiredCAs = append(t.retiredCAs, trustedroot.Authority{Chain: chain, Start: chain[0].NotBefore.UTC(), End: r.Until.UTC()})
	}
	for i, r := range c.CTLog.Retired {
		b, err := os.ReadFile(r.PublicKey)
		if err != nil {
			return fmt.Errorf("ca.ctlog.retired[%d]: %w", i, err)
		}
		pub, err := key.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("ca.ctlog.retired[%d] %s: %w", i, r.PublicKey, err)
		}
		t.retiredLogs = append(t.retiredLogs, trustedroot.Log{PublicKey: pub, Start: r.Start.UTC(), End: r.Until.UTC()})
	}
	return nil
}

// input gathers the documents' input, the current services at base.
func (t *sigstoreTrust) input(base string) (trustedroot.Input, error) {
	var in trustedroot.Input
	in.CertificateAuthorities = append(in.CertificateAuthorities, t.retiredCAs...)
	if t.ca != nil {
		in.CertificateAuthorities = append(in.CertificateAuthorities, trustedroot.Authority{URL: base, Chain: t.ca.Chain(), Start: t.caStart})
	}
	in.CTLogs = append(in.CTLogs, t.retiredLogs...)
	if t.ctlog != nil {
		in.CTLogs = append(in.CTLogs, trustedroot.Log{URL: base, PublicKey: t.ctlog.Public(), Start: t.ctlogStart})
	}
	tsas, err := t.ring.TimestampAuthorities()
	if err != nil {
		return in, err
	}
	for _, ta := range tsas {
		chain, err := key.ParseCertificates([]byte(ta.CertChain))
		if err != nil {
			return in, err
		}
		a := trustedroot.Authority{Chain: chain, Start: ta.ValidFor.Start, End: ta.ValidFor.End}
		if t.tsa != nil && t.tsa.Chain()[0].Equal(chain[0]) {
			a.URL = base + "/api/v1/timestamp"
		}
		in.TimestampAuthorities = append(in.TimestampAuthorities, a)
	}
	for _, l := range t.tlogs {
		if l.End.IsZero() {
			l.URL = base + l.URL
		} else {
			l.URL = ""
		}
		in.TransparencyLogs = append(in.TransparencyLogs, l)
	}
	return in, nil
}

// caTrust is what custody's own trust root (key.TrustRoot, GET
// /api/v1/keys) lists of the CA: each ca.retired certificate chain from
// its notBefore to its until, and the current one (ca.certificate) for
// its validity, so a keyless signature keeps verifying after the CA
// certificate is replaced.
func caTrust(c config.CA) ([]key.TrustedTSA, error) {
	var out []key.TrustedTSA
	for i, r := range c.Retired {
		b, err := os.ReadFile(r.Certificate)
		if err != nil {
			return nil, fmt.Errorf("ca.retired[%d]: %w", i, err)
		}
		chain, err := ca.ParseChain(b)
		if err != nil {
			return nil, fmt.Errorf("ca.retired[%d] %s: %w", i, r.Certificate, err)
		}
		out = append(out, key.TrustedTSA{CertChain: string(ca.EncodeChain(chain)), ValidFor: key.Validity{Start: chain[0].NotBefore.UTC(), End: r.Until.UTC()}})
	}
	b, err := os.ReadFile(c.Certificate)
	if err != nil {
		return nil, fmt.Errorf("ca.certificate: %w", err)
	}
	chain, err := ca.ParseChain(b)
	if err != nil {
		return nil, fmt.Errorf("ca.certificate: %w", err)
	}
	return append(out, key.TrustedTSA{CertChain: string(ca.EncodeChain(chain)), ValidFor: key.Validity{Start: chain[0].NotBefore.UTC(), End: chain[0].NotAfter.UTC()}}), nil
}

// caPassphrase is ca.passphraseFile's content, else CUSTODY_CA_PASSWORD.
func caPassphrase(c config.CA) ([]byte, error) {
	pass := os.Getenv("CUSTODY_CA_PASSWORD")
	if c.PassphraseFile != "" {
		b, err := os.ReadFile(c.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("ca.passphraseFile: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	return []byte(pass), nil
}

// rekorLogs are the transparency logs the ring records (internal/rekor),
// for the trust documents: the one whose key is currentPEM is served here
// (its URL the server's base URL); the others are retired, their windows
// closed when the current one started.
func rekorLogs(ring *key.Ring, currentPEM string) ([]trustedroot.Log, error) {
	recorded, err := ring.TransparencyLogs()
	if err != nil {
		return nil, err
	}
	var current time.Time
	for _, l := range recorded {
		if l.PublicKey == currentPEM {
			current = l.ValidFor.Start
		}
	}
	var out []trustedroot.Log
	for _, l := range recorded {
		pub, err := key.ParsePublicKey([]byte(l.PublicKey))
		if err != nil {
			return nil, err
		}
		_, id, err := rekornote.KeyHash(l.Origin, pub)
		if err != nil {
			return nil, err
		}
		tl := trustedroot.Log{PublicKey: pub, Start: l.ValidFor.Start, LogID: id, CheckpointKeyID: id, APIVersion: 2}
		if l.PublicKey != currentPEM {
			tl.End = current
		}
		out = append(out, tl)
	}
	return out, nil
}
