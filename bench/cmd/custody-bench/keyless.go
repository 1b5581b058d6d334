package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
	custodyserver "github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// keylessRow compares custody's two ways of signing, not custody with a
// peer: its custody column is keyless signing, its reference column
// key-based signing, both measured here.
const keylessRow = "sign-keyless-vs-keyed"

// keylessSignatures is how many signatures one keylessRow run makes.
const keylessSignatures = 20

// measureSigning times signing one image repeatedly, each signature
// time-stamped by an RFC 3161 authority and stored both ways (cosign v2
// tag layer and bundle referrer) in a loopback custody registry. keyless:
// each signature also makes an ephemeral P-256 key and gets a workload
// certificate for it, through the CA's own request path (the Fulcio v2
// request with a CSR parsed and its proof of possession checked, the
// GitHub Actions claims mapped to Fulcio's extensions, the certificate
// issued), and the signature carries the certificate. Not included: the
// OIDC token's verification (its issuer's keys are cached; see
// internal/auth) and the HTTP round trips to the CA and the TSA, the
// same loopback for both modes; no transparency log entry yet.
func measureSigning(ctx context.Context, dir string, keep, keyless bool) (sample, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	cfg := config.Default()
	cfg.Data, cfg.Auth.Mode, cfg.Log.Level = dir, "none", "error"
	srv, err := custodyserver.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return sample{}, err
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	img, err := random.Image(1<<20, 1)
	if err != nil {
		return sample{}, err
	}
	h, _ := img.Digest()
	d, err := name.NewDigest(strings.TrimPrefix(hs.URL, "http://")+"/bench/keyless@"+h.String(), name.Insecure)
	if err != nil {
		return sample{}, err
	}
	if err := remote.Write(d, img, remote.WithContext(ctx)); err != nil {
		return sample{}, err
	}
	tsaKey, err := key.Generate(key.ECDSAP256)
	if err != nil {
		return sample{}, err
	}
	tsaChain, err := timestamp.NewChain(tsaKey, "bench TSA", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		return sample{}, err
	}
	tsa, err := timestamp.New(timestamp.Config{Signer: tsaKey, Chain: tsaChain})
	if err != nil {
		return sample{}, err
	}
	caKey, err := key.Generate(key.ECDSAP256)
	if err != nil {
		return sample{}, err
	}
	root, err := ca.CreateRoot(caKey, "bench workload CA", 24*time.Hour)
	if err != nil {
		return sample{}, err
	}
	authority, err := ca.New(caKey, []*x509.Certificate{root}, 0)
	if err != nil {
		return sample{}, err
	}
	claims := map[string]string{"iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/app:ref:refs/heads/main",
		"repository": "acme/app", "repository_owner": "acme", "ref": "refs/heads/main", "sha": "0123456789abcdef0123456789abcdef01234567",
		"job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main", "workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
		"event_name": "push", "runner_environment": "github-hosted", "run_id": "1", "run_attempt": "1"}
	keyed, err := key.Generate(key.ECDSAP256)
	if err != nil {
		return sample{}, err
	}
	one := func() error {
		o := sign.Options{Timestamper: tsa.Stamp}
		if !keyless {
			_, err := sign.Sign(ctx, d, keyed, o)
			return err
		}
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, priv)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"credentials": map[string]string{"oidcIdentityToken": "t"},
			"certificateSigningRequest": base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
		req, err := ca.ParseRequestV2(body, "")
		if err != nil {
			return err
		}
		id, err := ca.IdentityOf(claims)
		if err != nil {
			return err
		}
		pub, err := req.Verify(id.Subject)
		if err != nil {
			return err
		}
		if o.Chain, err = authority.Issue(id, pub); err != nil {
			return err
		}
		_, err = sign.Sign(ctx, d, priv, o)
		return err
	}
	if err := one(); err != nil { // warm-up
		return sample{}, err
	}
	start := time.Now()
	for range keylessSignatures {
		if err := one(); err != nil {
			return sample{}, err
		}
	}
	secs := time.Since(start).Seconds()
	return sample{unit: "signatures/s", value: keylessSignatures / secs, ops: keylessSignatures, seconds: secs}, nil
}
