package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadOrCreateSigningKey covers the token signing key: created once
// with mode 0600, read back identical, and refused when it is not PEM,
// not PKCS#8 or not Ed25519.
func TestLoadOrCreateSigningKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "token-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v", fi, err)
	}
	k2, err := LoadOrCreateSigningKey(dir)
	if err != nil || !k1.Equal(k2) || len(k1) != ed25519.PrivateKeySize {
		t.Fatalf("reloaded key differs: %v", err)
	}
	for name, content := range map[string]string{
		"not PEM":     "hello",
		"not PKCS#8":  "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n",
		"not Ed25519": ecdsaPEM(t),
	} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "token-key"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateSigningKey(d)
		if err == nil || name != "not PKCS#8" && !strings.Contains(err.Error(), "is "+name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBootstrap covers Bootstrap: without a password file it does nothing;
// on an empty store it creates admin with the admin role on "**" and
// writes its password (mode 0600); with any account it does nothing.
func TestBootstrap(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.st.AuthState(context.Background()); len(st.Users) != 0 {
		t.Fatal("bootstrapped without a password file")
	}
	path := filepath.Join(t.TempDir(), "admin-password")
	f.s.opts.AdminPasswordFile = path
	if err := f.s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", err, fi)
	}
	pass := strings.TrimSpace(string(b))
	p, err := f.s.Authenticate(request("GET", "/v2/", basic("admin", pass)))
	if err != nil || !p.Can("", PermAdmin) || !p.Can("any/repo", PermDelete) || p.Can("", PermBypassGovernance) {
		t.Fatalf("bootstrap admin: %v %+v", err, p)
	}
	// Once an account exists, nothing is created or rewritten.
	os.Remove(path)
	f.now = f.now.Add(time.Hour)
	if err := f.s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("bootstrap ran again")
	}
}

// ecdsaPEM is a valid PKCS#8 key of another kind than Ed25519.
func ecdsaPEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}
