package testserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth/oidctest"
)

// Sigstore is a running custody serve with its private Sigstore on: a
// certificate authority made by `custody ca create`, a key ring with a
// time-stamp authority, optionally the CA's certificate-transparency log
// and the Rekor v2 transparency log, and a loopback OIDC issuer whose
// GitHub Actions tokens (audience sigstore) map acme/* repositories to
// writers of apps/**.
type Sigstore struct {
	*Server
	// Base is the server's http:// URL.
	Base string
	// Issuer is the trusted OIDC issuer (key ID k1).
	Issuer *oidctest.Issuer
	// Dir holds the files below (not the data directory).
	Dir string
	// CACert is the CA's certificate chain file; CTLogPub and RekorPub
	// are the logs' public keys, empty when the log is off.
	CACert, CTLogPub, RekorPub string
	// Env are the passphrases of the CA, the logs and the key ring, as
	// `custody serve` and the `custody ca|rekor|key` commands read them.
	Env []string
}

// SigstoreOptions configure StartSigstore.
type SigstoreOptions struct {
	// CTLog gives the CA a certificate-transparency log, so certificates
	// carry SCTs.
	CTLog bool
	// Rekor runs the transparency log (rekor: with url 127.0.0.1).
	Rekor bool
	// CAExtra is YAML appended inside the ca: section (two-space indent).
	CAExtra string
	// Config is YAML appended at the top level (projects:, say).
	Config string
	// Issuer is the OIDC issuer to trust; a new one when nil.
	Issuer *oidctest.Issuer
}

// StartSigstore creates the CA, the logs and the key ring with the custody
// binary, writes the configuration and starts the server (auth on).
func StartSigstore(t testing.TB, o SigstoreOptions) *Sigstore {
	t.Helper()
	if o.Issuer == nil {
		o.Issuer = oidctest.New(t, "k1")
	}
	s := &Sigstore{Dir: t.TempDir(), Issuer: o.Issuer,
		Env: []string{"CUSTODY_CA_PASSWORD=ca passphrase for tests", "CUSTODY_REKOR_PASSWORD=log passphrase for tests", "CUSTODY_KEY_PASSWORD=ring passphrase for tests"}}
	bin := Binary(t)
	custody := func(args ...string) {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), s.Env...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("custody %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	file := func(name string) string { return filepath.Join(s.Dir, name) }
	data := file("data")
	custody("key", "create", "--keys", filepath.Join(data, "keys"))
	custody("key", "tsa", "create", "--keys", filepath.Join(data, "keys"))
	s.CACert = file("ca.pem")
	custody("ca", "create", "--key", file("ca.key"), "--cert", s.CACert)
	yaml := `auth:
  oidc:
    - issuer: ` + s.Issuer.Server.URL + `
      audience: sigstore
      rules:
        - claims: {repository: "acme/*"}
          subject: "github:{repository}"
          grants:
            - {role: writer, repositories: ["apps/**"]}
ca:
  key: ` + file("ca.key") + `
  certificate: ` + s.CACert + "\n"
	if o.CTLog {
		s.CTLogPub = file("ctlog.pub")
		custody("ca", "ctlog", "create", "--key", file("ctlog.key"), "--public", s.CTLogPub)
		yaml += "  ctlog:\n    key: " + file("ctlog.key") + "\n"
	}
	yaml += o.CAExtra
	if o.Rekor {
		s.RekorPub = file("rekor.pub")
		custody("rekor", "create", "--key", file("rekor.key"), "--pub", s.RekorPub)
		yaml += "rekor:\n  key: " + file("rekor.key") + "\n  url: http://127.0.0.1\n"
	}
	yaml += o.Config
	cfg := file("custody.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Server = Start(t, Options{Auth: true, Data: data, Args: []string{"--config", cfg}, Env: s.Env})
	s.Base = "http://" + s.Host()
	return s
}
