//go:build !cgo

package key

import (
	"crypto"
	"fmt"
	"io"
)

// OpenPKCS11 opens the private key a PKCS #11 URI names. This binary was
// built without cgo, so it always fails with ErrPKCS11Unavailable (after
// checking the URI).
func OpenPKCS11(uri string) (crypto.Signer, io.Closer, error) {
	if _, err := ParsePKCS11URI(uri); err != nil {
		return nil, nil, err
	}
	return nil, nil, errNoCgo()
}

// GeneratePKCS11 creates a key pair on a PKCS #11 token. This binary was
// built without cgo, so it always fails with ErrPKCS11Unavailable (after
// checking the URI).
func GeneratePKCS11(uri string, alg Algorithm) (crypto.Signer, error) {
	if _, err := ParsePKCS11URI(uri); err != nil {
		return nil, err
	}
	return nil, errNoCgo()
}

func errNoCgo() error {
	return fmt.Errorf("%w: custody was built without cgo (CGO_ENABLED=0), and PKCS #11 modules are C libraries: build it with CGO_ENABLED=1 and a C compiler", ErrPKCS11Unavailable)
}
