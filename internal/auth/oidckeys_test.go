package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// TestIssuerKeysRefetchLimited: tokens with made-up key IDs, or that do
// not verify, fetch the issuer's key set again at most once per
// keyRefetchInterval, however many arrive, at once or one after another;
// a rotated-in key is found on the first fetch after the interval.
func TestIssuerKeysRefetchLimited(t *testing.T) {
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1, k2, attacker := newKey(), newKey(), newKey()
	var mu sync.Mutex
	published := []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	var fetches atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: published})
	}))
	defer hs.Close()
	sign := func(k *ecdsa.PrivateKey, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "x"})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Unix(1_800_000_000, 0)
	var clock sync.Mutex
	keys := newIssuerKeys(hs.URL)
	keys.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	ctx := context.Background()

	if _, err := keys.VerifySignature(ctx, sign(k1, "k1")); err != nil || fetches.Load() != 1 {
		t.Fatalf("a good token: %v, %d fetches", err, fetches.Load())
	}
	for i := range 50 {
		if _, err := keys.VerifySignature(ctx, sign(attacker, "made-up-"+string(rune('a'+i%26)))); err == nil {
			t.Fatal("a token of an unknown key verified")
		}
		if _, err := keys.VerifySignature(ctx, sign(attacker, "k1")); err == nil {
			t.Fatal("a token signed by another key under a trusted key ID verified")
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("100 bad tokens within the interval fetched the keys %d more times", n-1)
	}
	// The issuer rotates to k2: found once the interval has passed, by one
	// fetch however many tokens ask at once.
	mu.Lock()
	published = append(published, jose.JSONWebKey{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"})
	mu.Unlock()
	advance(keyRefetchInterval + time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := keys.VerifySignature(ctx, sign(k2, "k2")); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || fetches.Load() != 2 {
		t.Fatalf("after the rotation: %d of 20 refused, %d fetches (want 0 and 2)", failed.Load(), fetches.Load())
	}
	if _, err := keys.VerifySignature(ctx, sign(k1, "k1")); err != nil {
		t.Fatalf("the old key after the rotation: %v", err)
	}
	if _, err := keys.VerifySignature(ctx, "not.a.token"); err == nil || fetches.Load() != 2 {
		t.Fatalf("a malformed token: %v, %d fetches", err, fetches.Load())
	}
}

// TestIssuerKeysFailingIssuerAskedOnce: while the issuer's key set cannot
// be fetched, tokens are refused without asking it again within the
// interval; once it answers (after the interval) they verify.
func TestIssuerKeysFailingIssuerAskedOnce(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	down.Store(true)
	var fetches atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer hs.Close()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "x"})
	tok.Header["kid"] = "k1"
	raw, err := tok.SignedString(k1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	keys := newIssuerKeys(hs.URL)
	keys.now = func() time.Time { return now }
	for range 20 {
		if _, err := keys.VerifySignature(context.Background(), raw); err == nil {
			t.Fatal("a token verified without the issuer's keys")
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("20 tokens while the issuer fails asked it %d times, want 1", n)
	}
	down.Store(false)
	now = now.Add(keyRefetchInterval + time.Second)
	if _, err := keys.VerifySignature(context.Background(), raw); err != nil || fetches.Load() != 2 {
		t.Fatalf("after the issuer recovered: %v, %d fetches", err, fetches.Load())
	}
}
