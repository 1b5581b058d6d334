package certidentity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"
)

const (
	workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	issuer   = "https://token.actions.githubusercontent.com"
)

// certFor makes a self-signed certificate with the URI SAN and Fulcio's
// extensions given as OID suffix -> value (DER UTF8String, .1.8 onward).
func certFor(t testing.TB, san string, ext map[int]string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	if san != "" {
		u, err := url.Parse(san)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	for n, v := range ext {
		der, _ := asn1.MarshalWithParams(v, "utf8")
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, n}, Value: der})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOfAndMatch(t *testing.T) {
	der := certFor(t, workflow, map[int]string{8: issuer, 12: "https://github.com/acme/app", 14: "refs/heads/main", 18: workflow})
	c, _ := x509.ParseCertificate(der)
	id, err := Of(c)
	if err != nil || id.Subject != workflow || id.Issuer != issuer {
		t.Fatalf("Of: %+v %v", id, err)
	}
	claims := id.Claims()
	for _, tc := range []struct {
		c  Constraints
		ok bool
	}{
		{Constraints{Identity: workflow, Issuer: issuer}, true},
		{Constraints{IdentityRegexp: "^https://github.com/acme/", IssuerRegexp: "githubusercontent"}, true},
		{Constraints{Identity: workflow, Issuer: issuer, Repository: "https://github.com/acme/app", Ref: "refs/heads/main", Workflow: workflow}, true},
		{Constraints{Identity: workflow + "x", Issuer: issuer}, false},
		{Constraints{Identity: workflow, Issuer: "https://evil.example"}, false},
		{Constraints{IdentityRegexp: "^https://github.com/evil/", Issuer: issuer}, false},
		{Constraints{Identity: workflow, Issuer: issuer, Ref: "refs/heads/dev"}, false},
		{Constraints{Identity: workflow, Issuer: issuer, GitHubWorkflowRepository: "acme/app"}, false}, // .1.5 absent
		{Constraints{Identity: workflow}, false},                                                       // no issuer constraint
		{Constraints{Issuer: issuer}, false},                                                           // no identity constraint
		{Constraints{IdentityRegexp: "(", Issuer: issuer}, false},                                      // does not compile
		{Constraints{Identity: workflow, IdentityRegexp: ".", Issuer: issuer}, false},
	} {
		if err := tc.c.Match(claims); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.c, err, tc.ok)
		}
	}
	// No issuer extension, or no SAN: nobody.
	for _, der := range [][]byte{certFor(t, workflow, nil), certFor(t, "", map[int]string{8: issuer})} {
		c, _ := x509.ParseCertificate(der)
		if _, err := Of(c); err == nil {
			t.Error("a certificate naming nobody was read")
		}
	}
}

// FuzzOf reads arbitrary certificates: never a panic, and an identity
// always has a subject and an issuer that its claims carry.
func FuzzOf(f *testing.F) {
	f.Add(certFor(f, workflow, map[int]string{8: issuer, 12: "https://github.com/acme/app", 14: "refs/heads/main"}))
	f.Add(certFor(f, workflow, map[int]string{1: issuer}))
	f.Add(certFor(f, "", nil))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := Of(c)
		if err != nil {
			return
		}
		cl := id.Claims()
		if id.Subject == "" || id.Issuer == "" || cl["subject"] != id.Subject || cl["issuer"] != id.Issuer {
			t.Fatalf("identity %+v claims %v", id, cl)
		}
		if (Constraints{Identity: id.Subject, Issuer: id.Issuer}).Match(cl) != nil {
			t.Fatal("an identity does not match itself")
		}
	})
}
