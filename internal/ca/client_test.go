package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequestCertificate: the client's CSR proves possession to the
// handler's parser, and the answer's chain is for the client's key; an
// answer certifying another key, or a refusal, is an error.
func TestRequestCertificate(t *testing.T) {
	c := testCA(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := IdentityOf(map[string]string{"iss": "https://i", "sub": "https://i/workload"})
	if err != nil {
		t.Fatal(err)
	}
	var certifyOther bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/signingCert" {
			http.NotFound(w, r)
			return
		}
		body := make([]byte, MaxRequestBytes)
		n, _ := r.Body.Read(body)
		req, err := ParseRequestV2(body[:n], "")
		if err != nil || req.Token != "tok" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"title": "Bad Request", "detail": "no"})
			return
		}
		pub, err := req.Verify("")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if certifyOther {
			pub = other.Public()
		}
		chain, err := c.Issue(id, pub)
		if err != nil {
			t.Error(err)
		}
		(&Handler{CA: c}).writeV2(w, chain)
	}))
	defer srv.Close()
	chain, err := RequestCertificate(context.Background(), srv.Client(), srv.URL, "tok", k)
	if err != nil || len(chain) != 2 || !chain[0].PublicKey.(*ecdsa.PublicKey).Equal(k.Public()) {
		t.Fatalf("RequestCertificate: %v (%d certificates)", err, len(chain))
	}
	if _, err := RequestCertificate(context.Background(), srv.Client(), srv.URL, "bad", k); err == nil || !strings.Contains(err.Error(), "refused (400)") {
		t.Fatalf("refusal: %v", err)
	}
	certifyOther = true
	if _, err := RequestCertificate(context.Background(), srv.Client(), srv.URL, "tok", k); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("another key: %v", err)
	}
}

// FuzzParseSigningCertAnswer: any answer body parses to a non-empty chain
// or an error, never a panic.
func FuzzParseSigningCertAnswer(f *testing.F) {
	c := testCA(f)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, _ := IdentityOf(map[string]string{"iss": "https://i", "sub": "https://i/w"})
	chain, _ := c.Issue(id, k.Public())
	good, _ := json.Marshal(map[string]any{"signedCertificateEmbeddedSct": map[string]any{"chain": pemChain(chain)}})
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), "Embedded", "Detached", 1)))
	f.Add([]byte(`{"signedCertificateEmbeddedSct":{"chain":{"certificates":[]}}}`))
	f.Add([]byte(`{"signedCertificateEmbeddedSct":{"chain":{"certificates":["-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"]}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseSigningCertAnswer(b)
		if err == nil && len(got) == 0 {
			t.Fatal("an empty chain without an error")
		}
	})
}
