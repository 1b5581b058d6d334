// Clients: the real registry clients scripts/install-clients.sh installs
// for the end-to-end and conformance tests.

package testserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Client returns the path of a client binary from CUSTODY_CLIENTS_BIN or
// PATH. When it is not installed the test is skipped, or fails under CI,
// which must not skip client tests.
func Client(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("CUSTODY_CLIENTS_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: run scripts/install-clients.sh (CI must not skip client tests)", name)
	}
	t.Skipf("%s not installed; run scripts/install-clients.sh", name)
	return ""
}
