//go:build cgo

package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/key"
)

// testTokenURI returns the PKCS #11 URI of the SoftHSM2 test token
// (scripts/softhsm.sh sets CUSTODY_TEST_PKCS11_URI) naming a new key label,
// and the token's PIN. Without the token the test is skipped, or fails
// under CI.
func testTokenURI(t *testing.T, label string) (*key.PKCS11URI, string) {
	t.Helper()
	base := os.Getenv("CUSTODY_TEST_PKCS11_URI")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CUSTODY_TEST_PKCS11_URI is not set under CI: scripts/softhsm.sh must set up the SoftHSM2 token (scripts/test.sh does)")
		}
		t.Skip("CUSTODY_TEST_PKCS11_URI is not set; run `eval \"$(bash scripts/softhsm.sh start)\"` to test PKCS #11 keys")
	}
	u, err := key.ParsePKCS11URI(base)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	u.Object = label + "-" + hex.EncodeToString(suffix)
	pin := u.PINValue
	u.PINValue = ""
	return u, pin
}

// TestKeyOnPKCS11Token creates the ring's key on a SoftHSM2 token, signs
// an artifact with it through the ring and through --key URI, and verifies
// the signatures against the exported trust root.
func TestKeyOnPKCS11Token(t *testing.T) {
	u, pin := testTokenURI(t, "cli")
	t.Setenv(pkcs11PINEnv, pin)
	t.Setenv(keyPasswordEnv, "unused")
	dir := filepath.Join(t.TempDir(), "keys")

	out := runKey(t, "key", "create", "--keys", dir, "--algorithm", "ed25519", "--name", "hsm", "--pkcs11", u.String())
	if !strings.Contains(out, "on a PKCS #11 token") || !strings.Contains(out, "object="+u.Object) || strings.Contains(out, pin) {
		t.Fatalf("create output: %s", out)
	}
	var keys []key.Info
	if err := json.Unmarshal([]byte(runKey(t, "key", "list", "--keys", dir, "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].URI == "" || keys[0].File != "" || keys[0].Algorithm != key.Ed25519 || keys[0].Status != key.Active {
		t.Fatalf("list = %+v", keys)
	}
	if strings.Contains(keys[0].URI, "pin-value") {
		t.Fatalf("the ring recorded the PIN: %s", keys[0].URI)
	}
	trustRoot := filepath.Join(t.TempDir(), "trust-root.json")
	if err := os.WriteFile(trustRoot, []byte(runKey(t, "key", "export-public", "--keys", dir, "--trust-root")), 0o644); err != nil {
		t.Fatal(err)
	}

	host := startRegistry(t)
	files := makeFiles(t, map[string][]byte{"app.bin": []byte("the artifact")})
	for i, keyArg := range []string{"", u.String()} {
		ref := host + "/cli/pkcs11:v" + string(rune('1'+i))
		if code, _, errOut := run(t, "push", files[0], ref); code != 0 {
			t.Fatalf("push: %s", errOut)
		}
		args := []string{"sign", "--keys", dir, "-o", "json"}
		if keyArg != "" {
			args = append(args, "--key", keyArg)
		}
		code, out, errOut := run(t, append(args, ref)...)
		if code != 0 {
			t.Fatalf("sign %v: %s", args, errOut)
		}
		var res struct{ KeyID string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.KeyID != keys[0].ID {
			t.Fatalf("signed with %q (%v), want the token key %s", res.KeyID, err, keys[0].ID)
		}
		if code, out, errOut := run(t, "verify", ref, "--trust-root", trustRoot); code != 0 {
			t.Fatalf("verify %s: %s%s", ref, out, errOut)
		}
	}

	// cosign verifies a cosign v2 signature made on the token.
	if bin := cosignBinIfInstalled(t); bin != "" {
		// Another artifact: cosign v2.6 wants a trusted root once a bundle
		// referrer exists, as for the digest signed above.
		other := makeFiles(t, map[string][]byte{"app.bin": []byte("another artifact")})
		ref := host + "/cli/pkcs11:cosign"
		if code, _, errOut := run(t, "push", other[0], ref); code != 0 {
			t.Fatalf("push: %s", errOut)
		}
		code, out, errOut := run(t, "sign", "--keys", dir, "--storage", "tag", "-o", "json", ref)
		if code != 0 {
			t.Fatalf("sign --storage tag: %s", errOut)
		}
		var res struct{ Digest string }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		pub := filepath.Join(t.TempDir(), "token.pub")
		if err := os.WriteFile(pub, []byte(runKey(t, "key", "export-public", "--keys", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry", res.Digest)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign verify of a token signature: %v\n%s", err, b)
		}
	}

	// Without a PIN (no URI PIN, no env, no terminal) signing fails clearly.
	t.Setenv(pkcs11PINEnv, "")
	ref := host + "/cli/pkcs11:v1"
	if code, _, errOut := run(t, "sign", "--keys", dir, ref); code == 0 || !strings.Contains(errOut, pkcs11PINEnv) {
		t.Fatalf("sign without a PIN: exit %d, %s", code, errOut)
	}
	t.Setenv(pkcs11PINEnv, "0000")
	if code, _, errOut := run(t, "sign", "--keys", dir, ref); code == 0 || !strings.Contains(errOut, "PIN") {
		t.Fatalf("sign with a wrong PIN: exit %d, %s", code, errOut)
	}
}

func TestSignKeyKMSURI(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	code, _, errOut := run(t, "sign", "--key", "hashivault://custody-signing", "127.0.0.1:1/repo:tag")
	if code == 0 || !strings.Contains(errOut, "KMS provider not available") || !strings.Contains(errOut, "pkcs11:") {
		t.Fatalf("sign --key hashivault://: exit %d, %s", code, errOut)
	}
	code, _, errOut = run(t, "sign", "--key", "awskms:///not a key", "127.0.0.1:1/repo:tag")
	if code == 0 || !strings.Contains(errOut, "invalid KMS key URI") {
		t.Fatalf("sign --key awskms:// with a bad key: exit %d, %s", code, errOut)
	}
}

// cosignBinIfInstalled is cosignBin, returning "" (outside CI) instead of
// skipping the whole test when cosign is missing.
func cosignBinIfInstalled(t *testing.T) (bin string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		return cosignBin(t)
	}
	// cosignBin would skip the whole test when cosign is missing: look
	// first.
	for _, d := range []string{os.Getenv("CUSTODY_CLIENTS_BIN"), filepath.Join("..", "..", ".cache", "bin")} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "cosign")); err == nil {
			return cosignBin(t)
		}
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	t.Log("cosign not installed: not checking the token signature with cosign (scripts/install-clients.sh installs it)")
	return ""
}
