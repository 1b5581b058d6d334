package sign_test

import (
	"testing"

	"github.com/custody-dev/custody/internal/sign"
)

func TestIsEvidenceTag(t *testing.T) {
	hex := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for tag, want := range map[string]bool{
		"sha256-" + hex + ".sig":  true,
		"sha256-" + hex + ".att":  true,
		"sha256-" + hex + ".sbom": true,
		"sha256-" + hex:           true,
		"sha512-" + hex + hex:     true,
		"sha256-latest":           false,
		"sha256-":                 false,
		"sha256-.sig":             false,
		"v1.2.3":                  false,
		"latest":                  false,
		"sha256-ABCDEF.sig":       false,
	} {
		if got := sign.IsEvidenceTag(tag); got != want {
			t.Errorf("IsEvidenceTag(%q) = %v, want %v", tag, got, want)
		}
	}
}
