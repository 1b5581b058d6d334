package evidence_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/evidence/evidencetest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

const workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"

// newCA returns a certificate authority as custody ca create makes one.
func newCA(t *testing.T) *ca.CA {
	t.Helper()
	s, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.CreateRoot(s, "test workload CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(s, []*x509.Certificate{root}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// workloadCert certifies a new ephemeral key for a GitHub Actions job.
func workloadCert(t *testing.T, c *ca.CA, repo string) (signer crypto.Signer, chain []*x509.Certificate) {
	t.Helper()
	s, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityOf(map[string]string{"iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/" + repo + ":ref:refs/heads/main",
		"repository": "acme/" + repo, "ref": "refs/heads/main", "job_workflow_ref": "acme/" + repo + "/.github/workflows/release.yml@refs/heads/main",
		"workflow_ref": "acme/" + repo + "/.github/workflows/release.yml@refs/heads/main", "sha": "0123456789abcdef0123456789abcdef01234567",
		"event_name": "push", "runner_environment": "github-hosted", "repository_owner": "acme", "workflow": "release"})
	if err != nil {
		t.Fatal(err)
	}
	chain, err = c.Issue(id, s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return s, chain
}

// rootWithCA trusts the CA and the time-stamp authority (no key).
func rootWithCA(t *testing.T, c *ca.CA, tsa *timestamp.Authority) *evidence.Trust {
	t.Helper()
	root := evidencetest.Root()
	root.TimestampAuthorities = []key.TrustedTSA{{CertChain: string(tsa.ChainPEM()), ValidFor: key.Validity{Start: tsaStart}}}
	cc := c.Chain()[0]
	root.CertificateAuthorities = []key.TrustedTSA{{CertChain: string(ca.EncodeChain(c.Chain())), ValidFor: key.Validity{Start: cc.NotBefore, End: cc.NotAfter}}}
	tr, err := evidence.NewTrust(root)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestKeylessSignature pins what makes a keyless signature count: a
// certificate chaining to a CA of the trust root, a time-stamp by a
// trusted authority inside the certificate's validity, the identity read
// from the certificate.
func TestKeylessSignature(t *testing.T) {
	host := evidencetest.Registry(t)
	authority, stranger := newCA(t), newCA(t)
	now := time.Now()
	tsa := newTSA(t, now).WithClock(time.Now)
	trust := rootWithCA(t, authority, tsa)
	for _, c := range []struct {
		name     string
		ca       *ca.CA
		stamper  timestamp.Stamper
		want     string // "" when the signature counts
		rejected bool   // not from a trusted CA: counts for nothing
	}{
		{"time-stamped inside the certificate's validity", authority, tsa.Stamp, "", false},
		{"no time-stamp", authority, nil, "no time-stamp from a trusted authority", false},
		{"time-stamped after the certificate expired", authority, tsa.WithClock(func() time.Time { return now.Add(time.Hour) }).Stamp, "outside its certificate's validity", false},
		{"time-stamped by an untrusted authority", authority, newTSA(t, now).Stamp, "not from a trusted authority", false},
		{"certificate of another CA", stranger, tsa.Stamp, "not issued by a certificate authority of the trust root", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := evidencetest.Push(t, host, "apps/keyless")
			s, chain := workloadCert(t, c.ca, "app")
			if _, err := sign.Sign(context.Background(), d, s, sign.Options{Chain: chain, Timestamper: c.stamper}); err != nil {
				t.Fatal(err)
			}
			set := evidence.Collect(context.Background(), d, trust, sign.Options{})
			if c.rejected {
				if len(set.Signatures) != 0 || len(set.Rejected) != 2 || !errors.Is(set.SignatureErr, sign.ErrNotVerified) ||
					!strings.Contains(set.Rejected[0].Err.Error(), c.want) {
					t.Fatalf("signatures %+v rejected %+v err %v", set.Signatures, set.Rejected, set.SignatureErr)
				}
				return
			}
			if len(set.Signatures) != 2 {
				t.Fatalf("%d signatures (%v), want the tag's and the bundle's", len(set.Signatures), set.SignatureErr)
			}
			for _, sg := range set.Signatures {
				if sg.Identity == nil || sg.Identity.Subject != workflow || sg.Identity.Issuer != "https://token.actions.githubusercontent.com" ||
					sg.Identity.Extensions.SourceRepositoryURI != "https://github.com/acme/app" {
					t.Fatalf("%s signature identity %+v", sg.Source, sg.Identity)
				}
				switch {
				case c.want == "" && (!sg.Trusted() || sg.TimeSource != evidence.TimeFromTimestamp):
					t.Fatalf("%s signature: %v (time %q)", sg.Source, sg.Err, sg.TimeSource)
				case c.want != "" && (sg.Trusted() || !strings.Contains(sg.Err.Error(), c.want)):
					t.Fatalf("%s signature: %v, want %q", sg.Source, sg.Err, c.want)
				}
			}
			if c.want == "" {
				id := set.Signatures[0].Identity
				ok := certidentity.Constraints{Identity: workflow, Issuer: "https://token.actions.githubusercontent.com", Ref: "refs/heads/main"}
				if err := ok.Match(id.Claims()); err != nil {
					t.Fatal(err)
				}
				other := certidentity.Constraints{IdentityRegexp: "^https://github.com/evil/", Issuer: "https://token.actions.githubusercontent.com"}
				if other.Match(id.Claims()) == nil {
					t.Fatal("another identity matched")
				}
			}
		})
	}
}

// TestKeylessAttestation: an attestation signed with a workload
// certificate counts with its identity; one claiming to be a server
// record never does.
func TestKeylessAttestation(t *testing.T) {
	host := evidencetest.Registry(t)
	authority := newCA(t)
	tsa := newTSA(t, time.Now()).WithClock(time.Now)
	trust := rootWithCA(t, authority, tsa)
	ctx := context.Background()
	d := evidencetest.Push(t, host, "apps/keyless-att")
	for _, c := range []struct{ typ, pred string }{
		{attest.PredicateTestResult, `{"result":"PASSED","configuration":[{"name":"qa"}],"passedTests":[],"failedTests":[],"warnedTests":[]}`},
		{evidence.PredicateRevocation, `{"revokedBy":"mallory","reason":"x","at":"2026-01-01T00:00:00Z"}`},
	} {
		s, chain := workloadCert(t, authority, "app")
		stmt, err := attest.StatementFor(d.Context().Name(), d.DigestStr(), c.typ, []byte(c.pred))
		if err != nil {
			t.Fatal(err)
		}
		env, err := attest.Sign(ctx, s, "", stmt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Attach(ctx, d, env, c.typ, sign.Options{Chain: chain, Timestamper: tsa.Stamp}); err != nil {
			t.Fatal(err)
		}
	}
	set := evidence.Collect(ctx, d, trust, sign.Options{})
	var sawTest, sawRecord bool
	for _, a := range set.Attestations {
		switch a.PredicateType {
		case attest.PredicateTestResult:
			sawTest = true
			if !a.Trusted() || a.Identity == nil || a.Identity.Subject != workflow || a.Counts {
				t.Fatalf("test result: %v %+v", a.Err, a.Identity)
			}
		case evidence.PredicateRevocation:
			sawRecord = true
			if a.Trusted() || a.Counts {
				t.Fatalf("a keyless revocation counted: %+v", a)
			}
		}
	}
	if !sawTest || !sawRecord || set.Revoked() != nil {
		t.Fatalf("attestations %+v", set.Attestations)
	}
}

// TestKeylessCertificateIssuedByALeaf: whoever holds a workload
// certificate of a trusted CA (any repository's job) cannot act as a CA
// with it: a certificate it issues naming another workload, chained
// through it, counts for nothing.
func TestKeylessCertificateIssuedByALeaf(t *testing.T) {
	host := evidencetest.Registry(t)
	authority := newCA(t)
	tsa := newTSA(t, time.Now()).WithClock(time.Now)
	trust := rootWithCA(t, authority, tsa)
	evilKey, evilChain := workloadCert(t, authority, "evil")
	_, victim := workloadCert(t, authority, "app")
	forgedKey, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *victim[0]
	tmpl.SerialNumber = big.NewInt(4242)
	tmpl.ExtraExtensions = victim[0].Extensions
	tmpl.Extensions = nil
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, evilChain[0], forgedKey.Public(), evilKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := certidentity.Of(forged); err != nil || id.Subject != workflow {
		t.Fatalf("the forged certificate should name the victim's workflow: %+v %v", id, err)
	}
	d := evidencetest.Push(t, host, "apps/keyless-forged")
	chain := append([]*x509.Certificate{forged}, evilChain...)
	if _, err := sign.Sign(context.Background(), d, forgedKey, sign.Options{Chain: chain, Timestamper: tsa.Stamp}); err != nil {
		t.Fatal(err)
	}
	set := evidence.Collect(context.Background(), d, trust, sign.Options{})
	if len(set.Rejected) != 2 {
		t.Fatalf("rejected %+v, want the tag's and the bundle's signature", set.Rejected)
	}
	for _, r := range set.Rejected {
		if !strings.Contains(r.Err.Error(), "not issued by a certificate authority of the trust root") {
			t.Fatalf("rejected for %v, want: not issued by a trusted CA", r.Err)
		}
	}
	if len(set.TrustedSignatures()) != 0 {
		t.Fatalf("a certificate issued by a workload certificate counted: %+v", set.Signatures)
	}
	for _, sg := range set.Signatures {
		if sg.Trusted() {
			t.Fatalf("%s signature counted: %+v", sg.Source, sg.Identity)
		}
	}
}
