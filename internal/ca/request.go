package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MaxRequestBytes bounds a certificate request's body.
const MaxRequestBytes = 64 << 10

// Request is a parsed certificate request: the OIDC token, and either a
// public key with a signature over the token's subject, or a certificate
// signing request (whose own signature proves possession).
type Request struct {
	Token     string
	PublicKey crypto.PublicKey
	// Proof is the signature over the token's subject (with PublicKey).
	Proof []byte
	// CSR, when set, is the request's certificate signing request.
	CSR *x509.CertificateRequest
}

// v2Request is Fulcio's /api/v2/signingCert body (protobuf JSON).
type v2Request struct {
	Credentials *struct {
		OIDCIdentityToken string `json:"oidcIdentityToken"`
	} `json:"credentials"`
	PublicKeyRequest *struct {
		PublicKey *struct {
			Algorithm string `json:"algorithm"`
			Content   string `json:"content"`
		} `json:"publicKey"`
		ProofOfPossession string `json:"proofOfPossession"`
	} `json:"publicKeyRequest"`
	CertificateSigningRequest string `json:"certificateSigningRequest"`
}

// v1Request is Fulcio's legacy /api/v1/signingCert body (cosign v2 sends
// it, with the token as a bearer token).
type v1Request struct {
	PublicKey *struct {
		Content   []byte `json:"content"`
		Algorithm string `json:"algorithm"`
	} `json:"publicKey"`
	SignedEmailAddress        []byte `json:"signedEmailAddress"`
	CertificateSigningRequest []byte `json:"certificateSigningRequest"`
}

// ParseRequestV2 reads a /api/v2/signingCert body; bearer is the token of
// an Authorization header, used when the body carries none.
func ParseRequestV2(body []byte, bearer string) (*Request, error) {
	var v v2Request
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("malformed certificate request: %v", err)
	}
	r := &Request{Token: bearer}
	if v.Credentials != nil && v.Credentials.OIDCIdentityToken != "" {
		r.Token = v.Credentials.OIDCIdentityToken
	}
	switch {
	case v.PublicKeyRequest != nil && v.CertificateSigningRequest != "":
		return nil, errors.New("the request has both a public key and a certificate signing request")
	case v.CertificateSigningRequest != "":
		csr, err := decodeBase64(v.CertificateSigningRequest)
		if err != nil {
			return nil, errors.New("certificateSigningRequest is not base64")
		}
		if r.CSR, err = parseCSR(csr); err != nil {
			return nil, err
		}
	case v.PublicKeyRequest != nil && v.PublicKeyRequest.PublicKey != nil:
		pub, err := parsePublicKey([]byte(v.PublicKeyRequest.PublicKey.Content))
		if err != nil {
			return nil, err
		}
		r.PublicKey = pub
		if r.Proof, err = decodeBase64(v.PublicKeyRequest.ProofOfPossession); err != nil || len(r.Proof) == 0 {
			return nil, errors.New("proofOfPossession is missing or not base64")
		}
	default:
		return nil, errors.New("the request has neither publicKeyRequest nor certificateSigningRequest")
	}
	if r.Token == "" {
		return nil, errors.New("the request carries no OIDC identity token")
	}
	return r, nil
}

// ParseRequestV1 reads a legacy /api/v1/signingCert body.
func ParseRequestV1(body []byte, bearer string) (*Request, error) {
	var v v1Request
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("malformed certificate request: %v", err)
	}
	r := &Request{Token: bearer}
	switch {
	case len(v.CertificateSigningRequest) > 0 && v.PublicKey != nil && len(v.PublicKey.Content) > 0:
		return nil, errors.New("the request has both a public key and a certificate signing request")
	case len(v.CertificateSigningRequest) > 0:
		csr, err := parseCSR(v.CertificateSigningRequest)
		if err != nil {
			return nil, err
		}
		r.CSR = csr
	case v.PublicKey != nil && len(v.PublicKey.Content) > 0:
		pub, err := parsePublicKey(v.PublicKey.Content)
		if err != nil {
			return nil, err
		}
		r.PublicKey = pub
		if len(v.SignedEmailAddress) == 0 {
			return nil, errors.New("signedEmailAddress (the proof of possession) is missing")
		}
		r.Proof = v.SignedEmailAddress
	default:
		return nil, errors.New("the request has neither publicKey nor certificateSigningRequest")
	}
	if r.Token == "" {
		return nil, errors.New("the request carries no OIDC identity token (Authorization: Bearer)")
	}
	return r, nil
}

func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

// parsePublicKey reads a PEM "PUBLIC KEY" or PKIX DER public key of a
// supported kind.
func parsePublicKey(b []byte) (crypto.PublicKey, error) {
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
		}
		b = block.Bytes
	}
	pub, err := x509.ParsePKIXPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("malformed public key: %v", err)
	}
	return pub, checkKey(pub)
}

func parseCSR(b []byte) (*x509.CertificateRequest, error) {
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("PEM block %q is not a certificate request", block.Type)
		}
		b = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(b)
	if err != nil {
		return nil, fmt.Errorf("malformed certificate signing request: %v", err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkKey accepts the key kinds Fulcio certifies: ECDSA P-256, P-384,
// P-521, Ed25519, RSA of 2048 to 4096 bits.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n >= 2048 && n <= 4096 {
			return nil
		}
		return fmt.Errorf("RSA keys must have 2048 to 4096 bits")
	}
	return fmt.Errorf("unsupported public key type: use ECDSA (P-256, P-384, P-521), Ed25519 or RSA")
}

// Verify checks the proof of possession: the CSR's signature, or the
// signature over subject (the token's email or sub, as cosign signs it)
// by the public key, and returns the key to certify.
func (r *Request) Verify(subject string) (crypto.PublicKey, error) {
	if r.CSR != nil {
		if err := r.CSR.CheckSignature(); err != nil {
			return nil, errors.New("the certificate signing request's signature does not verify: no proof of possession")
		}
		return r.CSR.PublicKey, nil
	}
	if !verifyMessage(r.PublicKey, []byte(subject), r.Proof) {
		return nil, fmt.Errorf("the proof of possession is not a signature of the token's subject %q by the public key", subject)
	}
	return r.PublicKey, nil
}

// verifyMessage verifies a signature over msg as sigstore's signers make
// it: ECDSA (ASN.1) over the curve's hash (SHA-256 for P-256, SHA-384,
// SHA-512), Ed25519 over the message, RSA PKCS #1 v1.5 over SHA-256.
func verifyMessage(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var d []byte
		switch k.Curve {
		case elliptic.P384():
			s := sha512.Sum384(msg)
			d = s[:]
		case elliptic.P521():
			s := sha512.Sum512(msg)
			d = s[:]
		default:
			s := sha256.Sum256(msg)
			d = s[:]
		}
		return ecdsa.VerifyASN1(k, d, sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *rsa.PublicKey:
		s := sha256.Sum256(msg)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, s[:], sig) == nil
	}
	return false
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(h string) string {
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}
