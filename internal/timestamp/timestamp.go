// Package timestamp is custody's RFC 3161 time-stamping: the authority
// (TSA) that answers time-stamp requests with a token signed by its key
// and certificate chain, a client for such an authority, and the check of
// a token against trusted TSA certificate chains.
//
// Encoding and decoding are digitorus/timestamp's, the library
// sigstore/timestamp-authority is built on; tokens are checked with
// sigstore/timestamp-authority's verification package, so custody accepts
// exactly what cosign and sigstore-go accept. What a verified time means
// for a signature is decided in internal/evidence, not here.
package timestamp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	dts "github.com/digitorus/timestamp"
	"github.com/sigstore/timestamp-authority/v2/pkg/verification"

	"github.com/custody-dev/custody/internal/key"
)

// The media types of RFC 3161 over HTTP (RFC 3161 section 3.4).
const (
	QueryMediaType = "application/timestamp-query"
	ReplyMediaType = "application/timestamp-reply"
	// ChainMediaType is the PEM certificate chain served next to the
	// endpoint, as sigstore's timestamp-authority serves it.
	ChainMediaType = "application/pem-certificate-chain"
)

// MaxRequestSize bounds a time-stamp request: a SHA-512 imprint, a
// nonce, a policy and a few extensions fit in far less.
const MaxRequestSize = 16 << 10

// DefaultPolicy is the TSA policy OID custody answers under when none is
// configured (an arc under the private enterprise number of the example
// in RFC 3161; configure your organisation's own OID).
var DefaultPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2, 1}

// DefaultAccuracy is the accuracy a token claims when none is configured.
const DefaultAccuracy = time.Second

// ParsePolicy reads a dotted policy OID such as 1.3.6.1.4.1.57264.2.1.
func ParsePolicy(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("policy %q is not a dotted OID", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("policy %q is not a dotted OID", s)
	}
	return oid, nil
}

// ErrBadRequest marks a time-stamp request custody refuses: the client's
// fault (a 400), never the authority's.
var ErrBadRequest = errors.New("bad time-stamp request")

// Authority answers RFC 3161 time-stamp requests.
type Authority struct {
	signer   crypto.Signer
	chain    []*x509.Certificate
	policy   asn1.ObjectIdentifier
	accuracy time.Duration
	now      func() time.Time
}

// Config configures an Authority.
type Config struct {
	// Signer is the TSA's private key (a file key or a PKCS#11 token).
	Signer crypto.Signer
	// Chain is the TSA certificate chain, leaf first; the leaf must be
	// for Signer's public key, with the critical extended key usage
	// timeStamping and nothing else (RFC 3161 section 2.3).
	Chain []*x509.Certificate
	// Policy is the TSA policy OID of every token; DefaultPolicy when nil.
	Policy asn1.ObjectIdentifier
	// Accuracy is the accuracy every token claims; DefaultAccuracy when
	// zero.
	Accuracy time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// New checks c and returns the authority.
func New(c Config) (*Authority, error) {
	if c.Signer == nil || len(c.Chain) == 0 {
		return nil, errors.New("a time-stamp authority needs a signing key and its certificate chain")
	}
	leaf := c.Chain[0]
	if !publicKeysEqual(leaf.PublicKey, c.Signer.Public()) {
		return nil, errors.New("the TSA certificate is not for the TSA signing key")
	}
	if err := checkLeaf(leaf); err != nil {
		return nil, err
	}
	a := &Authority{signer: c.Signer, chain: c.Chain, policy: c.Policy, accuracy: c.Accuracy, now: c.Now}
	if a.policy == nil {
		a.policy = DefaultPolicy
	}
	if a.accuracy <= 0 {
		a.accuracy = DefaultAccuracy
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// checkLeaf applies RFC 3161's rule for the TSA certificate, as
// sigstore's verifiers do.
func checkLeaf(leaf *x509.Certificate) error {
	critical := false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			critical = e.Critical
		}
	}
	if !critical || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
		return errors.New("the TSA certificate must have exactly the critical extended key usage timeStamping")
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// WithClock returns a copy of a whose clock is now (tests, and a server
// that pins its clock).
func (a *Authority) WithClock(now func() time.Time) *Authority {
	c := *a
	c.now = now
	return &c
}

// Chain returns the TSA certificate chain, leaf first.
func (a *Authority) Chain() []*x509.Certificate { return a.chain }

// ChainPEM returns the chain as PEM CERTIFICATE blocks, leaf first.
func (a *Authority) ChainPEM() []byte { return EncodeChain(a.chain) }

// ParseRequest reads a DER time-stamp request and refuses what custody
// does not answer: oversized or trailing bytes, a hash other than SHA-256,
// SHA-384 or SHA-512, an imprint of the wrong length, a policy other than
// policy (when the request names one) and critical extensions. Errors wrap
// ErrBadRequest.
func ParseRequest(b []byte, policy asn1.ObjectIdentifier) (*dts.Request, error) {
	if len(b) > MaxRequestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadRequest, MaxRequestSize)
	}
	req, err := dts.ParseRequest(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	switch req.HashAlgorithm {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("%w: the message imprint must be SHA-256, SHA-384 or SHA-512", ErrBadRequest)
	}
	if len(req.HashedMessage) != req.HashAlgorithm.Size() {
		return nil, fmt.Errorf("%w: the message imprint is %d bytes, not %d", ErrBadRequest, len(req.HashedMessage), req.HashAlgorithm.Size())
	}
	if len(req.TSAPolicyOID) > 0 && policy != nil && !req.TSAPolicyOID.Equal(policy) {
		return nil, fmt.Errorf("%w: this authority answers only under policy %s, not %s", ErrBadRequest, policy, req.TSAPolicyOID)
	}
	for _, e := range req.Extensions {
		if e.Critical {
			return nil, fmt.Errorf("%w: unknown critical extension %s", ErrBadRequest, e.Id)
		}
	}
	return req, nil
}

// Respond answers a DER time-stamp request with a granted DER time-stamp
// response: the request's imprint and nonce, the configured policy and
// accuracy, the ESS signing-certificate-v2 attribute naming the TSA
// certificate, and the chain when the request asks for certificates.
// Errors wrapping ErrBadRequest are the client's.
func (a *Authority) Respond(reqDER []byte) ([]byte, error) {
	req, err := ParseRequest(reqDER, a.policy)
	if err != nil {
		return nil, err
	}
	return a.respond(req.HashAlgorithm, req.HashedMessage, req.Nonce, req.Certificates)
}

func (a *Authority) respond(h crypto.Hash, imprint []byte, nonce *big.Int, certs bool) ([]byte, error) {
	ts := dts.Timestamp{
		HashAlgorithm:     h,
		HashedMessage:     imprint,
		Time:              a.now().UTC(),
		Accuracy:          a.accuracy,
		Policy:            a.policy,
		Nonce:             nonce,
		AddTSACertificate: certs,
	}
	if certs {
		ts.Certificates = a.chain[1:]
	}
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := a.signer.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	resp, err := ts.CreateResponseWithOpts(a.chain[0], a.signer, opts)
	if err != nil {
		return nil, fmt.Errorf("signing the time-stamp token: %w", err)
	}
	return resp, nil
}

// Stamp returns a time-stamp response over the SHA-256 of data, with the
// chain: the in-process Stamper of a server that is its own authority.
func (a *Authority) Stamp(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return a.respond(crypto.SHA256, sum[:], nil, true)
}

// A Stamper returns an RFC 3161 time-stamp response (DER) over data.
type Stamper func(ctx context.Context, data []byte) ([]byte, error)

// Client returns a Stamper that asks the authority at url (custody's
// /api/v1/timestamp or any RFC 3161 TSA over HTTP), with a nonce that it
// checks the reply echoes.
func Client(url string, hc *http.Client) Stamper {
	if hc == nil {
		hc = http.DefaultClient
	}
	return func(ctx context.Context, data []byte) ([]byte, error) {
		nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		q, err := (&dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Certificates: true, Nonce: nonce}).Marshal()
		if err != nil {
			return nil, err
		}
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(q))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", QueryMediaType)
		resp, err := hc.Do(r)
		if err != nil {
			return nil, fmt.Errorf("time-stamp authority: %w", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("time-stamp authority: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("time-stamp authority %s answered %s", url, resp.Status)
		}
		ts, err := dts.ParseResponse(body)
		if err != nil {
			return nil, fmt.Errorf("time-stamp authority reply: %w", err)
		}
		if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 || !bytes.Equal(ts.HashedMessage, sum[:]) {
			return nil, errors.New("time-stamp authority reply is not for this request (nonce or imprint differs)")
		}
		return body, nil
	}
}

// Verify checks a DER time-stamp response over signed against trusted TSA
// chains: the token's signature by a TSA certificate that chains to one
// of them (checked at the token's time), the ESS signing certificate, the
// imprint over signed, and the token's time inside that authority's
// validFor window. It returns the time the authority vouches for.
func Verify(resp, signed []byte, authorities []key.TrustedTSA) (time.Time, error) {
	if len(authorities) == 0 {
		return time.Time{}, errors.New("no trusted time-stamp authority")
	}
	var errs []error
	for _, ta := range authorities {
		chain, err := ParseChain([]byte(ta.CertChain))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ts, err := verification.VerifyTimestampResponse(resp, bytes.NewReader(signed), verification.VerifyOpts{
			TSACertificate: chain[0],
			Intermediates:  chain[1:max(1, len(chain)-1)],
			Roots:          chain[len(chain)-1:],
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		at := ts.Time
		if at.Before(ta.ValidFor.Start) || (!ta.ValidFor.End.IsZero() && at.After(ta.ValidFor.End)) {
			errs = append(errs, fmt.Errorf("time-stamp of %s is outside its authority's window", at.UTC().Format(time.RFC3339)))
			continue
		}
		return at, nil
	}
	return time.Time{}, fmt.Errorf("time-stamp not from a trusted authority: %w", errors.Join(errs...))
}

// EncodeChain encodes certificates as PEM CERTIFICATE blocks.
func EncodeChain(chain []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// ParseChain reads PEM CERTIFICATE blocks, leaf first.
func ParseChain(b []byte) ([]*x509.Certificate, error) { return key.ParseCertificates(b) }

// NewChain issues a two-certificate chain for a TSA key: a self-signed
// root (its own fresh ECDSA P-256 key, discarded after signing) and the
// TSA leaf for signer's public key, valid from notBefore for validity,
// with the critical extended key usage timeStamping. For sites without a
// PKI of their own; others issue the leaf from their CA.
func NewChain(signer crypto.Signer, commonName string, notBefore time.Time, validity time.Duration) ([]*x509.Certificate, error) {
	rootKey, err := key.Generate(key.ECDSAP256)
	if err != nil {
		return nil, err
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		return n
	}
	notAfter := notBefore.Add(validity)
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName + " root", Organization: []string{"custody"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:    serial(),
		Subject:         pkix.Name{CommonName: commonName, Organization: []string{"custody"}},
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	if _, ok := signer.Public().(*ecdsa.PublicKey); !ok {
		if _, ok := signer.Public().(ed25519.PublicKey); !ok {
			return nil, errors.New("the TSA key must be ECDSA or Ed25519")
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, signer.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, root}, nil
}
