package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
)

// TestNotationTrustConfig checks promotion.notation: nothing configured
// verifies nothing, half a configuration or a bad policy stops the server
// from starting, and the scope host defaults to the first
// admission.registries entry.
func TestNotationTrustConfig(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "truststore")
	if err := os.MkdirAll(filepath.Join(store, "x509", "ca", "acme"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	for p, doc := range map[string]string{
		good: `{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:acme"],"trustedIdentities":["*"]}]}`,
		bad:  `{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"lenient"},"trustStores":["ca:acme"],"trustedIdentities":["*"]}]}`,
	} {
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg config.Config
	if v, _, err := notationTrust(cfg); v != nil || err != nil {
		t.Fatalf("unconfigured: %v %v", v, err)
	}
	cfg.Promotion.Notation.TrustPolicy = good
	if _, _, err := notationTrust(cfg); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("policy without store: %v", err)
	}
	cfg.Promotion.Notation.TrustStore = store
	cfg.Admission.Registries = []string{"registry.example.org", "other.example.org"}
	if v, host, err := notationTrust(cfg); v == nil || err != nil || host != "registry.example.org" {
		t.Fatalf("configured: %v %q %v", v, host, err)
	}
	cfg.Promotion.Notation.Registry = "r.example"
	if _, host, _ := notationTrust(cfg); host != "r.example" {
		t.Fatalf("registry: %q", host)
	}
	cfg.Promotion.Notation.TrustPolicy = bad
	if _, _, err := notationTrust(cfg); err == nil || !strings.Contains(err.Error(), "promotion.notation") {
		t.Fatalf("bad policy: %v", err)
	}
}
