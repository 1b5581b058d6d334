package sourcehttp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/gitcommit/sourcehttp"
)

// TestLoadVerifier: the signer files are read at start, and a malformed
// one is an error naming the setting (the server does not start).
func TestLoadVerifier(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
	v, err := sourcehttp.LoadVerifier(good, "")
	if err != nil || len(v.Signers) != 1 || len(v.Keyring) != 0 {
		t.Fatalf("%v %+v", err, v)
	}
	if v, err := sourcehttp.LoadVerifier("", ""); err != nil || len(v.Signers) != 0 {
		t.Fatalf("none: %v", err)
	}
	for name, c := range map[string][2]string{
		"bad signers": {write("bad", "alice@example.com frobnicate ssh-ed25519 AAAA\n"), ""},
		"no signers":  {filepath.Join(dir, "missing"), ""},
		"bad keyring": {"", write("ring", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnope\n-----END PGP PUBLIC KEY BLOCK-----\n")},
	} {
		if _, err := sourcehttp.LoadVerifier(c[0], c[1]); err == nil || !strings.Contains(err.Error(), "promotion.") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
