package key

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// The transparency logs the server runs for signing events
// (internal/rekor) are recorded in the ring's tlog/ subdirectory, one
// <SHA-256 of the log's public key>.json each, kept after the log key is
// replaced so entries of the old key keep verifying.
const tlogDir = "tlog"

// TrustedLog is a transparency log of a trust root: Rekor v2 entries it
// signed checkpoints for count (internal/evidence). ValidFor.Start says
// since when the server runs it, as trusted_root.json does; Rekor v2
// entries carry no time to compare it with.
type TrustedLog struct {
	// BaseURL is where clients reach the log; Origin its checkpoints'
	// origin (BaseURL's host name).
	BaseURL string `json:"baseUrl"`
	Origin  string `json:"origin"`
	// PublicKey is the PEM "PUBLIC KEY" block of the key that signs its
	// checkpoints.
	PublicKey string   `json:"publicKey"`
	ValidFor  Validity `json:"validFor"`
}

// TransparencyLogs returns the logs recorded in the ring, in a stable
// order.
func (r *Ring) TransparencyLogs() ([]TrustedLog, error) {
	matches, err := filepath.Glob(filepath.Join(r.dir, tlogDir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(matches)
	var out []TrustedLog
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var l TrustedLog
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// check parses the log's key.
func (l TrustedLog) check() error {
	if l.Origin == "" {
		return errors.New("transparency log without an origin")
	}
	_, err := ParsePublicKey([]byte(l.PublicKey))
	return err
}

// AddTransparencyLog records a log the server runs, valid from
// l.ValidFor.Start; a log already recorded (the same key) is kept as it
// was. It reports whether it recorded l.
func (r *Ring) AddTransparencyLog(l TrustedLog) (bool, error) {
	pub, err := ParsePublicKey([]byte(l.PublicKey))
	if err != nil {
		return false, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(der)
	path := filepath.Join(r.dir, tlogDir, hex.EncodeToString(sum[:])+".json")
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Join(r.dir, tlogDir), 0o700); err != nil {
		return false, err
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return false, err
	}
	return true, os.WriteFile(path, append(b, '\n'), 0o644)
}
