package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/key"
)

// runKey runs a custody command and returns its stdout, failing on error.
func runKey(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runKeyErr(t, args...)
	if err != "" {
		t.Fatalf("custody %s: %s", strings.Join(args, " "), err)
	}
	return out
}

// runKeyErr runs a custody command and returns its stdout and, when it
// fails, its stderr.
func runKeyErr(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if Main(args, &out, &errb) != 0 {
		return out.String(), errb.String()
	}
	return out.String(), ""
}

func TestKeyCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	t.Setenv(keyPasswordEnv, "correct horse")

	runKey(t, "key", "create", "--keys", dir, "--name", "release")
	if _, msg := runKeyErr(t, "key", "create", "--keys", dir); !strings.Contains(msg, "custody key rotate") {
		t.Fatalf("second create: %q, want a pointer to 'custody key rotate'", msg)
	}

	var keys []key.Info
	if err := json.Unmarshal([]byte(runKey(t, "key", "list", "--keys", dir, "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Status != key.Active || keys[0].Algorithm != key.ECDSAP256 || keys[0].Name != "release" {
		t.Fatalf("list = %+v", keys)
	}
	first := keys[0]
	st, err := os.Stat(filepath.Join(dir, first.File))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}

	pubPEM := runKey(t, "key", "export-public", "--keys", dir)
	pub, err := key.ParsePublicKey([]byte(pubPEM))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := key.ID(pub); id != first.ID {
		t.Fatalf("exported key %s, want %s", id, first.ID)
	}

	// A key loaded from the ring signs what the exported key verifies.
	ring, err := key.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Signer(first, []byte("wrong")); err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	s, err := ring.Signer(first, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("artifact"))
	sig, err := key.SignDigest(s, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := key.VerifyDigest(pub, d[:], sig); err != nil {
		t.Fatal(err)
	}

	out := runKey(t, "key", "rotate", "--keys", dir, "--algorithm", "ed25519")
	if !strings.Contains(out, "retired key "+first.ID+" (valid ") {
		t.Fatalf("rotate output: %s", out)
	}
	text := runKey(t, "key", "list", "--keys", dir)
	if !strings.Contains(text, first.ID[:16]) || !strings.Contains(text, "retired") || !strings.Contains(text, "ed25519") {
		t.Fatalf("list after rotate:\n%s", text)
	}
	keys = nil
	if err := json.Unmarshal([]byte(runKey(t, "key", "list", "--keys", dir, "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Status != key.Retired || keys[0].NotAfter.IsZero() || keys[1].Status != key.Active {
		t.Fatalf("list after rotate = %+v", keys)
	}

	// The retired key stays exportable by ID (prefix) and in the trust root.
	if got := runKey(t, "key", "export-public", "--keys", dir, first.ID[:12]); got != pubPEM {
		t.Fatalf("export-public %s = %q, want %q", first.ID[:12], got, pubPEM)
	}
	tr, err := key.ParseTrustRoot([]byte(runKey(t, "key", "export-public", "--keys", dir, "--trust-root")))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Keys) != 2 || tr.Keys[0].ID != first.ID || !tr.Keys[0].ValidFor.End.Equal(keys[0].NotAfter) {
		t.Fatalf("trust root = %+v", tr)
	}
	if _, msg := runKeyErr(t, "key", "export-public", "--keys", dir, "ffffffffff"); !strings.Contains(msg, "custody key list") {
		t.Fatalf("unknown key: %q", msg)
	}
}

func TestKeyCreateRefusesEmptyPassphrase(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(keyPasswordEnv, "")
	if _, msg := runKeyErr(t, "key", "create", "--keys", dir); !strings.Contains(msg, "--no-passphrase-unsafe") {
		t.Fatalf("empty passphrase: %q", msg)
	}
	if _, msg := runKeyErr(t, "key", "create", "--keys", dir, "--algorithm", "rsa"); !strings.Contains(msg, "ecdsa-p256") {
		t.Fatalf("bad algorithm: %q", msg)
	}
	runKey(t, "key", "create", "--keys", dir, "--no-passphrase-unsafe")
}

// cosignBin returns the cosign binary: from $CUSTODY_CLIENTS_BIN (set by
// scripts/test.sh), .cache/bin or $PATH; the test skips without it, except
// under CI, where it fails.
func cosignBin(t *testing.T) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("CUSTODY_CLIENTS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.Join("..", "..", ".cache", "bin"))
	for _, d := range dirs {
		p := filepath.Join(d, "cosign")
		if _, err := os.Stat(p); err == nil {
			abs, err := filepath.Abs(p)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("cosign is not installed: run scripts/install-clients.sh (CI must not skip client tests)")
	}
	t.Skip("cosign not installed; run scripts/install-clients.sh")
	return ""
}

// TestKeyWithCosign checks that cosign takes a custody key as its own.
func TestKeyWithCosign(t *testing.T) {
	bin := cosignBin(t)
	const pass = "correct horse"
	t.Setenv(keyPasswordEnv, pass)
	cosign := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+pass, "HOME="+t.TempDir())
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			work := t.TempDir()
			dir := filepath.Join(work, "keys")
			runKey(t, "key", "create", "--keys", dir, "--algorithm", string(alg))
			ring, err := key.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			info, err := ring.Active()
			if err != nil {
				t.Fatal(err)
			}
			priv := ring.Path(info.File)
			pubFile := filepath.Join(work, "custody.pub")
			pubPEM := runKey(t, "key", "export-public", "--keys", dir)
			if err := os.WriteFile(pubFile, []byte(pubPEM), 0o644); err != nil {
				t.Fatal(err)
			}

			// cosign decrypts the key and derives the same public key.
			if got := cosign(t, "public-key", "--key", priv); got != pubPEM {
				t.Fatalf("cosign public-key = %q, want %q", got, pubPEM)
			}
			if alg == key.Ed25519 {
				// cosign v2.6.5's sign-blob panics ("requested hash
				// function #0 is unavailable") with an Ed25519 key and
				// --tlog-upload=false: it then signs pure Ed25519 and asks
				// for a hash of the payload anyway, whatever the key file.
				return
			}
			blob := filepath.Join(work, "blob.txt")
			sig := filepath.Join(work, "blob.sig")
			if err := os.WriteFile(blob, []byte("custody artifact\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cosign(t, "sign-blob", "--key", priv, "--tlog-upload=false", "--yes", "--output-signature", sig, blob)
			cosign(t, "verify-blob", "--key", pubFile, "--insecure-ignore-tlog", "--signature", sig, blob)
		})
	}
}
