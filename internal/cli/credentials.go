package cli

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Client commands find credentials, in order: the CUSTODY_TOKEN
// environment variable (an API token, or an OIDC token of a trusted
// issuer), then the docker config.json that 'custody login' (or docker,
// crane...) wrote, with its credential helpers.

// envToken is the environment variable holding a token for client commands.
const envToken = "CUSTODY_TOKEN"

// tokenKeychain answers every registry with CUSTODY_TOKEN when it is set.
type tokenKeychain struct{}

func (tokenKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	t := os.Getenv(envToken)
	if t == "" {
		return authn.Anonymous, nil
	}
	// The token flow sends these as Basic credentials to /auth/token;
	// custody accepts the user name "token" with any API or OIDC token.
	return &authn.Basic{Username: "token", Password: t}, nil
}

// keychain is the keychain of the commands that talk OCI (push, pull).
func keychain() authn.Keychain {
	return authn.NewMultiKeychain(tokenKeychain{}, authn.DefaultKeychain)
}

// serverHost returns the host[:port] of a server base URL.
func serverHost(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("invalid server %q (expected a URL such as http://127.0.0.1:5000)", server)
	}
	return u.Host, nil
}

// authorization returns the Authorization header of API requests to
// server ("" when there is no credential for it).
func authorization(server string) (string, error) {
	if t := os.Getenv(envToken); t != "" {
		return "Bearer " + t, nil
	}
	host, err := serverHost(server)
	if err != nil {
		return "", err
	}
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return "", err
	}
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return "", fmt.Errorf("reading credentials for %s: %w", host, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		return "", fmt.Errorf("reading credentials for %s: %w", host, err)
	}
	switch {
	case cfg.RegistryToken != "":
		return "Bearer " + cfg.RegistryToken, nil
	case cfg.Username != "" || cfg.Password != "":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password)), nil
	case cfg.Auth != "":
		return "Basic " + strings.TrimSpace(cfg.Auth), nil
	}
	return "", nil
}
