package cli

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/certidentity"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/trustedroot"
)

// keylessFlags choose keyless signing: an ephemeral key certified by a
// certificate authority for the workload's OIDC identity token.
type keylessFlags struct {
	on        bool
	token     string
	fulcioURL string
}

// sigstoreTokenEnv is where cosign (and GitLab CI's id_tokens, by
// convention) put the workload's identity token.
const sigstoreTokenEnv = "SIGSTORE_ID_TOKEN"

func (k *keylessFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&k.on, "keyless", false, "sign with an ephemeral key and a short-lived certificate from the certificate authority "+
		"for the workload's OIDC token (--identity-token), time-stamped by the time-stamp authority")
	fs.StringVar(&k.token, "identity-token", "", "keyless: the OIDC identity token, or a file holding it (default: "+sigstoreTokenEnv+
		", else in GitHub Actions a token for audience sigstore from ACTIONS_ID_TOKEN_REQUEST_URL)")
	fs.StringVar(&k.fulcioURL, "fulcio-url", "", "keyless: the certificate authority (custody's, or a Fulcio) (default: the registry of REF)")
}

// identityToken finds the workload's OIDC token: --identity-token (a
// token or a file), SIGSTORE_ID_TOKEN, or GitHub Actions' token service.
func (k *keylessFlags) identityToken(cmd *cobra.Command) (string, error) {
	if t := strings.TrimSpace(k.token); t != "" {
		if strings.Count(t, ".") == 2 && !strings.ContainsAny(t, "/ ") {
			return t, nil
		}
		b, err := readCapped(t, 64<<10)
		if err != nil {
			return "", fmt.Errorf("--identity-token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := strings.TrimSpace(os.Getenv(sigstoreTokenEnv)); t != "" {
		return t, nil
	}
	if u, bearer := os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN"); u != "" && bearer != "" {
		return githubActionsToken(cmd, u, bearer)
	}
	return "", errors.New("--keyless needs the workload's OIDC token: --identity-token TOKEN|FILE, " + sigstoreTokenEnv +
		", or GitHub Actions with 'permissions: id-token: write'")
}

// githubActionsToken asks GitHub Actions' token service for an ID token
// with audience sigstore, as cosign does.
func githubActionsToken(cmd *cobra.Command, reqURL, bearer string) (string, error) {
	u, err := url.Parse(reqURL)
	if err != nil {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL: %w", err)
	}
	q := u.Query()
	q.Set("audience", "sigstore")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("GitHub Actions token service: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	var v struct {
		Value string `json:"value"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil || v.Value == "" {
		return "", fmt.Errorf("GitHub Actions token service answered %d: give the job 'permissions: id-token: write'", resp.StatusCode)
	}
	return v.Value, nil
}

// signer makes an ephemeral ECDSA P-256 key and has the certificate
// authority (--fulcio-url, default the registry of d) certify it for the
// workload's token. The key lives only in memory for this one signing.
func (k *keylessFlags) signer(cmd *cobra.Command, d name.Digest) (crypto.Signer, []*x509.Certificate, error) {
	tok, err := k.identityToken(cmd)
	if err != nil {
		return nil, nil, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	hc := &http.Client{Transport: registryTransport, Timeout: 30 * time.Second}
	chain, err := ca.RequestCertificate(cmd.Context(), hc, k.base(d), tok, priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, chain, nil
}

// base is the server keyless signing asks: --fulcio-url, else the
// registry of d.
func (k *keylessFlags) base(d name.Digest) string {
	if k.fulcioURL != "" {
		return k.fulcioURL
	}
	return d.Context().Registry.Scheme() + "://" + d.RegistryStr()
}

// logged is where a keyless signature was logged: url is "" when the
// server has no transparency log.
type logged struct {
	url   string
	index int64
}

func (l *logged) String() string {
	if l.url == "" {
		return "not logged (the server has no transparency log)"
	}
	return fmt.Sprintf("log index %d (%s)", l.index, l.url)
}

// transparencyLog finds the transparency log the server's signing
// configuration names and returns the hook that logs a signature made
// with chain's certificate there (nil when the server has none), and
// where it logged.
func (k *keylessFlags) transparencyLog(cmd *cobra.Command, d name.Digest, chain []*x509.Certificate) (func(context.Context, []byte, []byte, crypto.PublicKey) ([]byte, error), *logged, error) {
	hc := &http.Client{Transport: registryTransport, Timeout: 30 * time.Second}
	at := &logged{}
	u, err := rekor.DiscoverLog(cmd.Context(), hc, strings.TrimSuffix(k.base(d), "/")+trustedroot.SigningConfigPath)
	if err != nil || u == "" {
		return nil, at, err
	}
	return func(ctx context.Context, signed, sig []byte, _ crypto.PublicKey) ([]byte, error) {
		tle, idx, err := rekor.AddEntry(ctx, hc, u, signed, sig, chain[0])
		if err != nil {
			return nil, err
		}
		at.url, at.index = u, idx
		return tle, nil
	}, at, nil
}

// describeCertificate names the signer a keyless certificate certifies.
func describeCertificate(chain []*x509.Certificate) string {
	id, err := certidentity.Of(chain[0])
	if err != nil {
		return "an unreadable identity"
	}
	return fmt.Sprintf("%s (issuer %s, certificate valid until %s)", id.Subject, id.Issuer, chain[0].NotAfter.UTC().Format(time.RFC3339))
}
