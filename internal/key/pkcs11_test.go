//go:build cgo

package key_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/timestamp"
)

// tokenURI returns the PKCS #11 URI of the test token (a SoftHSM2 token
// from scripts/softhsm.sh, in CUSTODY_TEST_PKCS11_URI) naming a new key
// label. Without it the test is skipped, or fails under CI, where the token
// must be there.
func tokenURI(tb testing.TB, label string) *key.PKCS11URI {
	tb.Helper()
	base := os.Getenv("CUSTODY_TEST_PKCS11_URI")
	if base == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("CUSTODY_TEST_PKCS11_URI is not set under CI: scripts/softhsm.sh must set up the SoftHSM2 token " +
				"(scripts/test.sh does)")
		}
		tb.Skip("CUSTODY_TEST_PKCS11_URI is not set; run `eval \"$(bash scripts/softhsm.sh start)\"` " +
			"to test PKCS #11 keys against SoftHSM2")
	}
	u, err := key.ParsePKCS11URI(base)
	if err != nil {
		tb.Fatalf("CUSTODY_TEST_PKCS11_URI: %v", err)
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	u.Object = label + "-" + hex.EncodeToString(suffix)
	return u
}

func generate(t *testing.T, u *key.PKCS11URI, alg key.Algorithm) crypto.Signer {
	t.Helper()
	s, err := key.GeneratePKCS11(u.String(), alg)
	if err != nil {
		t.Fatalf("GeneratePKCS11(%s, %s): %v", u.Redacted(), alg, err)
	}
	t.Cleanup(func() { s.(io.Closer).Close() })
	return s
}

func open(t *testing.T, u *key.PKCS11URI) crypto.Signer {
	t.Helper()
	s, c, err := key.OpenPKCS11(u.String())
	if err != nil {
		t.Fatalf("OpenPKCS11(%s): %v", u.Redacted(), err)
	}
	t.Cleanup(func() { c.Close() })
	return s
}

// newRegistry starts custody's own registry in-process on loopback.
func newRegistry(t *testing.T) string {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	b, m := storetest.Embedded(t)
	srv := httptest.NewServer(registry.New(b, m, registry.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pushImage(t *testing.T, host, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(h.String())
}

// TestPKCS11SignaturesVerify creates keys on the token and checks what
// they sign verifies with custody's verifiers: key.VerifyDigest, DSSE
// envelopes (attest.Verify) and cosign-compatible image signatures
// (sign.Sign, sign.Verify) in a real registry.
func TestPKCS11SignaturesVerify(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			u := tokenURI(t, "sig-"+string(alg))
			created := generate(t, u, alg)
			if got, err := key.AlgorithmOf(created.Public()); err != nil || got != alg {
				t.Fatalf("generated a %s key (%v), want %s", got, err, alg)
			}
			// A second, independent session finds the same key by its label.
			s := open(t, u)
			pub := s.Public()
			id, err := key.ID(pub)
			if err != nil {
				t.Fatal(err)
			}
			if createdID, _ := key.ID(created.Public()); createdID != id {
				t.Fatalf("opened key %s, created %s", id, createdID)
			}

			digest := sha256.Sum256([]byte("artifact"))
			sig, err := key.SignDigest(s, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			if err := key.VerifyDigest(pub, digest[:], sig); err != nil {
				t.Fatalf("VerifyDigest: %v", err)
			}
			other := sha256.Sum256([]byte("another artifact"))
			if key.VerifyDigest(pub, other[:], sig) == nil {
				t.Fatal("signature verified for another digest")
			}
			if alg == key.Ed25519 {
				// Pure Ed25519 only: Ed25519ph is refused, not mis-signed.
				if _, err := s.Sign(nil, digest[:], &ed25519.Options{Hash: crypto.SHA512}); err == nil {
					t.Fatal("signed with Ed25519ph options")
				}
			} else if _, err := s.Sign(nil, digest[:], crypto.Hash(0)); err == nil {
				t.Fatal("ECDSA signed without a hash")
			}

			// A DSSE envelope (in-toto statement) signed on the token.
			stmt, err := attest.StatementFor("app.tar.gz", "sha256:"+hex.EncodeToString(digest[:]), "https://example.com/test-result/v1", []byte(`{"passed":true}`))
			if err != nil {
				t.Fatal(err)
			}
			env, err := attest.Sign(ctx, s, id, stmt)
			if err != nil {
				t.Fatal(err)
			}
			v, err := attest.Verify(env, attest.ResolverFromKeys(pub), attest.AllowPredicateType("https://example.com/test-result/v1"))
			if err != nil {
				t.Fatalf("attest.Verify: %v", err)
			}
			if v.KeyID != id || v.PredicateType != "https://example.com/test-result/v1" {
				t.Fatalf("verified %+v", v)
			}
			stranger, _ := key.Generate(alg)
			if _, err := attest.Verify(env, attest.ResolverFromKeys(stranger.Public()), attest.AllowPredicateType("https://example.com/test-result/v1")); err == nil {
				t.Fatal("envelope verified with another key")
			}

			// An image signature in the registry, both cosign layouts.
			ref := pushImage(t, host, "pkcs11/"+string(alg))
			res, err := sign.Sign(ctx, ref, s, sign.Options{})
			if err != nil {
				t.Fatalf("sign.Sign: %v", err)
			}
			vs, err := sign.Verify(ctx, ref, sign.PublicKeys{pub}, sign.Options{})
			if err != nil {
				t.Fatalf("sign.Verify: %v", err)
			}
			if len(vs) != 2 || vs[0].KeyID != id || vs[1].KeyID != id {
				t.Fatalf("verified %+v, want the tag signature and the bundle by %s", vs, id)
			}
			if _, err := sign.VerifyBundle(res.Bundle, ref.DigestStr(), []crypto.PublicKey{stranger.Public()}); err == nil {
				t.Fatal("bundle verified with another key")
			}
		})
	}
}

func TestPKCS11ConcurrentSigning(t *testing.T) {
	u := tokenURI(t, "concurrent")
	s := generate(t, u, key.ECDSAP256)
	pub := s.Public().(*ecdsa.PublicKey)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			d := sha256.Sum256([]byte{byte(i)})
			sig, err := key.SignDigest(s, d[:])
			if err == nil && !ecdsa.VerifyASN1(pub, d[:], sig) {
				err = errors.New("signature does not verify")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// After Close the signer refuses, and closing again is harmless.
	c := s.(io.Closer)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	d := sha256.Sum256(nil)
	if _, err := key.SignDigest(s, d[:]); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Fatalf("Sign after Close = %v", err)
	}
}

func TestPKCS11Refusals(t *testing.T) {
	u := tokenURI(t, "refusals")
	generate(t, u, key.ECDSAP256).(io.Closer).Close()

	t.Run("wrong PIN", func(t *testing.T) {
		bad := *u
		bad.PINValue = "0000"
		if _, _, err := key.OpenPKCS11(bad.String()); !errors.Is(err, key.ErrPKCS11PIN) || !strings.Contains(err.Error(), "refused the PIN") {
			t.Fatalf("OpenPKCS11 with a wrong PIN = %v, want ErrPKCS11PIN", err)
		}
		// While this process is logged in, another PIN is still refused.
		open(t, u)
		if _, _, err := key.OpenPKCS11(bad.String()); !errors.Is(err, key.ErrPKCS11PIN) {
			t.Fatalf("OpenPKCS11 with a wrong PIN while logged in = %v, want ErrPKCS11PIN", err)
		}
		if _, err := key.GeneratePKCS11(bad.String(), key.ECDSAP256); !errors.Is(err, key.ErrPKCS11PIN) {
			t.Fatalf("GeneratePKCS11 with a wrong PIN = %v, want ErrPKCS11PIN", err)
		}
	})
	t.Run("no PIN", func(t *testing.T) {
		none := *u
		none.PINValue = ""
		if _, _, err := key.OpenPKCS11(none.String()); !errors.Is(err, key.ErrPKCS11PIN) || !strings.Contains(err.Error(), "pin-value") {
			t.Fatalf("OpenPKCS11 without a PIN = %v", err)
		}
	})
	t.Run("PIN from a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "pin")
		if err := os.WriteFile(f, []byte(u.PINValue+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		src := *u
		src.PINValue, src.PINSource = "", "file:"+f
		open(t, &src)
	})
	t.Run("missing object", func(t *testing.T) {
		missing := *u
		missing.Object = "no-such-key"
		_, _, err := key.OpenPKCS11(missing.String())
		if !errors.Is(err, key.ErrNotFound) || !strings.Contains(err.Error(), `"no-such-key"`) || !strings.Contains(err.Error(), "custody key create --pkcs11") {
			t.Fatalf("OpenPKCS11 of a missing key = %v, want ErrNotFound naming the label and the fix", err)
		}
	})
	t.Run("no token attribute", func(t *testing.T) {
		// The test token is the only initialized one: it needs no naming.
		unnamed := *u
		unnamed.Token = ""
		open(t, &unnamed)
	})
	t.Run("missing token", func(t *testing.T) {
		other := *u
		other.Token = "no-such-token"
		_, _, err := key.OpenPKCS11(other.String())
		if !errors.Is(err, key.ErrNotFound) || !strings.Contains(err.Error(), "no-such-token") || !strings.Contains(err.Error(), `"custody"`) {
			t.Fatalf("OpenPKCS11 on a missing token = %v, want ErrNotFound listing the tokens", err)
		}
	})
	t.Run("label taken", func(t *testing.T) {
		if _, err := key.GeneratePKCS11(u.String(), key.Ed25519); !errors.Is(err, key.ErrKeyExists) {
			t.Fatalf("GeneratePKCS11 over an existing label = %v, want ErrKeyExists", err)
		}
	})
	t.Run("bad module", func(t *testing.T) {
		mod := *u
		mod.ModulePath = "/etc/hostname"
		if _, _, err := key.OpenPKCS11(mod.String()); err == nil || !strings.Contains(err.Error(), "PKCS #11 library") {
			t.Fatalf("OpenPKCS11 with a non-library module = %v", err)
		}
		mod.ModulePath = "libsofthsm2.so"
		if _, _, err := key.OpenPKCS11(mod.String()); !errors.Is(err, key.ErrPKCS11URI) {
			t.Fatalf("OpenPKCS11 with a relative module path = %v", err)
		}
	})
}

// TestRingPKCS11Key records a token key in a key ring: the trust root
// includes it, the metadata names it by URI (without the PIN), and the
// URI opens the key that signs for it.
func TestRingPKCS11Key(t *testing.T) {
	u := tokenURI(t, "ring")
	ring, err := key.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	info, err := ring.CreatePKCS11(u.String(), key.Ed25519, "hsm")
	if err != nil {
		t.Fatal(err)
	}
	if info.File != "" || info.URI == "" || strings.Contains(info.URI, u.PINValue) || info.Status != key.Active || info.Algorithm != key.Ed25519 {
		t.Fatalf("info = %+v", info)
	}
	if _, err := os.Stat(ring.Path(info.ID + ".key")); !os.IsNotExist(err) {
		t.Fatalf("a key file was written for a token key: %v", err)
	}
	tr, err := ring.TrustRoot()
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Keys) != 1 || tr.Keys[0].ID != info.ID {
		t.Fatalf("trust root = %+v", tr)
	}
	if _, err := ring.Signer(info, nil); err == nil || !strings.Contains(err.Error(), "PKCS #11") {
		t.Fatalf("Ring.Signer of a token key = %v", err)
	}
	if _, err := ring.CreatePKCS11(u.String(), key.ECDSAP256, ""); err == nil || !strings.Contains(err.Error(), "already has an active key") {
		t.Fatalf("second CreatePKCS11 = %v", err)
	}

	// The recorded URI (plus the PIN) opens the key whose public key the
	// trust root holds.
	rec, err := key.ParsePKCS11URI(info.URI)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID == nil || rec.Object != u.Object {
		t.Fatalf("recorded URI %s does not name the key by label and id", info.URI)
	}
	rec.PINValue = u.PINValue
	s := open(t, rec)
	// OpenSigner opens it too, with the PIN as the secret.
	if _, _, err := ring.OpenSigner(info, []byte("0000")); !errors.Is(err, key.ErrPKCS11PIN) {
		t.Fatalf("OpenSigner with a wrong PIN = %v", err)
	}
	rs, rc, err := ring.OpenSigner(info, []byte(u.PINValue))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := key.ID(rs.Public()); id != info.ID {
		t.Fatalf("OpenSigner opened key %s, want %s", id, info.ID)
	}
	rc.Close()
	msg := []byte("release")
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := tr.KeyAt(info.ID, info.NotBefore)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(trusted.(ed25519.PublicKey), msg, sig) {
		t.Fatal("signature of the recorded key does not verify with the trust root")
	}

	// Rotation to a new token key retires the old one.
	u2 := tokenURI(t, "ring-next")
	created, retired, err := ring.RotatePKCS11(u2.String(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if retired.ID != info.ID || retired.Status != key.Retired || created.Algorithm != key.Ed25519 || created.Name != "hsm" || created.URI == "" {
		t.Fatalf("rotated: created %+v retired %+v", created, retired)
	}
}

// BenchmarkPKCS11Sign measures one signature on the token (a SHA-256
// digest for ECDSA, a 1 KiB message for Ed25519), verification included.
func BenchmarkPKCS11Sign(b *testing.B) {
	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		b.Run(string(alg), func(b *testing.B) {
			u := tokenURI(b, "bench-"+string(alg))
			s, err := key.GeneratePKCS11(u.String(), alg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.(io.Closer).Close()
			d := sha256.Sum256(nil)
			msg := make([]byte, 1024)
			for b.Loop() {
				if alg == key.Ed25519 {
					_, err = s.Sign(nil, msg, crypto.Hash(0))
				} else {
					_, err = key.SignDigest(s, d[:])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRingTSAOnToken: the ring's time-stamp authority key can live on a
// PKCS #11 token: the ring records its URI without the PIN, the trust root
// holds its chain, and the key opens with the PIN and signs tokens that
// verify against the chain.
func TestRingTSAOnToken(t *testing.T) {
	u := tokenURI(t, "tsa")
	ring, err := key.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := generate(t, u, key.ECDSAP256)
	chain, err := timestamp.NewChain(s, "token TSA", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.SetTSAOnToken(timestamp.EncodeChain(chain), u.String()); err != nil {
		t.Fatal(err)
	}
	if !ring.TSAOnToken() {
		t.Fatal("the ring does not know its TSA key is on a token")
	}
	recorded, err := os.ReadFile(filepath.Join(ring.Dir(), "tsa", "signing.uri"))
	if err != nil || strings.Contains(string(recorded), u.PINValue) {
		t.Fatalf("recorded URI %q: %v", recorded, err)
	}
	if _, _, err := ring.TSASigner([]byte("wrong PIN")); err == nil {
		t.Fatal("the token TSA key opened with a wrong PIN")
	}
	signer, chainPEM, err := ring.TSASigner([]byte(u.PINValue))
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := timestamp.ParseChain(chainPEM)
	a, err := timestamp.New(timestamp.Config{Signer: signer, Chain: certs})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Stamp(context.Background(), []byte("sig"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ring.TrustRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timestamp.Verify(resp, []byte("sig"), tr.TimestampAuthorities); err != nil {
		t.Fatal(err)
	}
}
