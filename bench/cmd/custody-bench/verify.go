package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	custodyserver "github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/verification"
)

// verifyTarget is the verify row's peer value: a full verification in
// under 50 ms, i.e. 20 verifications/s.
const verifyTarget = 20

// verifyRuns is how many verifications one verify run times (after one
// warm-up).
const verifyRuns = 50

// measureVerify times custody verify's work on a signed image with SLSA
// provenance and an SBOM attached: every signature and attestation fetched
// from a loopback registry and checked against a trust root, as a
// deployment does before it starts an artifact.
func measureVerify(ctx context.Context, dir string, keep, signOnly bool) (sample, error) {
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
	img, err := random.Image(1<<20, 3)
	if err != nil {
		return sample{}, err
	}
	h, _ := img.Digest()
	d, err := name.NewDigest(strings.TrimPrefix(hs.URL, "http://")+"/bench/app@"+h.String(), name.Insecure)
	if err != nil {
		return sample{}, err
	}
	if err := remote.Write(d, img, remote.WithContext(ctx)); err != nil {
		return sample{}, err
	}
	signer, err := key.Generate(key.ECDSAP256)
	if err != nil {
		return sample{}, err
	}
	id, _ := key.ID(signer.Public())
	pem, _ := key.MarshalPublicKey(signer.Public())
	tr := key.TrustRoot{MediaType: key.TrustRootMediaType, Keys: []key.TrustedKey{{
		ID: id, Algorithm: key.ECDSAP256, Status: key.Active, PublicKey: string(pem),
		ValidFor: key.Validity{Start: time.Now().Add(-time.Hour)},
	}}}
	o := sign.Options{Annotations: map[string]string{evidence.SignedAtAnnotation: time.Now().UTC().Format(time.RFC3339)}}
	if signOnly {
		// Signing throughput: each signature is stored both ways (the
		// cosign v2 tag, appended to, and a bundle referrer).
		const n = 20
		start := time.Now()
		for range n {
			if _, err := sign.Sign(ctx, d, signer, o); err != nil {
				return sample{}, err
			}
		}
		secs := time.Since(start).Seconds()
		return sample{unit: "signatures/s", value: n / secs, ops: n, seconds: secs}, nil
	}
	if _, err := sign.Sign(ctx, d, signer, o); err != nil {
		return sample{}, err
	}
	prov := `{"buildDefinition":{"buildType":"https://custody.dev/bench","externalParameters":{"source":{"uri":"git+https://example.org/app","ref":"refs/heads/main","commit":"6f8e2c1d3b4a59687766554433221100ffeeddcc"}}},"runDetails":{"builder":{"id":"https://example.org/builder"}}}`
	sbom := `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app","documentNamespace":"https://example.org/app","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: bench"]},"packages":[]}`
	for pt, pred := range map[string]string{attest.PredicateSLSAProvenanceV1: prov, attest.PredicateSPDX: sbom} {
		stmt, err := attest.StatementFor(d.Context().Name(), d.DigestStr(), pt, []byte(pred))
		if err != nil {
			return sample{}, err
		}
		env, err := attest.Sign(ctx, signer, "", stmt)
		if err != nil {
			return sample{}, err
		}
		if _, err := sign.Attach(ctx, d, env, pt, sign.Options{}); err != nil {
			return sample{}, err
		}
	}
	v, err := verification.New(tr)
	if err != nil {
		return sample{}, err
	}
	v.Require = []string{"sbom", "provenance"}
	v.Builder, v.Source = "https://example.org/builder", "https://example.org/app"
	if rep := v.Run(ctx, d.String(), d, sign.Options{}); !rep.OK { // warm-up, and a check
		return sample{}, fmt.Errorf("verify failed: %v", rep.Failures)
	}
	lat := make([]float64, 0, verifyRuns)
	start := time.Now()
	for range verifyRuns {
		t0 := time.Now()
		if rep := v.Run(ctx, d.String(), d, sign.Options{}); !rep.OK {
			return sample{}, fmt.Errorf("verify failed: %v", rep.Failures)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	secs := time.Since(start).Seconds()
	sort.Float64s(lat)
	logf("verify: median %.1f ms, p90 %.1f ms over %d warm verifications", lat[len(lat)/2], lat[len(lat)*9/10], verifyRuns)
	return sample{unit: "verifies/s", value: verifyRuns / secs, ops: verifyRuns, seconds: secs}, nil
}
