package trustedroot_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/ctlog"
	"github.com/custody-dev/custody/internal/timestamp"
	"github.com/custody-dev/custody/internal/trustedroot"
)

const (
	oidcIssuer = "https://token.actions.githubusercontent.com"
	identity   = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
)

// private is a small private Sigstore in process: a CA with a CT log and
// a TSA, as custody serve wires them.
type private struct {
	ca       *ca.CA
	log      *ctlog.Log
	tsa      *timestamp.Authority
	caStart  time.Time
	logStart time.Time
}

func newPrivate(t testing.TB) *private {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.CreateRoot(caKey, "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(caKey, []*x509.Certificate{root}, 0)
	if err != nil {
		t.Fatal(err)
	}
	logKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	l, err := ctlog.New(logKey)
	if err != nil {
		t.Fatal(err)
	}
	authority.WithCTLog(l)
	tsaKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := timestamp.NewChain(tsaKey, "test TSA", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tsa, err := timestamp.New(timestamp.Config{Signer: tsaKey, Chain: chain})
	if err != nil {
		t.Fatal(err)
	}
	return &private{ca: authority, log: l, tsa: tsa, caStart: root.NotBefore, logStart: root.NotBefore}
}

func (p *private) input() trustedroot.Input {
	return trustedroot.Input{
		CertificateAuthorities: []trustedroot.Authority{{URL: "https://custody.example", Chain: p.ca.Chain(), Start: p.caStart}},
		TimestampAuthorities: []trustedroot.Authority{{URL: "https://custody.example/api/v1/timestamp", Chain: p.tsa.Chain(),
			Start: p.tsa.Chain()[0].NotBefore, End: p.tsa.Chain()[0].NotAfter}},
		CTLogs: []trustedroot.Log{{URL: "https://custody.example", PublicKey: p.log.Public(), Start: p.logStart}},
	}
}

// sign makes what a keyless signer makes: an ephemeral key, a certificate
// for it from the CA (with the embedded SCT), a signature over artifact
// and a time-stamp over the signature, as a Sigstore bundle v0.3.
func (p *private) sign(t testing.TB, artifact []byte) *bundle.Bundle {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := ca.IdentityOf(map[string]string{"iss": oidcIssuer, "sub": "repo:acme/app:ref:refs/heads/main",
		"job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main", "repository": "acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := p.ca.Issue(id, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(artifact)
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.tsa.Stamp(context.Background(), sig)
	if err != nil {
		t.Fatal(err)
	}
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: chain[0].Raw}},
			TimestampVerificationData: &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tok}},
			},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest[:]},
			Signature:     sig,
		}},
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyWith runs sigstore-go's verifier as cosign v3 does for a keyless
// signature with a time-stamp: the SCT required, the identity pinned.
func verifyWith(trustedRootJSON []byte, b *bundle.Bundle, artifact []byte) error {
	tr, err := root.NewTrustedRootFromJSON(trustedRootJSON)
	if err != nil {
		return err
	}
	v, err := verify.NewVerifier(tr, verify.WithSignedCertificateTimestamps(1), verify.WithSignedTimestamps(1))
	if err != nil {
		return err
	}
	id, err := verify.NewShortCertificateIdentity(oidcIssuer, "", identity, "")
	if err != nil {
		return err
	}
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithCertificateIdentity(id)))
	return err
}

// TestSigstoreGoVerifiesKeylessSignature: sigstore-go's verifier, given
// the trusted_root.json written here, accepts a keyless signature made
// with custody's CA (its SCT checked against the CT log's key, required)
// and TSA; it refuses it when the trusted root lacks the CT log or has
// its window closed before the SCT, or pins another identity.
func TestSigstoreGoVerifiesKeylessSignature(t *testing.T) {
	p := newPrivate(t)
	artifact := []byte("release artifact")
	b := p.sign(t, artifact)
	js, err := trustedroot.TrustedRoot(p.input())
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyWith(js, b, artifact); err != nil {
		t.Fatalf("sigstore-go refused the keyless signature: %v\n%s", err, js)
	}
	if err := verifyWith(js, b, []byte("another artifact")); err == nil {
		t.Fatal("verified over another artifact")
	}

	noLog := p.input()
	noLog.CTLogs = nil
	js, _ = trustedroot.TrustedRoot(noLog)
	if err := verifyWith(js, b, artifact); err == nil || !strings.Contains(err.Error(), "SCT") {
		t.Fatalf("verified without the CT log in the trusted root: %v", err)
	}

	otherLog := p.input()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherLog.CTLogs[0].PublicKey = &k.PublicKey
	js, _ = trustedroot.TrustedRoot(otherLog)
	if err := verifyWith(js, b, artifact); err == nil {
		t.Fatal("verified with another CT log key")
	}

	closed := p.input()
	closed.CTLogs[0].End = p.logStart.Add(time.Second)
	closed.CTLogs[0].Start = p.logStart
	js, _ = trustedroot.TrustedRoot(closed)
	if err := verifyWith(js, b, artifact); err == nil {
		t.Fatal("verified an SCT made after the CT log's window closed")
	}
}

// TestRotationWindows: after a CA, CT log and TSA rotation the documents
// keep the old material with closed windows, so sigstore-go still
// verifies a signature made before the rotation, and the signing
// configuration offers only the current services.
func TestRotationWindows(t *testing.T) {
	old := newPrivate(t)
	artifact := []byte("signed before the rotation")
	b := old.sign(t, artifact)
	rotated := time.Now()
	cur := newPrivate(t)
	in := cur.input()
	retired := old.input()
	retired.CertificateAuthorities[0].URL, retired.CertificateAuthorities[0].End = "", rotated
	retired.TimestampAuthorities[0].URL = ""
	retired.CTLogs[0].URL, retired.CTLogs[0].End = "", rotated
	in.CertificateAuthorities = append(retired.CertificateAuthorities, in.CertificateAuthorities...)
	in.TimestampAuthorities = append(retired.TimestampAuthorities, in.TimestampAuthorities...)
	in.CTLogs = append(retired.CTLogs, in.CTLogs...)
	rekorKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	in.TransparencyLogs = []trustedroot.Log{{URL: "https://custody.example", PublicKey: &rekorKey.PublicKey, Start: rotated, APIVersion: 2,
		CheckpointKeyID: []byte{1, 2, 3, 4}}}

	js, err := trustedroot.TrustedRoot(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyWith(js, b, artifact); err != nil {
		t.Fatalf("a signature made before the rotation no longer verifies: %v", err)
	}
	if err := verifyWith(js, cur.sign(t, artifact), artifact); err != nil {
		t.Fatalf("a signature made after the rotation does not verify: %v", err)
	}
	tr, err := root.NewTrustedRootFromJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	cas := tr.FulcioCertificateAuthorities()
	if len(cas) != 2 {
		t.Fatalf("%d CAs, want 2", len(cas))
	}
	first := cas[0].(*root.FulcioCertificateAuthority)
	second := cas[1].(*root.FulcioCertificateAuthority)
	if !first.ValidityPeriodEnd.Equal(rotated.Truncate(time.Nanosecond).UTC()) && !first.ValidityPeriodEnd.Equal(rotated.UTC()) {
		t.Errorf("the retired CA's window ends at %s, want %s", first.ValidityPeriodEnd, rotated)
	}
	if !second.ValidityPeriodEnd.IsZero() {
		t.Errorf("the current CA's window is closed: %s", second.ValidityPeriodEnd)
	}
	if n := len(tr.TimestampingAuthorities()); n != 2 {
		t.Errorf("%d TSAs, want 2", n)
	}
	logs := tr.CTLogs()
	oldID, curID := old.log.ID(), cur.log.ID()
	if l := logs[hexs(oldID[:])]; l == nil || l.ValidityPeriodEnd.IsZero() {
		t.Errorf("the retired CT log is missing or open: %+v", l)
	}
	if l := logs[hexs(curID[:])]; l == nil || !l.ValidityPeriodEnd.IsZero() {
		t.Errorf("the current CT log is missing or closed: %+v", l)
	}
	if n := len(tr.RekorLogs()); n != 1 {
		t.Errorf("%d transparency logs, want 1", n)
	}

	scJSON, err := trustedroot.SigningConfig(in)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := root.NewSigningConfigFromJSON(scJSON)
	if err != nil {
		t.Fatalf("sigstore-go refused the signing config: %v\n%s", err, scJSON)
	}
	caSvc, err := root.SelectService(sc.FulcioCertificateAuthorityURLs(), []uint32{1}, time.Now())
	if err != nil || caSvc.URL != "https://custody.example" {
		t.Errorf("CA service %+v, %v", caSvc, err)
	}
	if n := len(sc.FulcioCertificateAuthorityURLs()); n != 1 {
		t.Errorf("%d CA URLs, want only the current one", n)
	}
	tsas, err := root.SelectServices(sc.TimestampAuthorityURLs(), sc.TimestampAuthorityURLsConfig(), []uint32{1}, time.Now())
	if err != nil || len(tsas) != 1 || tsas[0].URL != "https://custody.example/api/v1/timestamp" {
		t.Errorf("TSA services %+v, %v", tsas, err)
	}
	logSvc, err := root.SelectServices(sc.RekorLogURLs(), sc.RekorLogURLsConfig(), []uint32{2}, time.Now())
	if err != nil || len(logSvc) != 1 {
		t.Errorf("Rekor v2 services %+v, %v", logSvc, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(scJSON, &doc); err != nil || doc["mediaType"] != trustedroot.SigningConfigMediaType {
		t.Errorf("signing config media type: %v %v", doc["mediaType"], err)
	}
}

// TestRefusesIncompleteInput: material without what verifiers need is an
// error, not a document they would reject or misread.
func TestRefusesIncompleteInput(t *testing.T) {
	p := newPrivate(t)
	for name, in := range map[string]trustedroot.Input{
		"CA without chain":    {CertificateAuthorities: []trustedroot.Authority{{Start: time.Now()}}},
		"CA without start":    {CertificateAuthorities: []trustedroot.Authority{{Chain: p.ca.Chain()}}},
		"TSA ends too early":  {TimestampAuthorities: []trustedroot.Authority{{Chain: p.tsa.Chain(), Start: time.Now(), End: time.Now().Add(-time.Hour)}}},
		"log without start":   {CTLogs: []trustedroot.Log{{PublicKey: p.log.Public()}}},
		"log with no key":     {TransparencyLogs: []trustedroot.Log{{Start: time.Now()}}},
		"log ends too early":  {CTLogs: []trustedroot.Log{{PublicKey: p.log.Public(), Start: time.Now(), End: time.Now().Add(-time.Hour)}}},
		"log of a secret key": {CTLogs: []trustedroot.Log{{PublicKey: []byte("x"), Start: time.Now()}}},
	} {
		if _, err := trustedroot.TrustedRoot(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestEmptyTrustedRoot: a server with nothing to trust yet still serves a
// document sigstore-go reads.
func TestEmptyTrustedRoot(t *testing.T) {
	js, err := trustedroot.TrustedRoot(trustedroot.Input{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.NewTrustedRootFromJSON(js); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	var doc struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(js, &doc); err != nil || doc.MediaType != trustedroot.TrustedRootMediaType {
		t.Fatalf("media type %q, %v", doc.MediaType, err)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
