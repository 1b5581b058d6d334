package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// newRegistry starts custody's own registry (filesystem blobs, SQLite
// metadata) in-process on loopback and returns its host:port.
func newRegistry(t *testing.T) string {
	t.Helper()
	return newRegistryWrapped(t, nil)
}

// newRegistryWrapped is newRegistry with the handler wrapped (auth).
func newRegistryWrapped(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // hermetic: no credentials
	b, m := storetest.Embedded(t)
	var h http.Handler = registry.New(b, m, registry.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushImage pushes a small random image and returns its digest reference.
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

func genKey(t *testing.T, alg key.Algorithm) crypto.Signer {
	t.Helper()
	s, err := key.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sigImage reads the cosign v2 .sig (or .att) image manifest.
func tagManifest(t *testing.T, d name.Digest, suffix string) *v1.Manifest {
	t.Helper()
	img, err := remote.Image(TagFor(d, suffix))
	if err != nil {
		t.Fatalf("reading %s: %v", TagFor(d, suffix), err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func referrers(t *testing.T, d name.Digest) []v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests
}

func TestSignStoresBothFormatsAndVerifies(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			ref := pushImage(t, host, "app/"+string(alg))
			signer := genKey(t, alg)
			res, err := Sign(ctx, ref, signer, Options{Annotations: map[string]string{"build": "42"}})
			if err != nil {
				t.Fatal(err)
			}

			// cosign v2 layout.
			m := tagManifest(t, ref, SignatureSuffix)
			if len(m.Layers) != 1 || m.Layers[0].MediaType != SimpleSigningMediaType {
				t.Fatalf(".sig layers = %+v", m.Layers)
			}
			if m.Layers[0].Annotations[SignatureAnnotation] == "" {
				t.Fatal(".sig layer has no signature annotation")
			}
			if res.TagDigest == "" || res.Tag.TagStr() != strings.Replace(ref.DigestStr(), ":", "-", 1)+".sig" {
				t.Fatalf("result tag = %v %q", res.Tag, res.TagDigest)
			}

			// cosign v3 layout: one referrer, bundle artifact type.
			refs := referrers(t, ref)
			if len(refs) != 1 || refs[0].ArtifactType != BundleMediaType || refs[0].Digest.String() != res.Referrer {
				t.Fatalf("referrers = %+v, want one %s (%s)", refs, BundleMediaType, res.Referrer)
			}
			var b struct {
				MediaType            string `json:"mediaType"`
				VerificationMaterial struct {
					PublicKey struct {
						Hint string `json:"hint"`
					} `json:"publicKey"`
				} `json:"verificationMaterial"`
				DsseEnvelope struct {
					PayloadType string `json:"payloadType"`
					Payload     string `json:"payload"`
					Signatures  []struct {
						Sig   string `json:"sig"`
						Keyid string `json:"keyid"`
					} `json:"signatures"`
				} `json:"dsseEnvelope"`
			}
			if err := json.Unmarshal(res.Bundle, &b); err != nil {
				t.Fatal(err)
			}
			id, _ := key.ID(signer.Public())
			der, _ := x509.MarshalPKIXPublicKey(signer.Public())
			sum := sha256.Sum256(der)
			hint := base64.StdEncoding.EncodeToString(sum[:]) // as sigstore-go writes it
			if b.MediaType != BundleMediaType || b.VerificationMaterial.PublicKey.Hint != hint ||
				b.DsseEnvelope.PayloadType != InTotoPayloadType || len(b.DsseEnvelope.Signatures) != 1 ||
				b.DsseEnvelope.Signatures[0].Keyid != "" {
				t.Fatalf("bundle = %s", res.Bundle)
			}
			stmt, _ := base64.StdEncoding.DecodeString(b.DsseEnvelope.Payload)
			hex := strings.TrimPrefix(ref.DigestStr(), "sha256:")
			for _, want := range []string{`"predicateType":"` + CosignSignPredicateType, `"sha256":"` + hex, `"build":"42"`} {
				if !bytes.Contains(stmt, []byte(want)) {
					t.Fatalf("statement %s lacks %s", stmt, want)
				}
			}

			vs, err := Verify(ctx, ref, PublicKeys{signer.Public()}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sources := map[Source]bool{}
			for _, v := range vs {
				sources[v.Source] = true
				if v.KeyID != id || v.Digest != ref.DigestStr() || v.Annotations["build"] != "42" {
					t.Fatalf("verified = %+v", v)
				}
			}
			if len(vs) != 2 || !sources[SourceTag] || !sources[SourceReferrer] {
				t.Fatalf("verified %d signatures from %v, want one per place", len(vs), sources)
			}
			if vs[0].DockerReference != ref.Context().Name() {
				t.Fatalf("docker-reference = %q", vs[0].DockerReference)
			}

			// The returned bundle verifies offline, for this digest only.
			if _, err := VerifyBundle(res.Bundle, ref.DigestStr(), []crypto.PublicKey{signer.Public()}); err != nil {
				t.Fatal(err)
			}
			other := "sha256:" + strings.Repeat("0", 64)
			if _, err := VerifyBundle(res.Bundle, other, []crypto.PublicKey{signer.Public()}); err == nil {
				t.Fatal("bundle verified for another digest")
			}
		})
	}
}

func TestSignAppendsToExistingSignatures(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	ref := pushImage(t, host, "app")
	k1, k2 := genKey(t, key.ECDSAP256), genKey(t, key.Ed25519)
	if _, err := Sign(ctx, ref, k1, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(ctx, ref, k2, Options{}); err != nil {
		t.Fatal(err)
	}
	// Ed25519 is deterministic: signing again adds nothing to the .sig image.
	if _, err := Sign(ctx, ref, k2, Options{}); err != nil {
		t.Fatal(err)
	}
	if n := len(tagManifest(t, ref, SignatureSuffix).Layers); n != 2 {
		t.Fatalf(".sig image has %d layers, want 2 (appended, not replaced, no duplicate)", n)
	}
	for _, k := range []crypto.Signer{k1, k2} {
		vs, err := Verify(ctx, ref, PublicKeys{k.Public()}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) < 2 {
			t.Fatalf("key verified %d signatures, want at least 2", len(vs))
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	signer := genKey(t, key.ECDSAP256)

	unsigned := pushImage(t, host, "unsigned")
	if _, err := Verify(ctx, unsigned, PublicKeys{signer.Public()}, Options{}); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("unsigned image: err = %v, want ErrNoSignature", err)
	}

	ref := pushImage(t, host, "signed")
	if _, err := Sign(ctx, ref, signer, Options{}); err != nil {
		t.Fatal(err)
	}
	stranger := genKey(t, key.ECDSAP256)
	if _, err := Verify(ctx, ref, PublicKeys{stranger.Public()}, Options{}); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("wrong key: err = %v, want ErrNotVerified", err)
	}
	if _, err := Verify(ctx, ref, PublicKeys{}, Options{}); err == nil {
		t.Fatal("verified with no trusted keys")
	}
	missing := ref.Context().Digest("sha256:" + strings.Repeat("a", 64))
	if _, err := Sign(ctx, missing, signer, Options{}); err == nil || !strings.Contains(err.Error(), "not in the registry") {
		t.Fatalf("signing a missing manifest: err = %v", err)
	}
}

// TestMovedSignatureFails copies a valid signature (the .sig image and the
// bundle referrer) next to another digest: it must not verify there.
func TestMovedSignatureFails(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	signer := genKey(t, key.ECDSAP256)
	a := pushImage(t, host, "app")
	b := pushImage(t, host, "app")
	res, err := Sign(ctx, a, signer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Copy the .sig image to b's tag.
	sigImg, err := remote.Image(TagFor(a, SignatureSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(TagFor(b, SignatureSuffix), sigImg); err != nil {
		t.Fatal(err)
	}
	// Store the same bundle as a referrer of b.
	subj, err := subjectDescriptor(ctx, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := putBundleReferrer(ctx, b, subj, res.Bundle, CosignSignPredicateType, Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ctx, b, PublicKeys{signer.Public()}, Options{})
	if !errors.Is(err, ErrNotVerified) {
		t.Fatalf("moved signature: err = %v, want ErrNotVerified", err)
	}
	if !strings.Contains(err.Error(), "not "+b.DigestStr()) || !strings.Contains(err.Error(), "does not name "+b.DigestStr()) {
		t.Fatalf("error does not say the digest differs: %v", err)
	}
	if _, err := Verify(ctx, a, PublicKeys{signer.Public()}, Options{}); err != nil {
		t.Fatalf("original no longer verifies: %v", err)
	}
}

// TestTamperedPayloadFails edits the signed payload in the .sig image.
func TestTamperedPayloadFails(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	signer := genKey(t, key.Ed25519)
	a := pushImage(t, host, "app")
	b := pushImage(t, host, "app")
	if _, err := Sign(ctx, a, signer, Options{}); err != nil {
		t.Fatal(err)
	}
	layers, err := readTagLayers(ctx, TagFor(a, SignatureSuffix), SimpleSigningMediaType, MaxPayloadSize, Options{}, nil)
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v, %v", layers, err)
	}
	forged := bytes.Replace(layers[0].body, []byte(a.DigestStr()), []byte(b.DigestStr()), 1)
	if _, err := appendLayer(ctx, TagFor(b, SignatureSuffix), forged, SimpleSigningMediaType, layers[0].annotations, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, b, PublicKeys{signer.Public()}, Options{}); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("forged payload: err = %v, want ErrNotVerified", err)
	}
}

// dsseSigner adapts a crypto.Signer to go-securesystemslib's DSSE signer,
// signing as sigstore does (ECDSA over SHA-256, pure Ed25519).
type dsseSigner struct {
	s  crypto.Signer
	id string // the keyid written in the envelope
}

func (d dsseSigner) Sign(_ context.Context, data []byte) ([]byte, error) {
	if _, ok := d.s.Public().(ed25519.PublicKey); ok {
		return d.s.Sign(rand.Reader, data, crypto.Hash(0))
	}
	sum := sha256.Sum256(data)
	return key.SignDigest(d.s, sum[:])
}
func (d dsseSigner) KeyID() (string, error) { return d.id, nil }

// envelope signs an in-toto statement about digest with predicateType,
// writing keyID as the signature's keyid.
func envelope(t *testing.T, s crypto.Signer, keyID, digest, predicateType string) []byte {
	t.Helper()
	alg, hex, _ := strings.Cut(digest, ":")
	stmt, err := json.Marshal(map[string]any{
		"_type":         InTotoStatementType,
		"subject":       []map[string]any{{"name": "app", "digest": map[string]string{alg: hex}}},
		"predicateType": predicateType,
		"predicate":     map[string]string{"result": "PASSED"},
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := dsse.NewEnvelopeSigner(dsseSigner{s, keyID})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), InTotoPayloadType, stmt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAttachAndAttestations(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	signer := genKey(t, key.ECDSAP256)
	ref := pushImage(t, host, "app")
	other := pushImage(t, host, "app")
	const pt = "https://custody.dev/test/v1"
	fp, err := dsse.SHA256KeyID(signer.Public()) // the keyid form cosign matches
	if err != nil {
		t.Fatal(err)
	}
	env := envelope(t, signer, fp, ref.DigestStr(), pt)

	res, err := Attach(ctx, ref, env, pt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := tagManifest(t, ref, AttestationSuffix)
	if len(m.Layers) != 1 || m.Layers[0].MediaType != DSSEMediaType ||
		m.Layers[0].Annotations[PredicateTypeAnnotation] != pt {
		t.Fatalf(".att layers = %+v", m.Layers)
	}
	if sig, ok := m.Layers[0].Annotations[SignatureAnnotation]; !ok || sig != "" {
		t.Fatalf(".att signature annotation = %q, %v; cosign sets it empty", sig, ok)
	}
	refs := referrers(t, ref)
	if len(refs) != 1 || refs[0].ArtifactType != BundleMediaType || refs[0].Digest.String() != res.Referrer {
		t.Fatalf("referrers = %+v", refs)
	}

	atts, err := Attestations(ctx, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || !bytes.Equal(atts[0], env) {
		t.Fatalf("attestations = %d (want the one envelope byte for byte, stored twice, returned once)", len(atts))
	}
	// The bundle copy alone is found too.
	pb, err := parseBundle(res.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	fromBundle, err := envelopeJSON(pb.GetDsseEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	var e1, e2 dsse.Envelope
	_ = json.Unmarshal(env, &e1)
	_ = json.Unmarshal(fromBundle, &e2)
	if e1.Payload != e2.Payload || e1.Signatures[0].Sig != e2.Signatures[0].Sig {
		t.Fatal("bundle does not carry the attached envelope")
	}

	// A keyid cosign cannot match (custody's hex key ID) is cleared in the
	// stored copies; payload and signature stay.
	hexID, _ := key.ID(signer.Public())
	ref2 := pushImage(t, host, "app2")
	env2 := envelope(t, signer, hexID, ref2.DigestStr(), pt)
	if _, err := Attach(ctx, ref2, env2, "", Options{}); err != nil {
		t.Fatal(err)
	}
	atts2, err := Attestations(ctx, ref2, Options{})
	if err != nil || len(atts2) != 1 {
		t.Fatalf("attestations = %d, %v", len(atts2), err)
	}
	var in, stored dsse.Envelope
	_ = json.Unmarshal(env2, &in)
	_ = json.Unmarshal(atts2[0], &stored)
	if stored.Signatures[0].KeyID != "" || stored.Signatures[0].Sig != in.Signatures[0].Sig || stored.Payload != in.Payload {
		t.Fatalf("stored envelope %s, from %s", atts2[0], env2)
	}

	// Attestations are not signatures.
	if _, err := Verify(ctx, ref, PublicKeys{signer.Public()}, Options{}); !errors.Is(err, ErrNoSignature) {
		t.Fatalf("Verify counted an attestation as a signature: %v", err)
	}
	// A signature is not an attestation.
	if _, err := Sign(ctx, ref, signer, Options{}); err != nil {
		t.Fatal(err)
	}
	if atts, err := Attestations(ctx, ref, Options{}); err != nil || len(atts) != 1 {
		t.Fatalf("after signing: %d attestations, %v", len(atts), err)
	}

	// Refusals.
	if _, err := Attach(ctx, other, env, pt, Options{}); err == nil || !strings.Contains(err.Error(), "subjects do not include") {
		t.Fatalf("attaching to another digest: err = %v", err)
	}
	if _, err := Attach(ctx, ref, env, "https://example.com/other", Options{}); err == nil {
		t.Fatal("attached with a mismatched predicate type")
	}
	if _, err := Attach(ctx, ref, []byte(`{"payloadType":"x"}`), pt, Options{}); err == nil {
		t.Fatal("attached an envelope without signatures")
	}
	if atts, err := Attestations(ctx, other, Options{}); err != nil || len(atts) != 0 {
		t.Fatalf("unattested image: %d attestations, %v", len(atts), err)
	}
}

func TestStorageSelectsOnePlace(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	signer := genKey(t, key.ECDSAP256)

	tagOnly := pushImage(t, host, "tag-only")
	res, err := Sign(ctx, tagOnly, signer, Options{Storage: StorageTag})
	if err != nil {
		t.Fatal(err)
	}
	if res.Referrer != "" || res.TagDigest == "" || len(res.Bundle) == 0 || len(referrers(t, tagOnly)) != 0 {
		t.Fatalf("StorageTag wrote a referrer or no tag: %+v", res)
	}
	vs, err := Verify(ctx, tagOnly, PublicKeys{signer.Public()}, Options{})
	if err != nil || len(vs) != 1 || vs[0].Source != SourceTag {
		t.Fatalf("tag only: %+v, %v", vs, err)
	}

	refOnly := pushImage(t, host, "referrer-only")
	res, err = Sign(ctx, refOnly, signer, Options{Storage: StorageReferrer})
	if err != nil {
		t.Fatal(err)
	}
	if res.TagDigest != "" || res.Referrer == "" {
		t.Fatalf("StorageReferrer result %+v", res)
	}
	if _, err := remote.Image(TagFor(refOnly, SignatureSuffix)); err == nil {
		t.Fatal("StorageReferrer wrote a .sig tag")
	}
	vs, err = Verify(ctx, refOnly, PublicKeys{signer.Public()}, Options{})
	if err != nil || len(vs) != 1 || vs[0].Source != SourceReferrer {
		t.Fatalf("referrer only: %+v, %v", vs, err)
	}
	if _, err := Sign(ctx, refOnly, signer, Options{Storage: Storage(9)}); err == nil {
		t.Fatal("accepted an unknown Storage")
	}
}

// TestVerifyEd25519ph checks the Ed25519ph signatures cosign v3 makes with
// Ed25519 keys verify, alongside pure Ed25519.
func TestVerifyEd25519ph(t *testing.T) {
	s := genKey(t, key.Ed25519)
	msg := []byte("DSSEv1 payload")
	sum := sha512.Sum512(msg)
	ph, err := s.Sign(rand.Reader, sum[:], &ed25519.Options{Hash: crypto.SHA512})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyMessage(s.Public(), msg, ph); err != nil {
		t.Fatalf("Ed25519ph: %v", err)
	}
	pure, err := signMessage(s, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyMessage(s.Public(), msg, pure); err != nil {
		t.Fatalf("pure Ed25519: %v", err)
	}
	if err := verifyMessage(s.Public(), []byte("other"), ph); err == nil {
		t.Fatal("Ed25519ph signature verified another message")
	}
}

// TestRemoteOptionsCarryAuth runs every call against a registry that
// requires basic auth: the caller's remote options must reach every request.
func TestRemoteOptionsCarryAuth(t *testing.T) {
	host := newRegistryWrapped(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="custody"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	auth := []remote.Option{remote.WithAuth(&authn.Basic{Username: "ci", Password: "secret"})}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(host + "/private/app:v1")
	if err := remote.Write(tag, img, auth...); err != nil {
		t.Fatal(err)
	}
	opts := Options{Remote: auth}
	ref, err := ResolveDigest(ctx, tag.String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := img.Digest(); ref.DigestStr() != h.String() {
		t.Fatalf("ResolveDigest = %s, want %s", ref.DigestStr(), h)
	}
	signer := genKey(t, key.ECDSAP256)
	if _, err := Sign(ctx, ref, signer, Options{}); err == nil {
		t.Fatal("signed without credentials")
	}
	if _, err := Sign(ctx, ref, signer, opts); err != nil {
		t.Fatal(err)
	}
	fp, _ := dsse.SHA256KeyID(signer.Public())
	if _, err := Attach(ctx, ref, envelope(t, signer, fp, ref.DigestStr(), "https://custody.dev/test/v1"), "", opts); err != nil {
		t.Fatal(err)
	}
	if vs, err := Verify(ctx, ref, PublicKeys{signer.Public()}, opts); err != nil || len(vs) != 2 {
		t.Fatalf("Verify = %d, %v", len(vs), err)
	}
	if atts, err := Attestations(ctx, ref, opts); err != nil || len(atts) != 1 {
		t.Fatalf("Attestations = %d, %v", len(atts), err)
	}
	if _, err := Verify(ctx, ref, PublicKeys{signer.Public()}, Options{}); err == nil {
		t.Fatal("verified without credentials")
	}
}

// TestPullingPingsOnce: a verification's reads made with Options.Pulling
// ping the registry (GET /v2/) once, not before each of its requests, and
// fetch the layers of a .att image concurrently; what they return is the
// same.
func TestPullingPingsOnce(t *testing.T) {
	var (
		mu       sync.Mutex
		pings    int
		inBlob   int
		maxBlobs int
		release  = make(chan struct{})
	)
	host := newRegistryWrapped(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			isBlob := strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet
			mu.Lock()
			if r.URL.Path == "/v2/" {
				pings++
			}
			if isBlob {
				inBlob++
				maxBlobs = max(maxBlobs, inBlob)
			}
			mu.Unlock()
			if isBlob {
				// Hold each blob until a second one is asked for, or
				// a short while: the layers of one image overlap only
				// when they are fetched concurrently.
				select {
				case <-release:
				case <-time.After(200 * time.Millisecond):
				}
				mu.Lock()
				if inBlob >= 2 {
					select {
					case <-release:
					default:
						close(release)
					}
				}
				inBlob--
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	signer := genKey(t, key.ECDSAP256)
	ref := pushImage(t, host, "app")
	fp, err := dsse.SHA256KeyID(signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"https://custody.dev/test/a", "https://custody.dev/test/b"} {
		if _, err := Attach(ctx, ref, envelope(t, signer, fp, ref.DigestStr(), pt), pt, Options{Storage: StorageTag}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Sign(ctx, ref, signer, Options{Storage: StorageTag}); err != nil {
		t.Fatal(err)
	}
	o, err := Options{}.Pulling(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	pings, maxBlobs = 0, 0
	mu.Unlock()
	if _, err := Verify(ctx, ref, PublicKeys([]crypto.PublicKey{signer.Public()}), o); err != nil {
		t.Fatal(err)
	}
	atts, err := StoredAttestations(ctx, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 {
		t.Fatalf("%d attestations, want 2", len(atts))
	}
	mu.Lock()
	defer mu.Unlock()
	if pings != 1 {
		t.Errorf("the registry was pinged %d times, want once", pings)
	}
	if maxBlobs < 2 {
		t.Errorf("at most %d blob fetch(es) at a time: the .att layers were read one after the other", maxBlobs)
	}
}
