package platform_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/sign/platform"
)

// A key rotated beside a running server no longer signs for it: its window
// has closed, so what it signed would not verify. The refusal is the
// no-key problem (503), not an internal error.
func TestRotatedKeyStopsSigning(t *testing.T) {
	dir := t.TempDir()
	ring, err := key.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("pw")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_KEY_PASSWORD", "pw")
	h, err := platform.Open(platform.Options{Keys: dir, Config: config.Signing{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("statement"))
	if _, err := h.Signer().Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Fatalf("active key refused to sign: %v", err)
	}
	if _, _, err := ring.Rotate(key.ECDSAP256, "server", []byte("pw2")); err != nil {
		t.Fatal(err)
	}
	_, err = h.Signer().Sign(rand.Reader, sum[:], crypto.SHA256)
	if !errors.Is(err, key.ErrNotActive) {
		t.Fatalf("signing with the retired key: err = %v, want ErrNotActive", err)
	}
	if k, ok := problem.From(err); !ok || k != problem.NoKey {
		t.Fatalf("problem.From = %v, %v; want no-key", k, ok)
	}
}
