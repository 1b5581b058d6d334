package key

import (
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

var algorithms = []Algorithm{ECDSAP256, Ed25519}

func TestEncryptDecrypt(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			priv, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			pemKey, err := EncryptPrivateKey(priv, []byte("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(pemKey), "-----BEGIN "+PrivateKeyPEMType+"-----\n") {
				t.Fatalf("PEM block type: %.60s", pemKey)
			}
			if _, err := DecryptPrivateKey(pemKey, []byte("wrong horse")); !errors.Is(err, ErrPassphrase) {
				t.Fatalf("wrong passphrase: err = %v, want ErrPassphrase", err)
			}
			loaded, err := DecryptPrivateKey(pemKey, []byte("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := AlgorithmOf(loaded.Public()); got != alg {
				t.Fatalf("algorithm %s, want %s", got, alg)
			}

			// A signature made with the loaded key verifies with the
			// exported public key.
			pubPEM, err := MarshalPublicKey(priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ParsePublicKey(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256([]byte("artifact"))
			sig, err := SignDigest(loaded, d[:])
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyDigest(pub, d[:], sig); err != nil {
				t.Fatal(err)
			}
			other := sha256.Sum256([]byte("other artifact"))
			if err := VerifyDigest(pub, other[:], sig); err == nil {
				t.Fatal("signature verified over another digest")
			}
		})
	}
}

func TestEncryptedBodyIsSecureSystemsLibJSON(t *testing.T) {
	priv, err := Generate(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := EncryptPrivateKey(priv, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemKey)
	if block == nil {
		t.Fatal("not PEM")
	}
	var doc struct {
		KDF struct {
			Name   string
			Params struct{ N, R, P int }
		}
		Cipher struct{ Name string }
	}
	if err := json.Unmarshal(block.Bytes, &doc); err != nil {
		t.Fatalf("body is not JSON: %v (%q)", err, block.Bytes)
	}
	if doc.KDF.Name != "scrypt" || doc.Cipher.Name != "nacl/secretbox" || doc.KDF.Params.N == 0 {
		t.Fatalf("unexpected encrypted document: %+v", doc)
	}
}

func TestRing(t *testing.T) {
	dir := t.TempDir()
	ring, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ring.Now = func() time.Time { return now }
	pass := []byte("s3cret")

	if _, err := ring.Active(); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("empty ring: Active err = %v", err)
	}
	first, err := ring.Create(ECDSAP256, "release", pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(Ed25519, "", pass); err == nil || !strings.Contains(err.Error(), "rotate") {
		t.Fatalf("second create: err = %v, want a refusal pointing at rotate", err)
	}
	st, err := os.Stat(ring.Path(first.File))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}

	now = now.Add(24 * time.Hour)
	second, retired, err := ring.Rotate("", "", pass)
	if err != nil {
		t.Fatal(err)
	}
	if retired.ID != first.ID || retired.Status != Retired || !retired.NotAfter.Equal(now) {
		t.Fatalf("retired = %+v", retired)
	}
	if second.Algorithm != ECDSAP256 || second.Name != "release" || second.Status != Active {
		t.Fatalf("new key = %+v", second)
	}

	keys, err := ring.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != first.ID || keys[1].ID != second.ID {
		t.Fatalf("List = %+v", keys)
	}
	old := keys[0]
	if old.Status != Retired || !old.NotBefore.Equal(now.Add(-24*time.Hour)) || !old.NotAfter.Equal(now) {
		t.Fatalf("retired key window: %+v", old)
	}
	if !old.ValidAt(now.Add(-time.Hour)) || old.ValidAt(now.Add(time.Hour)) {
		t.Fatal("retired key must be valid inside its window only")
	}
	if active, err := ring.Active(); err != nil || active.ID != second.ID {
		t.Fatalf("Active = %+v, %v", active, err)
	}
	if got, err := ring.Get(second.ID[:8]); err != nil || got.ID != second.ID {
		t.Fatalf("Get(prefix) = %+v, %v", got, err)
	}
	if _, err := ring.Get("0000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) err = %v", err)
	}

	// The retired key still loads and signs verifiably (for re-checks),
	// and a wrong passphrase is refused.
	if _, err := ring.Signer(old, []byte("nope")); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	s, err := ring.Signer(old, pass)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("v1.0.0"))
	sig, err := SignDigest(s, d[:])
	if err != nil {
		t.Fatal(err)
	}

	// Trust root round trip: both keys, with their windows.
	tr, err := ring.TrustRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	tr, err = ParseTrustRoot(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Keys) != 2 || tr.Keys[0].Status != Retired || !tr.Keys[0].ValidFor.End.Equal(now) || !tr.Keys[1].ValidFor.End.IsZero() {
		t.Fatalf("trust root = %+v", tr)
	}
	pub, err := tr.KeyAt(old.ID, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDigest(pub, d[:], sig); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.KeyAt(old.ID, now.Add(time.Hour)); err == nil {
		t.Fatal("retired key accepted after its window")
	}
}

func TestParseTrustRootRejectsMismatchedID(t *testing.T) {
	ring, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(Ed25519, "", []byte("p")); err != nil {
		t.Fatal(err)
	}
	tr, err := ring.TrustRoot()
	if err != nil {
		t.Fatal(err)
	}
	tr.Keys[0].ID = strings.Repeat("0", 64)
	b, _ := json.Marshal(tr)
	if _, err := ParseTrustRoot(b); err == nil {
		t.Fatal("a key ID that is not the hash of its key must be refused")
	}
}
