package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// keyRefetchInterval is the least time between two fetches of an OIDC
// issuer's keys: a token signed by a key the cached set lacks (a rotation)
// fetches the set again, but no more often than this, so tokens with
// made-up key IDs cannot make custody hammer the issuer.
const keyRefetchInterval = 10 * time.Second

// maxJWKS caps an issuer's key set document.
const maxJWKS = 1 << 20

// issuerKeys is an OIDC issuer's JSON Web Key Set, fetched from its
// jwks_uri on first use and again when a token does not verify with the
// cached keys, at most once per keyRefetchInterval. It implements
// go-oidc's KeySet; go-oidc's own RemoteKeySet fetches again on every
// token that does not verify.
type issuerKeys struct {
	url    string
	client *http.Client
	now    func() time.Time

	fetch sync.Mutex // held while fetching
	// failed and failure are the last failed fetch and why (guarded by
	// fetch): a failing issuer is not asked again within the interval
	// either.
	failed  time.Time
	failure error
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // zero before the first fetch
}

func newIssuerKeys(url string) *issuerKeys {
	return &issuerKeys{url: url, client: &http.Client{Timeout: 10 * time.Second}, now: time.Now}
}

// VerifySignature returns the payload of jwt if a key of the set verifies
// its signature.
func (k *issuerKeys) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	k.mu.Lock()
	keys, fetched := k.keys, k.fetched
	k.mu.Unlock()
	if !fetched.IsZero() {
		if p, ok := verifyWith(jws, keys); ok {
			return p, nil
		}
	}
	if keys, err = k.refetch(ctx, fetched); err != nil {
		return nil, err
	}
	if p, ok := verifyWith(jws, keys); ok {
		return p, nil
	}
	return nil, errors.New("the token's signature does not verify with any of the issuer's keys")
}

// verifyWith verifies jws with the keys of its key ID (all keys when it
// names none).
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) ([]byte, bool) {
	kid := ""
	if len(jws.Signatures) > 0 {
		kid = jws.Signatures[0].Header.KeyID
	}
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if p, err := jws.Verify(&key); err == nil {
			return p, true
		}
	}
	return nil, false
}

// refetch fetches the key set again unless another fetch happened since
// seen (the fetch time the caller's keys came from) or less than
// keyRefetchInterval ago; it returns the keys to try.
func (k *issuerKeys) refetch(ctx context.Context, seen time.Time) ([]jose.JSONWebKey, error) {
	k.fetch.Lock()
	defer k.fetch.Unlock()
	k.mu.Lock()
	keys, fetched := k.keys, k.fetched
	k.mu.Unlock()
	if !fetched.Equal(seen) || (!fetched.IsZero() && k.now().Sub(fetched) < keyRefetchInterval) {
		return keys, nil
	}
	if !k.failed.IsZero() && k.now().Sub(k.failed) < keyRefetchInterval {
		return nil, k.failure
	}
	set, err := k.get(ctx)
	if err != nil {
		k.failed, k.failure = k.now(), err
		return nil, err
	}
	k.failed, k.failure = time.Time{}, nil
	k.mu.Lock()
	k.keys, k.fetched = set.Keys, k.now()
	k.mu.Unlock()
	return set.Keys, nil
}

// get fetches the key set.
func (k *issuerKeys) get(ctx context.Context) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return set, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return set, fmt.Errorf("fetching the issuer's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("fetching the issuer's keys from %s: %s", k.url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&set); err != nil {
		return set, fmt.Errorf("the issuer's keys at %s: %w", k.url, err)
	}
	return set, nil
}
