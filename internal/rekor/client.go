package rekor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/root"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxAnswerBytes caps what the client reads from a log or a signing
// configuration.
const maxAnswerBytes = 1 << 20

// DiscoverLog reads a server's Sigstore signing configuration
// (signingConfigURL, custody's /api/v1/trust/signing_config.json) and
// returns the base URL of the Rekor v2 log it names, or "" when it names
// none (a server without a transparency log, or one that is not custody).
func DiscoverLog(ctx context.Context, hc *http.Client, signingConfigURL string) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, signingConfigURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", nil // not reachable as custody: no log
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", signingConfigURL, err)
	}
	sc, err := root.NewSigningConfigFromJSON(b)
	if err != nil {
		return "", fmt.Errorf("the signing configuration at %s: %w", signingConfigURL, err)
	}
	for _, s := range sc.RekorLogURLs() {
		if s.MajorAPIVersion == 2 {
			return s.URL, nil
		}
	}
	return "", nil
}

// AddEntry logs a signature in the Rekor v2 log at base (POST
// EntriesPath): a hashedrekord v0.0.2 entry of the SHA-256 of signed, sig,
// and the signer's certificate, as sigstore-go logs a keyless bundle's
// signature. It returns the TransparencyLogEntry (protojson, for a
// bundle's tlogEntries) and its log index. The entry is not verified
// here: verifiers (internal/evidence, cosign) check its inclusion.
func AddEntry(ctx context.Context, hc *http.Client, base string, signed, sig []byte, cert *x509.Certificate) ([]byte, int64, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if cert == nil {
		return nil, 0, errors.New("no certificate to log the signature with")
	}
	details := v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
	d := sha256.Sum256(signed)
	body, err := protojson.Marshal(&pb.CreateEntryRequest{Spec: &pb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &pb.HashedRekordRequestV002{Digest: d[:], Signature: &pb.Signature{Content: sig, Verifier: &pb.Verifier{
			Verifier:   &pb.Verifier_X509Certificate{X509Certificate: &v1.X509Certificate{RawBytes: cert.Raw}},
			KeyDetails: details,
		}}},
	}})
	if err != nil {
		return nil, 0, err
	}
	url := strings.TrimSuffix(base, "/") + EntriesPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("logging at %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the answer of %s: %w", url, err)
	}
	if len(b) > maxAnswerBytes {
		return nil, 0, fmt.Errorf("the answer of %s is over %d bytes", url, maxAnswerBytes)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var p struct{ Title, Detail string }
		_ = json.Unmarshal(b, &p)
		why := strings.TrimSpace(p.Title + ": " + p.Detail)
		if why == ":" {
			why = http.StatusText(resp.StatusCode)
		}
		return nil, 0, fmt.Errorf("the transparency log at %s refused (%d): %s", url, resp.StatusCode, why)
	}
	var tle pbs.TransparencyLogEntry
	if err := protojson.Unmarshal(b, &tle); err != nil {
		return nil, 0, fmt.Errorf("the answer of %s: %w", url, err)
	}
	if tle.GetInclusionProof() == nil {
		return nil, 0, fmt.Errorf("the answer of %s has no inclusion proof", url)
	}
	return b, tle.GetLogIndex(), nil
}
