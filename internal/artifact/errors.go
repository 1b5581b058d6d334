package artifact

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// explain wraps a registry error with what went wrong and what to do about
// it. op names the operation ("push", "pull"), or is empty when the caller
// already said what it was doing; ref is the reference involved. The
// original error stays reachable with errors.Is/As.
func explain(op string, ref name.Reference, err error) error {
	if err == nil {
		return nil
	}
	reg := ref.Context().RegistryStr()
	prefix := ""
	if op != "" {
		prefix = op + " " + ref.String() + ": "
	}

	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case terr.StatusCode == http.StatusUnauthorized || hasCode(terr, transport.UnauthorizedErrorCode):
			return fmt.Errorf("%sregistry %s requires authentication (or rejected the credentials): log in with 'docker login %s' and retry: %w", prefix, reg, reg, err)
		case terr.StatusCode == http.StatusForbidden || hasCode(terr, transport.DeniedErrorCode):
			return fmt.Errorf("%saccess denied by registry %s: check that your account has access to this repository: %w", prefix, reg, err)
		case hasCode(terr, transport.ManifestUnknownErrorCode), hasCode(terr, transport.NameUnknownErrorCode),
			terr.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%snot found in registry %s: check the repository name and tag: %w", prefix, reg, err)
		}
		return fmt.Errorf("%sregistry %s answered with an error: %w", prefix, reg, err)
	}

	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("%scannot resolve registry host %s: check the registry name in the reference: %w", prefix, reg, err)
	}
	var certErr *tls.CertificateVerificationError
	var uaErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &uaErr) || errors.As(err, &hostErr) {
		return fmt.Errorf("%scannot verify the TLS certificate of registry %s: install its CA certificate, or use --insecure to skip verification: %w", prefix, reg, err)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%sregistry %s speaks plain HTTP: rerun with --plain-http: %w", prefix, reg, err)
	}
	var opErr *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &opErr) && opErr.Op == "dial") {
		return fmt.Errorf("%scannot reach registry %s: is 'custody serve' running there? (%w)", prefix, reg, err)
	}
	return fmt.Errorf("%s%w", prefix, err)
}

// hasCode reports whether terr carries the given registry error code.
func hasCode(terr *transport.Error, code transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}
