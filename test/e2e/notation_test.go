package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	gocose "github.com/veraison/go-cose"

	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/testserver"
)

// TestNotationSignatures checks custody against the real notation CLI,
// with both envelope formats: what `notation sign` signs, custody verify
// accepts under a Notation trust policy and trust store; what `custody sign
// --format notation` signs, `notation verify` accepts; and custody verify
// rejects a signature by a certificate the policy does not trust, an
// envelope whose payload was changed after signing, and a valid signature
// moved to another digest, changing nothing in the registry.
func TestNotationSignatures(t *testing.T) {
	notation := client(t, "notation")
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	home, work := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	pw := srv.AdminPassword()
	ropt := remote.WithAuth(&authn.Basic{Username: "admin", Password: pw})
	runWith(t, env, "", crane, "auth", "login", h, "-u", "admin", "-p", pw)
	push := func(tag string) string {
		dir := t.TempDir()
		runWith(t, env, "", crane, "append", "--insecure", "-f", layerTar(t, dir, 4<<10), "-t", h+"/notary/app:"+tag)
		return h + "/notary/app@" + strings.TrimSpace(runWith(t, env, "", crane, "digest", "--insecure", h+"/notary/app:"+tag))
	}

	runWith(t, env, "", notation, "cert", "generate-test", "--default", "custody.test")
	runWith(t, env, "", notation, "cert", "generate-test", "other.test")
	runWith(t, env, pw+"\n", notation, "login", "--insecure-registry", "-u", "admin", "--password-stdin", h)
	notationDir := filepath.Join(home, ".config", "notation")
	store := filepath.Join(notationDir, "truststore")
	n := 0
	policy := func(trustStore, identity string) string {
		n++
		p := filepath.Join(work, strconv.Itoa(n)+"-"+trustStore+".json")
		doc := `{"version":"1.0","trustPolicies":[{"name":"custody","registryScopes":["*"],` +
			`"signatureVerification":{"level":"strict"},"trustStores":["ca:` + trustStore + `"],"trustedIdentities":["` + identity + `"]}]}`
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trustCustody, trustOther := policy("custody.test", "*"), policy("other.test", "*")
	verify := func(ref, pol string, extra ...string) (string, error) {
		return custodyCmd(t, home, "", nil, append([]string{"verify", ref, "--notation-trust-policy", pol, "--notation-trust-store", store, "--require", "notation"}, extra...)...)
	}
	referrers := func(ref string) int {
		d, err := name.NewDigest(ref)
		if err != nil {
			t.Fatal(err)
		}
		st, err := notary.Read(context.Background(), d, ropt)
		if err != nil {
			t.Fatal(err)
		}
		return len(st)
	}

	for _, format := range []string{"jws", "cose"} {
		t.Run(format, func(t *testing.T) {
			// notation sign -> custody verify.
			byNotation := push(format + "-notation")
			runWith(t, env, "", notation, "sign", "--insecure-registry", "--signature-format", format, byNotation)
			out, err := verify(byNotation, trustCustody)
			if err != nil || !strings.Contains(out, "ok   notation signature ("+format+`) by "CN=custody.test`) || !strings.Contains(out, "verified") {
				t.Fatalf("custody verify of notation's %s signature: %v\n%s", format, err, out)
			}
			// A trustedIdentities entry pins the signer: an identity
			// the certificate does not have is refused.
			if out, err := verify(byNotation, policy("custody.test", "x509.subject: CN=someone.else,O=Notary,L=Seattle,ST=WA,C=US")); err == nil {
				t.Fatalf("custody verify with another trusted identity passed:\n%s", out)
			}

			// custody sign --format notation -> notation verify.
			byCustody := push(format + "-custody")
			key := filepath.Join(notationDir, "localkeys", "other.test.key")
			crt := filepath.Join(notationDir, "localkeys", "other.test.crt")
			out = mustCustody(t, home, "", nil, "sign", "--format", "notation", "--envelope", format, "--notation-key", key, "--notation-cert", crt, byCustody)
			if !strings.Contains(out, "CN=other.test") {
				t.Fatalf("custody sign --format notation:\n%s", out)
			}
			runWith(t, env, "", notation, "policy", "import", "--force", trustOther)
			if out := runWith(t, env, "", notation, "verify", "--insecure-registry", byCustody); !strings.Contains(out, "Successfully verified") {
				t.Fatalf("notation verify of custody's %s signature:\n%s", format, out)
			}
			if out := runWith(t, env, "", notation, "inspect", "--insecure-registry", byCustody); !strings.Contains(out, envelopeMediaType(format)) {
				t.Fatalf("notation inspect: want a %s envelope:\n%s", format, out)
			}
			if out, err := verify(byCustody, trustOther); err != nil {
				t.Fatalf("custody verify of its own %s signature: %v\n%s", format, err, out)
			}

			// An untrusted certificate: custody's signature is by
			// other.test, the policy trusts only custody.test.
			out, err = verify(byCustody, trustCustody)
			if err == nil || !strings.Contains(out, "FAIL notation signature") || !strings.Contains(out, "does not contain any trusted certificate") {
				t.Fatalf("custody verify of a signature by an untrusted certificate: %v\n%s", err, out)
			}

			// A valid signature moved to another digest.
			moved := push(format + "-moved")
			d, _ := name.NewDigest(byCustody)
			st, err := notary.Read(context.Background(), d, ropt)
			if err != nil || len(st) != 1 {
				t.Fatalf("reading custody's signature: %v %d", err, len(st))
			}
			md, _ := name.NewDigest(moved)
			if _, err := notary.Attach(context.Background(), md, st[0].MediaType, st[0].Envelope, ropt); err != nil {
				t.Fatal(err)
			}
			out, err = verify(moved, trustOther)
			if err == nil || !strings.Contains(out, "FAIL notation signature") || !strings.Contains(out, "content descriptor mismatch") {
				t.Fatalf("custody verify of a signature moved to another digest: %v\n%s", err, out)
			}
			if failsWith(t, env, "", notation, "verify", "--insecure-registry", moved) == "" {
				t.Fatal("notation verify of the moved signature gave no reason")
			}

			// A payload changed after signing to name the other digest.
			tampered := push(format + "-tampered")
			td, _ := name.NewDigest(tampered)
			desc, err := remote.Head(td, ropt)
			if err != nil {
				t.Fatal(err)
			}
			env2 := retarget(t, format, st[0].Envelope, desc.Digest.String(), desc.Size)
			if _, err := notary.Attach(context.Background(), td, st[0].MediaType, env2, ropt); err != nil {
				t.Fatal(err)
			}
			before := referrers(tampered)
			out, err = verify(tampered, trustOther)
			if err == nil || !strings.Contains(out, "FAIL notation signature") || !strings.Contains(out, "signature is invalid") {
				t.Fatalf("custody verify of a tampered %s payload: %v\n%s", format, err, out)
			}
			if got := referrers(tampered); got != before {
				t.Fatalf("verification changed the referrers: %d, was %d", got, before)
			}
		})
	}
}

func envelopeMediaType(format string) string {
	if format == "cose" {
		return notary.MediaTypeCOSE
	}
	return notary.MediaTypeJWS
}

// retarget rewrites the target artifact in a signed envelope's payload,
// keeping the signature: a tampered envelope.
func retarget(t *testing.T, format string, env []byte, dgst string, size int64) []byte {
	t.Helper()
	edit := func(payload []byte) []byte {
		var p map[string]map[string]any
		if err := json.Unmarshal(payload, &p); err != nil {
			t.Fatal(err)
		}
		p["targetArtifact"]["digest"] = dgst
		p["targetArtifact"]["size"] = json.Number(strconv.FormatInt(size, 10))
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if format == "jws" {
		var e map[string]any
		if err := json.Unmarshal(env, &e); err != nil {
			t.Fatal(err)
		}
		payload, err := base64.RawURLEncoding.DecodeString(e["payload"].(string))
		if err != nil {
			t.Fatal(err)
		}
		e["payload"] = base64.RawURLEncoding.EncodeToString(edit(payload))
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var m gocose.Sign1Message
	if err := m.UnmarshalCBOR(env); err != nil {
		t.Fatal(err)
	}
	m.Payload = edit(m.Payload)
	b, err := m.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b, env) {
		t.Fatal("envelope unchanged")
	}
	return b
}

// TestNotationGate runs a promotion gate over Notation signatures: the
// ready-made notation_signed rule needs one verified under the server's
// Notation trust policy (promotion.notation), and a custom rule pins the
// signer's identity. The deploy-time check (custody verify --env, the
// admission webhook's decision) reads the same evidence.
func TestNotationGate(t *testing.T) {
	notation := client(t, "notation")
	home, work, data := t.TempDir(), t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	runWith(t, env, "", notation, "cert", "generate-test", "custody.test")
	runWith(t, env, "", notation, "cert", "generate-test", "other.test")
	notationDir := filepath.Join(home, ".config", "notation")
	store := filepath.Join(notationDir, "truststore")
	pol := filepath.Join(work, "trustpolicy.json")
	doc := `{"version":"1.0","trustPolicies":[{"name":"apps","registryScopes":["*"],"signatureVerification":{"level":"strict"},` +
		`"trustStores":["ca:custody.test","ca:other.test"],"trustedIdentities":["*"]}]}`
	if err := os.WriteFile(pol, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	conf := "projects:\n  - repositories: \"apps/**\"\n    environments:\n      - name: dev\n        gate:\n          rules:\n" +
		"            - use: notation_signed\n" +
		"            - name: release-signer\n              expr: \"notation.exists(s, s.identity.startsWith('CN=custody.test,'))\"\n              message: signed by the release certificate\n" +
		"promotion:\n  notation:\n    trustPolicy: " + strconv.Quote(pol) + "\n    trustStore: " + strconv.Quote(store) + "\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	crane := client(t, "crane")
	runWith(t, env, "", crane, "auth", "login", h, "-u", "admin", "-p", srv.AdminPassword())
	push := func(tag string) string {
		runWith(t, env, "", crane, "append", "--insecure", "-f", layerTar(t, t.TempDir(), 4<<10), "-t", h+"/apps/web:"+tag)
		return h + "/apps/web@" + strings.TrimSpace(runWith(t, env, "", crane, "digest", "--insecure", h+"/apps/web:"+tag))
	}
	signAs := func(ref, cert string) {
		mustCustody(t, home, "", nil, "sign", "--format", "notation", "--envelope", "cose",
			"--notation-key", filepath.Join(notationDir, "localkeys", cert+".key"), "--notation-cert", filepath.Join(notationDir, "localkeys", cert+".crt"), ref)
	}
	current := func() string {
		var st struct{ Current string }
		if err := json.Unmarshal([]byte(mustCustody(t, home, "", nil, "env", "dev", "apps/web", "-o", "json", server)), &st); err != nil {
			t.Fatal(err)
		}
		return st.Current
	}

	unsigned := push("unsigned")
	if out, err := custodyCmd(t, home, "", nil, "promote", unsigned, "--to", "dev", server); err == nil || !strings.Contains(out, "FAIL notation_signed") {
		t.Fatalf("an artifact with no Notation signature passed: %v\n%s", err, out)
	}
	other := push("other")
	signAs(other, "other.test")
	if out, err := custodyCmd(t, home, "", nil, "promote", other, "--to", "dev", server); err == nil || !strings.Contains(out, "FAIL release-signer") || strings.Contains(out, "FAIL notation_signed") {
		t.Fatalf("a Notation signature by another trusted identity passed the identity rule: %v\n%s", err, out)
	}
	if got := current(); got != "" {
		t.Fatalf("dev runs %q after refused promotions", got)
	}
	release := push("release")
	signAs(release, "custody.test")
	mustCustody(t, home, "", nil, "policy", "test", release, "--env", "dev", server)
	mustCustody(t, home, "", nil, "promote", release, "--to", "dev", server)
	if got := current(); !strings.HasSuffix(release, "@"+got) {
		t.Fatalf("dev runs %q after promoting %s", got, release)
	}
	out := mustCustody(t, home, "", nil, "verify", release, "--env", "dev", server, "--notation-trust-policy", pol, "--notation-trust-store", store)
	if !strings.Contains(out, "verified") {
		t.Fatalf("custody verify --env:\n%s", out)
	}
}
