package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAnswerBytes bounds a certificate authority's answer.
const maxAnswerBytes = 1 << 20

// RequestCertificate asks the certificate authority at base (custody's,
// or any Fulcio: POST base/api/v2/signingCert) to certify signer's public
// key for the workload whose OIDC identity token is token. The proof of
// possession is a certificate signing request signed by signer. It
// returns the chain, leaf first, after checking that the leaf certifies
// signer's key; trusting the chain is the verifier's business.
func RequestCertificate(ctx context.Context, hc *http.Client, base, token string, signer crypto.Signer) ([]*x509.Certificate, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, signer)
	if err != nil {
		return nil, fmt.Errorf("certificate signing request: %w", err)
	}
	body, err := json.Marshal(map[string]any{
		"credentials":               map[string]string{"oidcIdentityToken": token},
		"certificateSigningRequest": base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	})
	if err != nil {
		return nil, err
	}
	url := strings.TrimSuffix(base, "/") + "/api/v2/signingCert"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking %s for a certificate: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the certificate from %s: %w", url, err)
	}
	if len(b) > maxAnswerBytes {
		return nil, fmt.Errorf("the answer of %s is over %d bytes", url, maxAnswerBytes)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var p struct{ Title, Detail, Message string }
		_ = json.Unmarshal(b, &p)
		why := strings.TrimSpace(p.Title + ": " + p.Detail + p.Message)
		if why == ":" {
			why = http.StatusText(resp.StatusCode)
		}
		return nil, fmt.Errorf("the certificate authority at %s refused (%d): %s", url, resp.StatusCode, why)
	}
	chain, err := ParseSigningCertAnswer(b)
	if err != nil {
		return nil, fmt.Errorf("the answer of %s: %w", url, err)
	}
	if eq, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(signer.Public()) {
		return nil, errors.New("the certificate authority certified another key")
	}
	return chain, nil
}

// ParseSigningCertAnswer reads Fulcio's v2 answer: the PEM chain in
// signedCertificateEmbeddedSct or signedCertificateDetachedSct, leaf
// first.
func ParseSigningCertAnswer(b []byte) ([]*x509.Certificate, error) {
	var a struct {
		Embedded *struct {
			Chain chainJSON `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
		Detached *struct {
			Chain chainJSON `json:"chain"`
		} `json:"signedCertificateDetachedSct"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("not a signingCert answer: %w", err)
	}
	var pems []string
	switch {
	case a.Embedded != nil:
		pems = a.Embedded.Chain.Certificates
	case a.Detached != nil:
		pems = a.Detached.Chain.Certificates
	}
	if len(pems) == 0 {
		return nil, errors.New("the answer holds no certificate chain")
	}
	chain, err := ParseChain([]byte(strings.Join(pems, "")))
	if err != nil {
		return nil, err
	}
	return chain, nil
}
