package key

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// MaxKMSURIBytes caps the length of a KMS key URI.
const MaxKMSURIBytes = 2048

// The KMS providers, named by their URI schemes as sigstore's KMS packages
// (github.com/sigstore/sigstore/pkg/signature/kms/...) and cosign name them.
const (
	KMSAWS        = "awskms"
	KMSGCP        = "gcpkms"
	KMSAzure      = "azurekms"
	KMSHashiVault = "hashivault"
)

// ErrKMSURI reports a malformed KMS key URI.
var ErrKMSURI = errors.New("invalid KMS key URI")

// ErrKMSUnavailable reports a KMS provider this build of custody cannot
// reach.
var ErrKMSUnavailable = errors.New("KMS provider not available")

// KMSURI is a parsed KMS key reference in sigstore's (and cosign's) forms:
//
//	awskms://[ENDPOINT]/KEY       KEY: a key ID, alias/NAME or an arn:aws:kms:... ARN
//	gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]
//	azurekms://VAULT_HOST/KEY     e.g. azurekms://custody.vault.azure.net/signing
//	hashivault://KEY              the Vault transit key; the server comes from VAULT_ADDR
type KMSURI struct {
	// Provider is one of KMSAWS, KMSGCP, KMSAzure, KMSHashiVault.
	Provider string
	// Endpoint is the AWS endpoint (host:port, may be empty) or the Azure
	// vault host; empty for the others.
	Endpoint string
	// Key is the key's name within the provider: the AWS key ID, alias or
	// ARN, the GCP resource name (projects/...), the Azure key name or the
	// Vault transit key name.
	Key string
}

var (
	awsKeyRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mrk-[0-9a-fA-F]{32}|alias/[a-zA-Z0-9/_-]+|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key/[0-9a-zA-Z-]+|alias/[a-zA-Z0-9/_-]+))$`)
	})
	gcpKeyRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+(?:/cryptoKeyVersions/[^/]+)?$`)
	})
	azureKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`) })
	hostRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9.-]+(?::\d{1,5})?$`) })
	vaultKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w-]+$`) })
)

// IsKMSURI reports whether s starts with one of the KMS URI schemes.
func IsKMSURI(s string) bool {
	for _, p := range []string{KMSAWS, KMSGCP, KMSAzure, KMSHashiVault} {
		if strings.HasPrefix(s, p+"://") {
			return true
		}
	}
	return false
}

// ParseKMSURI parses and checks a KMS key URI (see KMSURI).
func ParseKMSURI(s string) (*KMSURI, error) {
	if len(s) > MaxKMSURIBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrKMSURI, len(s), MaxKMSURIBytes)
	}
	provider, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, fmt.Errorf("%w: %q has no scheme: use awskms://, gcpkms://, azurekms:// or hashivault://", ErrKMSURI, s)
	}
	switch provider {
	case KMSAWS:
		endpoint, k, ok := strings.Cut(rest, "/")
		if !ok || !awsKeyRE().MatchString(k) || (endpoint != "" && !hostRE().MatchString(endpoint)) {
			return nil, fmt.Errorf("%w: %q: want awskms://[ENDPOINT]/KEY with KEY a key ID, alias/NAME or key ARN", ErrKMSURI, s)
		}
		return &KMSURI{Provider: provider, Endpoint: endpoint, Key: k}, nil
	case KMSGCP:
		if !gcpKeyRE().MatchString(rest) {
			return nil, fmt.Errorf("%w: %q: want gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]", ErrKMSURI, s)
		}
		return &KMSURI{Provider: provider, Key: rest}, nil
	case KMSAzure:
		host, k, ok := strings.Cut(rest, "/")
		if !ok || !hostRE().MatchString(host) || !azureKeyRE().MatchString(k) {
			return nil, fmt.Errorf("%w: %q: want azurekms://VAULT_HOST/KEY, e.g. azurekms://custody.vault.azure.net/signing", ErrKMSURI, s)
		}
		return &KMSURI{Provider: provider, Endpoint: host, Key: k}, nil
	case KMSHashiVault:
		if !vaultKeyRE().MatchString(rest) {
			return nil, fmt.Errorf("%w: %q: want hashivault://KEY, the name of a Vault transit key (letters, digits, _ and -)", ErrKMSURI, s)
		}
		return &KMSURI{Provider: provider, Key: rest}, nil
	}
	return nil, fmt.Errorf("%w: unknown scheme %q: use awskms://, gcpkms://, azurekms:// or hashivault://", ErrKMSURI, provider)
}

// String returns the URI.
func (u *KMSURI) String() string {
	switch u.Provider {
	case KMSAWS, KMSAzure:
		return u.Provider + "://" + u.Endpoint + "/" + u.Key
	}
	return u.Provider + "://" + u.Key
}

// OpenKMS opens a signer for a key held by a cloud KMS or HashiCorp Vault,
// named by a KMS URI (see KMSURI).
//
// No provider is compiled into this build: sigstore's KMS providers
// (github.com/sigstore/sigstore v1.11.3, the version custody may use)
// require Go 1.27 and custody builds with Go 1.26. OpenKMS therefore checks
// the URI (ErrKMSURI) and then fails with ErrKMSUnavailable, saying what
// to use instead; keys in a hardware security module work through PKCS #11
// (OpenPKCS11), which several cloud HSMs also offer.
func OpenKMS(ctx context.Context, uri string) (crypto.Signer, error) {
	u, err := ParseKMSURI(uri)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %s keys (%s) need sigstore's %s provider, which this build of custody does not include "+
		"(sigstore/sigstore v1.11.3 requires Go 1.27): use a key on a PKCS #11 token (--key 'pkcs11:...'; "+
		"AWS CloudHSM and Google Cloud KMS (kmsp11) ship PKCS #11 libraries) or a key of the key ring",
		ErrKMSUnavailable, u.Provider, u.String(), u.Provider)
}
