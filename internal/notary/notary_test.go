package notary

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/notaryproject/notation-go"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pki is a test CA and a code-signing leaf it issued.
type pki struct {
	ca, leaf *x509.Certificate
	key      *ecdsa.PrivateKey
}

func newPKI(t testing.TB, cn string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " CA", Organization: []string{"custody"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{"custody"}, Province: []string{"WA"}, Country: []string{"US"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return pki{ca: ca, leaf: leaf, key: key}
}

// store writes a trust store holding p's CA as ca/<name>.
func (p pki) store(t testing.TB, name string) string {
	t.Helper()
	dir := t.TempDir()
	d := filepath.Join(dir, "x509", "ca", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})
	if err := os.WriteFile(filepath.Join(d, "ca.crt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func policy(level, store, identity string) string {
	return `{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],` +
		`"signatureVerification":{"level":"` + level + `"},"trustStores":["ca:` + store + `"],"trustedIdentities":["` + identity + `"]}]}`
}

var subject = v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 123, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}}

func signed(t testing.TB, p pki, mediaType string, d v1.Descriptor) Stored {
	t.Helper()
	s, err := NewSigner(p.key, []*x509.Certificate{p.leaf, p.ca})
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}
	env, _, err := s.g.Sign(context.Background(), desc, notation.SignerSignOptions{SignatureMediaType: mediaType})
	if err != nil {
		t.Fatal(err)
	}
	return Stored{MediaType: mediaType, Envelope: env}
}

// TestVerify checks notation-go's verdicts as custody reports them:
// identity, level and whether authenticity was enforced.
func TestVerify(t *testing.T) {
	good, other := newPKI(t, "release"), newPKI(t, "intruder")
	ref := "registry.example/apps/web@" + subject.Digest.String()
	for _, mt := range []string{MediaTypeJWS, MediaTypeCOSE} {
		t.Run(formatOf(mt), func(t *testing.T) {
			st := signed(t, good, mt, subject)
			verifier := func(level, identity string, p pki) *Verifier {
				doc, err := ParsePolicy([]byte(policy(level, "acme", identity)))
				if err != nil {
					t.Fatal(err)
				}
				v, err := NewVerifier(doc, p.store(t, "acme"))
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			r := verifier("strict", "*", good).Verify(context.Background(), ref, subject, st)
			if r.Err != nil || !r.AuthenticityEnforced || r.Level != "strict" || r.Identity != "CN=release,O=custody,ST=WA,C=US" || r.Format != formatOf(mt) || len(r.Thumbprints) != 2 {
				t.Fatalf("strict, trusted CA: %+v", r)
			}
			if r := verifier("strict", "x509.subject: CN=release,O=custody,ST=WA,C=US", good).Verify(context.Background(), ref, subject, st); r.Err != nil {
				t.Fatalf("trusted identity: %v", r.Err)
			}
			if r := verifier("strict", "x509.subject: CN=someone,O=custody,ST=WA,C=US", good).Verify(context.Background(), ref, subject, st); r.Err == nil {
				t.Fatal("an identity the policy does not name verified")
			}
			if r := verifier("strict", "*", other).Verify(context.Background(), ref, subject, st); r.Err == nil {
				t.Fatal("a certificate from an untrusted CA verified")
			}
			// Under audit an untrusted CA only logs: notation-go
			// accepts, and the result says authenticity was not enforced.
			if r := verifier("audit", "*", other).Verify(context.Background(), ref, subject, st); r.Err != nil || r.AuthenticityEnforced {
				t.Fatalf("audit: %+v", r)
			}
			skip, err := ParsePolicy([]byte(`{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"skip"}}]}`))
			if err != nil {
				t.Fatal(err)
			}
			sv, err := NewVerifier(skip, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if r := sv.Verify(context.Background(), ref, subject, st); r.Err == nil || r.AuthenticityEnforced {
				t.Fatalf("skip reported a verified signature: %+v", r)
			}
			another := subject
			another.Size++
			if r := verifier("strict", "*", good).Verify(context.Background(), ref, another, st); r.Err == nil {
				t.Fatal("a signature of another descriptor verified")
			}
			target, id, err := Inspect(mt, st.Envelope)
			if err != nil || target != subject.Digest.String() || id != "CN=release,O=custody,ST=WA,C=US" {
				t.Fatalf("Inspect = %q %q %v", target, id, err)
			}
		})
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   `{"version":"1.0","trustPolicies":[],"extra":1}`,
		"version":         `{"version":"2.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:s"],"trustedIdentities":["*"]}]}`,
		"no policies":     `{"version":"1.0","trustPolicies":[]}`,
		"level":           policy("lenient", "s", "*"),
		"store type":      strings.Replace(policy("strict", "s", "*"), "ca:s", "pgp:s", 1),
		"trailing data":   policy("strict", "s", "*") + "{}",
		"identity syntax": policy("strict", "s", "CN=x"),
	} {
		if _, err := ParsePolicy([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
	if _, err := ParsePolicy([]byte(policy("permissive", "s", "x509.subject: CN=a,O=b,ST=WA,C=US"))); err != nil {
		t.Fatal(err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(policy("strict", "acme", "*")))
	f.Add([]byte(policy("audit", "acme", "x509.subject: CN=a,O=b,ST=WA,C=US")))
	f.Add([]byte(`{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["r.example/a"],"signatureVerification":{"level":"strict","override":{"revocation":"log"}},"trustStores":["signingAuthority:s"],"trustedIdentities":["*"]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParsePolicy(b)
		if err != nil {
			return
		}
		for _, p := range doc.TrustPolicies {
			if _, err := p.SignatureVerification.GetVerificationLevel(); err != nil {
				t.Fatalf("accepted a policy with an unknown level: %v", err)
			}
		}
	})
}

func FuzzInspect(f *testing.F) {
	p := newPKI(f, "fuzz")
	for _, mt := range []string{MediaTypeJWS, MediaTypeCOSE} {
		st := signed(f, p, mt, subject)
		f.Add(mt == MediaTypeCOSE, st.Envelope)
	}
	f.Add(false, []byte(`{"payload":"e30","protected":"e30","signature":""}`))
	f.Add(true, []byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	doc, _ := ParsePolicy([]byte(policy("strict", "fuzz", "*")))
	v, err := NewVerifier(doc, p.store(f, "fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cose bool, b []byte) {
		mt := MediaTypeJWS
		if cose {
			mt = MediaTypeCOSE
		}
		_, _, _ = Inspect(mt, b)
		// Verifying anything must not panic either.
		r := v.Verify(context.Background(), "r.example/a@"+subject.Digest.String(), subject, Stored{MediaType: mt, Envelope: b})
		if r.Err == nil && r.Identity != "CN=fuzz,O=custody,ST=WA,C=US" {
			t.Fatalf("verified an envelope not signed by the trusted certificate: %+v", r)
		}
	})
}

// BenchmarkVerify measures one Notation verification (envelope parse,
// signature, chain to the trust store, policy) without the registry.
func BenchmarkVerify(b *testing.B) {
	p := newPKI(b, "bench")
	doc, err := ParsePolicy([]byte(policy("strict", "bench", "*")))
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(doc, p.store(b, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	ref := "r.example/a@" + subject.Digest.String()
	for _, mt := range []string{MediaTypeJWS, MediaTypeCOSE} {
		st := signed(b, p, mt, subject)
		b.Run(formatOf(mt), func(b *testing.B) {
			for b.Loop() {
				if r := v.Verify(context.Background(), ref, subject, st); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		})
	}
}
