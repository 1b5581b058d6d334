package sign

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/key"
)

const fuzzDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func FuzzParsePayload(f *testing.F) {
	good, _ := NewPayload("example.com/app", fuzzDigest, map[string]string{"a": "b"}).Marshal()
	f.Add(good)
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"cosign container image signature"},"optional":null}`))
	f.Add([]byte(`{"critical":{"type":"other"}}`))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"x"},"type":"cosign container image signature"}} {}`))
	f.Add([]byte(`{"optional":{"n":1,"s":"x","o":{}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload(b)
		if err != nil {
			return
		}
		if p.Critical.Type != SimpleSigningType || p.Critical.Image.DockerManifestDigest == "" {
			t.Fatalf("accepted an invalid payload: %+v", p)
		}
		// What parses re-encodes and parses to the same critical part.
		again, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParsePayload(again)
		if err != nil || q.Critical != p.Critical {
			t.Fatalf("round trip changed %+v to %+v (%v)", p.Critical, q.Critical, err)
		}
		_ = p.Annotations()
	})
}

func fuzzKey(f *testing.F) crypto.Signer {
	s, err := key.Generate(key.ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

func FuzzParseBundle(f *testing.F) {
	s := fuzzKey(f)
	st, _ := signStatement(fuzzDigest, map[string]string{"k": "v"})
	env, err := signDSSE(s, InTotoPayloadType, st)
	if err != nil {
		f.Fatal(err)
	}
	good, err := newBundle(env, s.Public(), nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	cert, _ := x509.ParseCertificate(der)
	keyless, err := newBundle(env, nil, []*x509.Certificate{cert}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keyless)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"","payloadType":"","signatures":[]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.1"}`))
	f.Add([]byte(`{"mediaType":1}`))
	f.Add([]byte(`null`))
	pubs := []crypto.PublicKey{s.Public()}
	f.Fuzz(func(t *testing.T, b []byte) {
		pb, err := parseBundle(b)
		if err == nil && !acceptedBundleMediaTypes[pb.GetMediaType()] {
			t.Fatalf("accepted media type %q", pb.GetMediaType())
		}
		// With certificates accepted, a verified bundle carries the
		// certificate whose key verified it (never a trusted key here).
		if v, err := verifyBundle(b, fuzzDigest, nil, true); err == nil {
			if len(v.Chain) == 0 || !bytes.Contains(v.Payload, []byte(strings.TrimPrefix(fuzzDigest, "sha256:"))) {
				t.Fatalf("verified a keyless bundle without its certificate or digest: %s", v.Payload)
			}
		}
		v, err := VerifyBundle(b, fuzzDigest, pubs)
		if err != nil {
			return
		}
		// Only a genuine signature over a statement naming the digest may
		// verify: the fuzzer cannot forge ECDSA.
		if v.Digest != fuzzDigest || !bytes.Contains(v.Payload, []byte(strings.TrimPrefix(fuzzDigest, "sha256:"))) {
			t.Fatalf("verified a bundle that does not name the digest: %s", v.Payload)
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"AAAA"}]}`))
	f.Add([]byte(`{"payloadType":"x","payload":"e30","signatures":[{"sig":"_-8"}]}`))
	f.Add([]byte(`{"payloadType":"x","payload":"!!","signatures":[]}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			return
		}
		if e.PayloadType == "" || len(e.Signatures) == 0 {
			t.Fatalf("accepted an incomplete envelope: %v", e)
		}
		// Re-encoding gives standard DSSE JSON that parses to the same thing.
		j, err := envelopeJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := parseEnvelope(j)
		if err != nil || !bytes.Equal(e2.Payload, e.Payload) || e2.PayloadType != e.PayloadType || len(e2.Signatures) != len(e.Signatures) {
			t.Fatalf("round trip changed the envelope: %v", err)
		}
		_, _ = parseStatement(e.Payload)
	})
}

// FuzzLayerChain reads the certificate annotations of a .sig layer as
// cosign writes them: never a panic, a chain only when the leaf parses,
// and at most maxChain certificates.
func FuzzLayerChain(f *testing.F) {
	s, _ := key.Generate(key.ECDSAP256)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	c, _ := x509.ParseCertificate(der)
	ann := certificateAnnotations(map[string]string{}, []*x509.Certificate{c, c})
	f.Add(ann[CertificateAnnotation], ann[ChainAnnotation])
	f.Add(ann[CertificateAnnotation], "")
	f.Add("", ann[ChainAnnotation])
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "junk")
	f.Add(strings.Repeat(ann[CertificateAnnotation], 2), strings.Repeat(ann[CertificateAnnotation], 20))
	f.Fuzz(func(t *testing.T, leaf, rest string) {
		chain := layerChain(map[string]string{CertificateAnnotation: leaf, ChainAnnotation: rest})
		if len(chain) > 1+maxChain {
			t.Fatalf("%d certificates read", len(chain))
		}
		for _, c := range chain {
			if c == nil {
				t.Fatal("nil certificate in a chain")
			}
		}
	})
}
