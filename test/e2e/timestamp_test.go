package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/timestamp"
)

// TestTrustedTime runs the server's time-stamp authority with the real
// clients: cosign v2 and v3 time-stamp their signatures with it
// (--timestamp-server-url), cosign v2 verifies custody's time-stamped
// signature with the TSA chain, and custody judges every one of them at
// the trusted time, including what custody sign made.
func TestTrustedTime(t *testing.T) {
	const password = "e2e-pass"
	data := t.TempDir()
	bin := testserver.Binary(t)
	env := append(os.Environ(), "CUSTODY_KEY_PASSWORD="+password)
	custody := func(args ...string) string {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("custody %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	keys := filepath.Join(data, "keys")
	custody("key", "create", "--keys", keys)
	custody("key", "tsa", "create", "--keys", keys)
	srv := testserver.Start(t, testserver.Options{Data: data, Env: []string{"CUSTODY_KEY_PASSWORD=" + password}})
	h := srv.Host()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	home, work := t.TempDir(), t.TempDir()
	ctx := context.Background()
	tsaURL := "http://" + h + timestamp.Path

	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get("http://" + h + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	tr, err := key.ParseTrustRoot(get("/api/v1/keys"))
	if err != nil || len(tr.TimestampAuthorities) != 1 {
		t.Fatalf("trust root: %v %+v", err, tr)
	}
	chainFile := filepath.Join(work, "tsa-chain.pem")
	if err := os.WriteFile(chainFile, get(timestamp.ChainPath), 0o644); err != nil {
		t.Fatal(err)
	}
	// The cosign key is trusted too, from an hour ago.
	s, priv, pub := keyFiles(t, work, key.ECDSAP256, password)
	pubPEM, _ := os.ReadFile(pub)
	id, _ := key.ID(s.Public())
	tr.Keys = append(tr.Keys, key.TrustedKey{ID: id, Algorithm: key.ECDSAP256, Status: key.Active, PublicKey: string(pubPEM),
		ValidFor: key.Validity{Start: time.Now().Add(-time.Hour)}})
	trust, err := evidence.NewTrust(tr)
	if err != nil {
		t.Fatal(err)
	}
	trFile := filepath.Join(work, "trust-root.json")
	b, _ := json.Marshal(tr)
	if err := os.WriteFile(trFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// judged checks that every signature of d counts, at a time-stamp.
	judged := func(t *testing.T, d name.Digest, want int) {
		t.Helper()
		set := evidence.Collect(ctx, d, trust, sign.Options{})
		if len(set.Signatures) != want {
			t.Fatalf("%d signatures (%v), want %d", len(set.Signatures), set.SignatureErr, want)
		}
		for _, sg := range set.Signatures {
			if !sg.Trusted() || sg.TimeSource != evidence.TimeFromTimestamp {
				t.Fatalf("%s signature: trusted %v (%v) judged at %q time", sg.Source, sg.Trusted(), sg.Err, sg.TimeSource)
			}
		}
	}

	t.Run("cosign v2 time-stamps with custody's authority", func(t *testing.T) {
		cosign := client(t, "cosign")
		d := pushRandom(t, h, "tsa/cosign2")
		mustCosign(t, home, cosign, password, "sign", "--key", priv, "--tlog-upload=false", "--allow-insecure-registry", "--yes",
			"--timestamp-server-url", tsaURL, d.String())
		judged(t, d, 1)
		mustCosign(t, home, cosign, "", "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-insecure-registry",
			"--use-signed-timestamps", "--timestamp-certificate-chain", chainFile, d.String())
	})

	t.Run("cosign v3 time-stamps with custody's authority", func(t *testing.T) {
		cosign := cosign3(t)
		d := pushRandom(t, h, "tsa/cosign3")
		mustCosign(t, home, cosign, password, "sign", "--key", priv, "--tlog-upload=false", "--use-signing-config=false",
			"--allow-insecure-registry", "--yes", "--timestamp-server-url", tsaURL, d.String())
		judged(t, d, 1)
	})

	t.Run("custody sign time-stamps with the registry's authority", func(t *testing.T) {
		d := pushRandom(t, h, "tsa/custody")
		custody("sign", "--keys", keys, d.String())
		ringTrust := filepath.Join(work, "ring-trust.json")
		if err := os.WriteFile(ringTrust, get("/api/v1/keys"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := custody("verify", d.String(), "--trust-root", ringTrust, "-o", "json")
		if strings.Count(out, `"timeSource": "timestamp"`) != 2 {
			t.Fatalf("custody verify did not judge both signatures at the time-stamp:\n%s", out)
		}
		// cosign v2 verifies the .sig signature's time-stamp against the
		// chain (its annotation; with a bundle referrer present cosign v2.6
		// wants the chain in a Sigstore trusted root instead).
		cosign := client(t, "cosign")
		d = pushRandom(t, h, "tsa/custody-tag")
		custody("sign", "--keys", keys, "--storage", "tag", d.String())
		ringPub := filepath.Join(work, "ring.pub")
		if err := os.WriteFile(ringPub, get("/api/v1/keys/"+firstKey(t, ringTrust)), 0o644); err != nil {
			t.Fatal(err)
		}
		mustCosign(t, home, cosign, "", "verify", "--key", ringPub, "--insecure-ignore-tlog=true", "--allow-insecure-registry",
			"--use-signed-timestamps", "--timestamp-certificate-chain", chainFile, d.String())
	})
}

func firstKey(t *testing.T, trustRoot string) string {
	t.Helper()
	b, err := os.ReadFile(trustRoot)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := key.ParseTrustRoot(b)
	if err != nil || len(tr.Keys) == 0 {
		t.Fatalf("trust root: %v", err)
	}
	return tr.Keys[0].ID
}
