package attest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/key"
)

// cosignBin finds the cosign client as test/e2e does: $CUSTODY_CLIENTS_BIN,
// then $PATH; under CI a missing client fails the test.
func cosignBin(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CUSTODY_CLIENTS_BIN"); dir != "" {
		if p := filepath.Join(dir, "cosign"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("cosign is not installed: run scripts/install-clients.sh (CI must not skip client tests)")
	}
	t.Skip("cosign not installed; run scripts/install-clients.sh or set CUSTODY_CLIENTS_BIN")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func runCosign(t *testing.T, bin, home string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=", "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func writeFile(t *testing.T, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePub(t *testing.T, dir string, pub crypto.PublicKey) string {
	t.Helper()
	pem, err := key.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(dir, "key.pub"), pem)
}

// TestCosignInterop checks envelopes against the real cosign client, both
// ways: cosign verifies what Sign makes (a blob attestation, and an image
// attestation stored the cosign way in a real registry on loopback), cosign
// refuses custody's own key ID as keyid (the reason Sign refuses it), and
// Verify accepts what `cosign attest-blob` makes.
func TestCosignInterop(t *testing.T) {
	bin := cosignBin(t)
	home, dir := t.TempDir(), t.TempDir()
	blob := []byte("a release artifact\n")
	blobPath := writeFile(t, filepath.Join(dir, "app.tar.gz"), blob)

	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		for _, keyID := range []string{"", "cosign", "custody"} {
			t.Run("blob/"+string(alg)+"/keyid-"+keyID, func(t *testing.T) {
				d := t.TempDir()
				s := newKey(t, alg)
				id := ""
				switch keyID {
				case "cosign":
					id, _ = CosignKeyID(s.Public())
				case "custody":
					id, _ = key.ID(s.Public())
				}
				env, err := Sign(context.Background(), s, id, provStatement(t, blob))
				if err != nil {
					t.Fatal(err)
				}
				pub := writePub(t, d, s.Public())
				sig := writeFile(t, filepath.Join(d, "att.json"), env)
				out, err := runCosign(t, bin, home, "verify-blob-attestation", "--key", pub, "--signature", sig,
					"--type", "slsaprovenance1", "--insecure-ignore-tlog=true", blobPath)
				if err != nil {
					t.Fatalf("cosign refused our envelope: %v\n%s", err, out)
				}
				// Another artifact's digest is refused by cosign too.
				other := writeFile(t, filepath.Join(d, "other"), []byte("other"))
				if out, err := runCosign(t, bin, home, "verify-blob-attestation", "--key", pub, "--signature", sig,
					"--type", "slsaprovenance1", "--insecure-ignore-tlog=true", other); err == nil {
					t.Fatalf("cosign accepted the attestation for another blob:\n%s", out)
				}
			})
		}
	}

	t.Run("cosign attest-blob verifies here", func(t *testing.T) {
		d := t.TempDir()
		if out, err := runCosignIn(t, bin, home, d, "generate-key-pair"); err != nil {
			t.Fatalf("generate-key-pair: %v\n%s", err, out)
		}
		pred := writeFile(t, filepath.Join(d, "pred.json"), []byte(provenanceJSON))
		outSig := filepath.Join(d, "att.sig")
		if out, err := runCosign(t, bin, home, "attest-blob", "--key", filepath.Join(d, "cosign.key"), "--predicate", pred,
			"--type", "slsaprovenance1", "--tlog-upload=false", "--yes", "--output-signature", outSig, blobPath); err != nil {
			t.Fatalf("attest-blob: %v\n%s", err, out)
		}
		raw, err := os.ReadFile(outSig)
		if err != nil {
			t.Fatal(err)
		}
		env := raw
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) { // cosign may base64 the envelope
			if env, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err != nil {
				t.Fatalf("attest-blob output is neither JSON nor base64: %v", err)
			}
		}
		pemPub, err := os.ReadFile(filepath.Join(d, "cosign.pub"))
		if err != nil {
			t.Fatal(err)
		}
		pub, err := key.ParsePublicKey(pemPub)
		if err != nil {
			t.Fatal(err)
		}
		// cosign v2 writes a v0.1 statement: refused by default, accepted on request.
		if _, err := Verify(env, ResolverFromKeys(pub)); err == nil || !strings.Contains(err.Error(), "Statement/v0.1") {
			t.Fatalf("Verify without AllowStatementV01: %v", err)
		}
		v, err := Verify(env, ResolverFromKeys(pub), WantPredicateType(PredicateSLSAProvenanceV1), AllowStatementV01())
		if err != nil {
			t.Fatalf("Verify refused cosign's envelope: %v\n%s", err, env)
		}
		if err := VerifySubject(v, digestOf(blob)); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(env, ResolverFromKeys(newKey(t, key.ECDSAP256).Public()), AllowStatementV01()); err == nil {
			t.Fatal("cosign's envelope verified with an unrelated key")
		}
	})

	t.Run("image attestation stored the cosign way", func(t *testing.T) {
		d := t.TempDir()
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		t.Cleanup(srv.Close)
		host := strings.TrimPrefix(srv.URL, "http://")
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := name.ParseReference(host+"/acme/app:v1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		dg, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ref := host + "/acme/app@" + dg.String()
		s := newKey(t, key.ECDSAP256)
		stmt, err := StatementFor(host+"/acme/app", dg.String(), PredicateSLSAProvenanceV1, []byte(provenanceJSON))
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := key.ID(s.Public())
		env, err := Sign(context.Background(), s, kid, stmt)
		if err != nil {
			t.Fatal(err)
		}
		att := writeFile(t, filepath.Join(d, "att.json"), env)
		if out, err := runCosign(t, bin, home, "attach", "attestation", "--allow-insecure-registry", "--attestation", att, ref); err != nil {
			t.Fatalf("attach attestation: %v\n%s", err, out)
		}
		pub := writePub(t, d, s.Public())
		out, err := runCosign(t, bin, home, "verify-attestation", "--key", pub, "--type", "slsaprovenance1",
			"--insecure-ignore-tlog=true", "--allow-insecure-registry", ref)
		if err != nil {
			t.Fatalf("cosign verify-attestation refused our envelope: %v\n%s", err, out)
		}
		// cosign prints the envelope(s) it verified; ours must be there.
		if !strings.Contains(out, `"payloadType":"application/vnd.in-toto+json"`) {
			t.Fatalf("verify-attestation output lacks the envelope:\n%s", out)
		}
		wrong := writePub(t, t.TempDir(), newKey(t, key.ECDSAP256).Public())
		if out, err := runCosign(t, bin, home, "verify-attestation", "--key", wrong, "--type", "slsaprovenance1",
			"--insecure-ignore-tlog=true", "--allow-insecure-registry", ref); err == nil {
			t.Fatalf("verify-attestation with an unrelated key succeeded:\n%s", out)
		}
		if out, err := runCosign(t, bin, home, "verify-attestation", "--key", pub, "--type", "spdxjson",
			"--insecure-ignore-tlog=true", "--allow-insecure-registry", ref); err == nil {
			t.Fatalf("verify-attestation --type spdxjson accepted a provenance attestation:\n%s", out)
		}
	})
}

func runCosignIn(t *testing.T, bin, home, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "COSIGN_PASSWORD=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
