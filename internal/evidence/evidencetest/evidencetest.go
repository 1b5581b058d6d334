// Package evidencetest builds real evidence for tests of the packages
// that read it (evidence, verification, promotion): custody's own
// registry in-process on loopback, keys with validity windows, signatures
// and attestations written the way custody sign and custody attest write
// them.
package evidencetest

import (
	"context"
	"crypto"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/blob/fs"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/sign"
)

// SignedAtAnnotation is evidence.SignedAtAnnotation, spelled here so the
// helpers do not import the package under test.
const SignedAtAnnotation = "dev.custody.signed-at"

// Provenance is a small, valid SLSA v1 predicate built by
// https://github.com/actions/runner/github-hosted from
// https://github.com/acme/app at refs/heads/main.
const Provenance = `{
  "buildDefinition": {
    "buildType": "https://example.com/buildtypes/test/v1",
    "externalParameters": {"source": {"uri": "git+https://github.com/acme/app", "ref": "refs/heads/main"}},
    "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}}]
  },
  "runDetails": {
    "builder": {"id": "https://github.com/actions/runner/github-hosted"},
    "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"}
  }
}`

// SBOM is a minimal SPDX 2.3 document.
const SBOM = `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app","documentNamespace":"https://example.org/app","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: test"]},"packages":[]}`

// Registry starts custody's registry (filesystem blobs, SQLite metadata)
// in-process on loopback and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	host, _ := RegistryStore(t)
	return host
}

// RegistryStore is Registry, also returning its metadata store (which
// answers the build index queries: tag history).
func RegistryStore(t testing.TB) (string, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	b, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sqlite.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(registry.New(b, m, registry.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), m
}

// Push pushes a small random image to host/repo and returns its digest
// reference.
func Push(t testing.TB, host, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(host+"/"+repo+"@"+h.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d, img); err != nil {
		t.Fatal(err)
	}
	return d
}

// Key is a signing key and its entry in a trust root.
type Key struct {
	crypto.Signer
	Trusted key.TrustedKey
}

// ID is the key's key.ID.
func (k Key) ID() string { return k.Trusted.ID }

// NewKey makes an ECDSA P-256 key allowed to sign from start to end (a
// zero end: open-ended).
func NewKey(t testing.TB, start, end time.Time) Key {
	t.Helper()
	s, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := key.ID(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	pem, err := key.MarshalPublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	status := key.Active
	if !end.IsZero() {
		status = key.Retired
	}
	return Key{Signer: s, Trusted: key.TrustedKey{ID: id, Algorithm: key.ECDSAP256, Status: status, PublicKey: string(pem),
		ValidFor: key.Validity{Start: start, End: end}}}
}

// Root is the trust root of keys.
func Root(keys ...Key) key.TrustRoot {
	tr := key.TrustRoot{MediaType: key.TrustRootMediaType, Keys: []key.TrustedKey{}}
	for _, k := range keys {
		tr.Keys = append(tr.Keys, k.Trusted)
	}
	return tr
}

// Sign signs d with k, claiming signedAt as the signing time unless it
// is "" (no claim), in both storage places.
func Sign(t testing.TB, d name.Digest, k Key, signedAt string) {
	t.Helper()
	o := sign.Options{}
	if signedAt != "" {
		o.Annotations = map[string]string{SignedAtAnnotation: signedAt}
	}
	if _, err := sign.Sign(context.Background(), d, k, o); err != nil {
		t.Fatal(err)
	}
}

// Attest signs predicate (JSON, or a value to marshal) as an attestation
// of predicateType about d with k, and attaches it.
func Attest(t testing.TB, d name.Digest, k Key, predicateType string, predicate any) {
	t.Helper()
	b, ok := predicate.([]byte)
	if s, isString := predicate.(string); isString {
		b, ok = []byte(s), true
	}
	if !ok {
		var err error
		if b, err = json.Marshal(predicate); err != nil {
			t.Fatal(err)
		}
	}
	stmt, err := attest.StatementFor(d.Context().RepositoryStr(), d.DigestStr(), predicateType, b)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(context.Background(), k, "", stmt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Attach(context.Background(), d, env, predicateType, sign.Options{}); err != nil {
		t.Fatal(err)
	}
}

// MoveAttestations copies the cosign v2 attestation image of from to the
// attestation tag of to, as an attacker who may push could.
func MoveAttestations(t testing.TB, from, to name.Digest) {
	t.Helper()
	img, err := remote.Image(sign.TagFor(from, sign.AttestationSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sign.TagFor(to, sign.AttestationSuffix), img); err != nil {
		t.Fatal(err)
	}
}
