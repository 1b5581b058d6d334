package e2e

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// cosignRun runs a cosign binary with a private HOME and COSIGN_PASSWORD,
// returning its combined output and error.
func cosignRun(t *testing.T, home, bin, password string, args ...string) (string, error) {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "COSIGN_PASSWORD="+password)
	out, err := c.CombinedOutput()
	return string(out), err
}

// mustFail runs cosign expecting failure for the reason want names.
func mustFail(t *testing.T, home, bin, want string, args ...string) {
	t.Helper()
	out, err := cosignRun(t, home, bin, "", args...)
	if err == nil {
		t.Fatalf("%s %s succeeded, want failure (%s):\n%s", filepath.Base(bin), strings.Join(args, " "), want, out)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("%s %s failed without saying %q:\n%s", filepath.Base(bin), strings.Join(args, " "), want, out)
	}
}

func mustCosign(t *testing.T, home, bin, password string, args ...string) string {
	t.Helper()
	out, err := cosignRun(t, home, bin, password, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

// keyFiles writes a custody key as cosign reads it: the private key
// encrypted in cosign's format (key.EncryptPrivateKey) and the public PEM.
func keyFiles(t *testing.T, dir string, alg key.Algorithm, password string) (crypto.Signer, string, string) {
	t.Helper()
	s, err := key.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := key.EncryptPrivateKey(s, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.MarshalPublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	kp, pp := filepath.Join(dir, string(alg)+".key"), filepath.Join(dir, string(alg)+".pub")
	if err := os.WriteFile(kp, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pp, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return s, kp, pp
}

// pushRandom pushes a small random image to host/repo and returns its
// digest reference.
func pushRandom(t *testing.T, host, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(host + "/" + repo + "@" + h.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d, img); err != nil {
		t.Fatal(err)
	}
	return d
}

// moveTag copies the cosign v2 .sig/.att image of from to the tag of to.
func moveTag(t *testing.T, from, to name.Digest, suffix string, opts ...remote.Option) {
	t.Helper()
	img, err := remote.Image(sign.TagFor(from, suffix), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sign.TagFor(to, suffix), img, opts...); err != nil {
		t.Fatal(err)
	}
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// moveReferrers re-stores every referrer of from as a referrer of to: same
// layers (the same bundles), new subject.
func moveReferrers(t *testing.T, from, to name.Digest, opts ...remote.Option) int {
	t.Helper()
	idx, err := remote.Referrers(from, opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	subj, err := remote.Head(to, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		got, err := remote.Get(from.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			t.Fatal(err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(got.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		m.Subject = &v1.Descriptor{MediaType: subj.MediaType, Size: subj.Size, Digest: subj.Digest}
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		ref := to.Context().Digest("sha256:" + hex.EncodeToString(sum[:]))
		if err := remote.Put(ref, rawManifest(body), opts...); err != nil {
			t.Fatal(err)
		}
	}
	return len(im.Manifests)
}

// dsseKey signs DSSE the way sigstore does (ECDSA over SHA-256, pure
// Ed25519) for go-securesystemslib's envelope signer.
type dsseKey struct{ s crypto.Signer }

func (k dsseKey) Sign(_ context.Context, data []byte) ([]byte, error) {
	if _, ok := k.s.Public().(ed25519.PublicKey); ok {
		return k.s.Sign(rand.Reader, data, crypto.Hash(0))
	}
	sum := sha256.Sum256(data)
	return key.SignDigest(k.s, sum[:])
}
func (k dsseKey) KeyID() (string, error) { return key.ID(k.s.Public()) }

// attestation returns DSSE envelope JSON around an in-toto statement about d.
func attestation(t *testing.T, s crypto.Signer, d name.Digest, predicateType string) []byte {
	t.Helper()
	alg, hex, _ := strings.Cut(d.DigestStr(), ":")
	stmt, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"name": d.Context().Name(), "digest": map[string]string{alg: hex}}},
		"predicateType": predicateType,
		"predicate":     map[string]string{"result": "PASSED"},
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := dsse.NewEnvelopeSigner(dsseKey{s})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), "application/vnd.in-toto+json", stmt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testPredicate = "https://custody.dev/e2e/test/v1"

// emptyTrustRoot writes a Sigstore trusted root with no authorities. cosign
// v2.6 switches to the bundle verifier as soon as it sees a bundle referrer
// and then insists on a trusted root, which it otherwise fetches from the
// public-good TUF repository (not reachable air-gapped); key-based
// verification with --insecure-ignore-tlog needs nothing from it.
func emptyTrustRoot(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(p, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignCosignV2 checks custody's signatures and attestations against
// the real cosign v2 both ways, in both storage places, and that a
// signature moved to another digest fails in both.
func TestSignCosignV2(t *testing.T) {
	cosign := client(t, "cosign")
	srv := testserver.Start(t, testserver.Options{})
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	ctx := context.Background()
	home, work := t.TempDir(), t.TempDir()
	const password = "e2e-pass"
	h := srv.Host()
	root := emptyTrustRoot(t, work)
	verify := func(pub string, d name.Digest, extra ...string) []string {
		return append([]string{"verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry"}, append(extra, d.String())...)
	}
	verifyAtt := func(pub string, d name.Digest, extra ...string) []string {
		return append([]string{"verify-attestation", "--type", testPredicate, "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry"}, append(extra, d.String())...)
	}

	t.Run("custody signs, cosign verifies", func(t *testing.T) {
		for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
			s, _, pub := keyFiles(t, work, alg, password)
			// The .sig image alone: cosign v2's own format.
			d := pushRandom(t, h, "v2/custody-signed-tag-"+string(alg))
			if _, err := sign.Sign(ctx, d, s, sign.Options{Storage: sign.StorageTag, Annotations: map[string]string{"by": "custody"}}); err != nil {
				t.Fatal(err)
			}
			out := mustCosign(t, home, cosign, "", verify(pub, d)...)
			if !strings.Contains(out, d.DigestStr()) || !strings.Contains(out, `"by":"custody"`) || !strings.Contains(out, sign.SimpleSigningType) {
				t.Fatalf("%s: cosign verify did not report the .sig signature:\n%s", alg, out)
			}
			// Both places: cosign v2.6 picks the bundle referrer.
			d2 := pushRandom(t, h, "v2/custody-signed-both-"+string(alg))
			if _, err := sign.Sign(ctx, d2, s, sign.Options{}); err != nil {
				t.Fatal(err)
			}
			out = mustCosign(t, home, cosign, "", verify(pub, d2, "--trusted-root", root)...)
			if !strings.Contains(out, d2.DigestStr()) {
				t.Fatalf("%s: cosign verify output lacks the digest:\n%s", alg, out)
			}
			// Another key verifies neither.
			_, _, otherPub := keyFiles(t, t.TempDir(), alg, password)
			mustFail(t, home, cosign, "no matching signatures", verify(otherPub, d)...)
			mustFail(t, home, cosign, "no matching", verify(otherPub, d2, "--trusted-root", root)...)
		}
	})

	t.Run("cosign signs, custody verifies", func(t *testing.T) {
		// ECDSA P-256 only: cosign v2.6.5 crashes signing with Ed25519 when
		// the transparency log is off.
		s, priv, pub := keyFiles(t, work, key.ECDSAP256, password)
		d := pushRandom(t, h, "v2/cosign-signed")
		mustCosign(t, home, cosign, password, "sign", "--key", priv, "--tlog-upload=false", "--allow-insecure-registry", "--yes", "-a", "team=qa", d.String())
		vs, err := sign.Verify(ctx, d, sign.PublicKeys{s.Public()}, sign.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Source != sign.SourceTag || vs[0].Annotations["team"] != "qa" {
			t.Fatalf("verified = %+v, want the one cosign v2 signature", vs)
		}
		other, _, _ := keyFiles(t, t.TempDir(), key.ECDSAP256, password)
		if _, err := sign.Verify(ctx, d, sign.PublicKeys{other.Public()}, sign.Options{}); !errors.Is(err, sign.ErrNotVerified) {
			t.Fatalf("wrong key: err = %v", err)
		}
		// custody appends its signature to cosign's .sig image; cosign still
		// reads it.
		if _, err := sign.Sign(ctx, d, s, sign.Options{Storage: sign.StorageTag}); err != nil {
			t.Fatal(err)
		}
		if vs, err := sign.Verify(ctx, d, sign.PublicKeys{s.Public()}, sign.Options{}); err != nil || len(vs) != 2 {
			t.Fatalf("after custody signed too: %d verified, %v (want cosign's and custody's)", len(vs), err)
		}
		out := mustCosign(t, home, cosign, "", verify(pub, d)...)
		if strings.Count(out, `"docker-manifest-digest"`) != 2 {
			t.Fatalf("cosign did not verify both signatures in the .sig image:\n%s", out)
		}
	})

	t.Run("custody attaches, cosign verify-attestation", func(t *testing.T) {
		for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
			s, _, pub := keyFiles(t, work, alg, password)
			d := pushRandom(t, h, "v2/attested-tag-"+string(alg))
			if _, err := sign.Attach(ctx, d, attestation(t, s, d, testPredicate), testPredicate, sign.Options{Storage: sign.StorageTag}); err != nil {
				t.Fatal(err)
			}
			out := mustCosign(t, home, cosign, "", verifyAtt(pub, d)...)
			if !strings.Contains(out, "payloadType") {
				t.Fatalf("%s: verify-attestation printed no envelope:\n%s", alg, out)
			}
			d2 := pushRandom(t, h, "v2/attested-both-"+string(alg))
			if _, err := sign.Attach(ctx, d2, attestation(t, s, d2, testPredicate), testPredicate, sign.Options{}); err != nil {
				t.Fatal(err)
			}
			mustCosign(t, home, cosign, "", verifyAtt(pub, d2, "--trusted-root", root)...)
			atts, err := sign.Attestations(ctx, d2, sign.Options{})
			if err != nil || len(atts) != 1 {
				t.Fatalf("%s: Attestations = %d, %v", alg, len(atts), err)
			}
		}
	})

	t.Run("signature moved to another digest fails", func(t *testing.T) {
		s, _, pub := keyFiles(t, work, key.ECDSAP256, password)
		a := pushRandom(t, h, "v2/tamper")
		b := pushRandom(t, h, "v2/tamper")
		if _, err := sign.Sign(ctx, a, s, sign.Options{}); err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Attach(ctx, a, attestation(t, s, a, testPredicate), testPredicate, sign.Options{}); err != nil {
			t.Fatal(err)
		}
		// First the cosign v2 tags alone.
		moveTag(t, a, b, sign.SignatureSuffix)
		moveTag(t, a, b, sign.AttestationSuffix)
		mustFail(t, home, cosign, "invalid or missing digest in claim", verify(pub, b)...)
		mustFail(t, home, cosign, "no matching subject digest found", verifyAtt(pub, b)...)
		if _, err := sign.Verify(ctx, b, sign.PublicKeys{s.Public()}, sign.Options{}); !errors.Is(err, sign.ErrNotVerified) {
			t.Fatalf("custody: moved .sig: err = %v, want ErrNotVerified", err)
		}
		// Then the bundle referrers too.
		if n := moveReferrers(t, a, b); n != 2 {
			t.Fatalf("moved %d referrers, want 2", n)
		}
		const moved = "provided artifact digest does not match any digest in statement"
		mustFail(t, home, cosign, moved, verify(pub, b, "--trusted-root", root)...)
		mustFail(t, home, cosign, moved, verifyAtt(pub, b, "--trusted-root", root)...)
		if _, err := sign.Verify(ctx, b, sign.PublicKeys{s.Public()}, sign.Options{}); !errors.Is(err, sign.ErrNotVerified) {
			t.Fatalf("custody: moved signatures: err = %v, want ErrNotVerified", err)
		}
		// The originals still verify in both.
		mustCosign(t, home, cosign, "", verify(pub, a, "--trusted-root", root)...)
		mustCosign(t, home, cosign, "", verifyAtt(pub, a, "--trusted-root", root)...)
		if _, err := sign.Verify(ctx, a, sign.PublicKeys{s.Public()}, sign.Options{}); err != nil {
			t.Fatal(err)
		}
	})
}

// cosign3 returns the cosign v3 binary. scripts/install-clients.sh builds it
// unless CUSTODY_SKIP_COSIGN3 is set, in which case the test skips even
// under CI.
func cosign3(t *testing.T) string {
	t.Helper()
	if os.Getenv("CUSTODY_SKIP_COSIGN3") != "" {
		t.Skip("CUSTODY_SKIP_COSIGN3 is set: cosign v3 not installed")
	}
	return client(t, "cosign3")
}

// TestSignCosignV3 checks custody's bundle referrers against the real
// cosign v3: v3 verifies what custody signed and attached, custody verifies
// what v3 signed, and a bundle moved to another digest fails in both.
func TestSignCosignV3(t *testing.T) {
	cosign := cosign3(t)
	srv := testserver.Start(t, testserver.Options{})
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	ctx := context.Background()
	home, work := t.TempDir(), t.TempDir()
	const password = "e2e-pass"
	h := srv.Host()
	// Offline: no TUF fetch of the public-good signing config or trust root.
	signArgs := []string{"sign", "--tlog-upload=false", "--use-signing-config=false", "--allow-insecure-registry", "--yes"}
	verifyArgs := []string{"verify", "--insecure-ignore-tlog=true", "--allow-insecure-registry"}

	s, priv, pub := keyFiles(t, work, key.ECDSAP256, password)

	t.Run("custody signs, cosign v3 verifies the bundle", func(t *testing.T) {
		for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
			s, _, pub := keyFiles(t, t.TempDir(), alg, password)
			d := pushRandom(t, h, "v3/custody-signed-"+string(alg))
			if _, err := sign.Sign(ctx, d, s, sign.Options{}); err != nil {
				t.Fatal(err)
			}
			out := mustCosign(t, home, cosign, "", append(verifyArgs, "--key", pub, d.String())...)
			// v3 reports a bundle signature with the statement's predicate type as
			// its "type"; a .sig signature would say "cosign container image signature".
			if !strings.Contains(out, sign.CosignSignPredicateType) || !strings.Contains(out, d.DigestStr()) {
				t.Fatalf("%s: cosign v3 did not verify the bundle referrer:\n%s", alg, out)
			}
			_, _, otherPub := keyFiles(t, t.TempDir(), alg, password)
			mustFail(t, home, cosign, "no matching attestations", append(verifyArgs, "--key", otherPub, d.String())...)
		}
	})

	t.Run("cosign v3 signs with Ed25519, custody verifies", func(t *testing.T) {
		s, priv, _ := keyFiles(t, t.TempDir(), key.Ed25519, password)
		d := pushRandom(t, h, "v3/cosign-signed-ed25519")
		mustCosign(t, home, cosign, password, append(signArgs, "--key", priv, d.String())...)
		if _, err := sign.Verify(ctx, d, sign.PublicKeys{s.Public()}, sign.Options{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cosign v3 signs, custody verifies", func(t *testing.T) {
		d := pushRandom(t, h, "v3/cosign-signed")
		mustCosign(t, home, cosign, password, append(signArgs, "--key", priv, "-a", "team=qa", d.String())...)
		vs, err := sign.Verify(ctx, d, sign.PublicKeys{s.Public()}, sign.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Source != sign.SourceReferrer || vs[0].Annotations["team"] != "qa" {
			t.Fatalf("verified = %+v, want the one cosign v3 bundle", vs)
		}
		other, _, _ := keyFiles(t, t.TempDir(), key.ECDSAP256, password)
		if _, err := sign.Verify(ctx, d, sign.PublicKeys{other.Public()}, sign.Options{}); !errors.Is(err, sign.ErrNotVerified) {
			t.Fatalf("wrong key: err = %v", err)
		}
	})

	t.Run("custody attaches, cosign v3 verify-attestation", func(t *testing.T) {
		d := pushRandom(t, h, "v3/attested")
		if _, err := sign.Attach(ctx, d, attestation(t, s, d, testPredicate), testPredicate, sign.Options{}); err != nil {
			t.Fatal(err)
		}
		mustCosign(t, home, cosign, "", "verify-attestation", "--type", testPredicate, "--key", pub,
			"--insecure-ignore-tlog=true", "--allow-insecure-registry", d.String())
	})

	t.Run("bundle moved to another digest fails", func(t *testing.T) {
		a := pushRandom(t, h, "v3/tamper")
		b := pushRandom(t, h, "v3/tamper")
		mustCosign(t, home, cosign, password, append(signArgs, "--key", priv, a.String())...)
		if n := moveReferrers(t, a, b); n != 1 {
			t.Fatalf("moved %d referrers, want 1", n)
		}
		mustFail(t, home, cosign, "provided artifact digest does not match any digest in statement", append(verifyArgs, "--key", pub, b.String())...)
		if _, err := sign.Verify(ctx, b, sign.PublicKeys{s.Public()}, sign.Options{}); !errors.Is(err, sign.ErrNotVerified) {
			t.Fatalf("custody: moved bundle: err = %v, want ErrNotVerified", err)
		}
		if _, err := sign.Verify(ctx, a, sign.PublicKeys{s.Public()}, sign.Options{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSignWithAuth signs and verifies against a server with authentication
// on (the product default): custody passes credentials through
// sign.Options.Remote, cosign reads the docker config `custody login` wrote.
func TestSignWithAuth(t *testing.T) {
	cosign := client(t, "cosign")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no ambient credentials for the in-process client
	ctx := context.Background()
	home, work := t.TempDir(), t.TempDir()
	pw := srv.AdminPassword()
	mustCustody(t, home, pw+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	opts := sign.Options{Remote: []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: pw})}}

	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(h + "/private/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, opts.Remote...); err != nil {
		t.Fatal(err)
	}
	d, err := sign.ResolveDigest(ctx, tag.String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s, _, pub := keyFiles(t, work, key.ECDSAP256, "pw")
	if _, err := sign.Sign(ctx, d, s, sign.Options{}); err == nil {
		t.Fatal("signed without credentials")
	}
	if _, err := sign.Sign(ctx, d, s, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Attach(ctx, d, attestation(t, s, d, testPredicate), testPredicate, opts); err != nil {
		t.Fatal(err)
	}
	if vs, err := sign.Verify(ctx, d, sign.PublicKeys{s.Public()}, opts); err != nil || len(vs) != 2 {
		t.Fatalf("Verify = %d, %v", len(vs), err)
	}
	root := emptyTrustRoot(t, work)
	mustCosign(t, home, cosign, "", "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", "--trusted-root", root, d.String())
	mustCosign(t, home, cosign, "", "verify-attestation", "--type", testPredicate, "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", "--trusted-root", root, d.String())
	if os.Getenv("CUSTODY_SKIP_COSIGN3") == "" {
		cosign3 := client(t, "cosign3")
		mustCosign(t, home, cosign3, "", "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", d.String())
	}
}
