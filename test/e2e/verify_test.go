package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// githubEnv is a GitHub Actions job's environment, as custody attest
// provenance --from-env reads it.
var githubEnv = []string{
	"GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/app", "GITHUB_REF=refs/heads/main",
	"GITHUB_SHA=6f8e2c1d3b4a59687766554433221100ffeeddcc", "GITHUB_RUN_ID=11893210123", "GITHUB_RUN_ATTEMPT=1",
	"GITHUB_SERVER_URL=https://github.com", "GITHUB_WORKFLOW_REF=acme/app/.github/workflows/release.yml@refs/heads/main",
	"RUNNER_ENVIRONMENT=github-hosted", "GITHUB_EVENT_NAME=push",
}

const (
	wantBuilder = "https://github.com/actions/runner/github-hosted"
	wantSource  = "https://github.com/acme/app"
)

// TestSignAttestVerify is the CI-style flow: push an image, sign it,
// attach provenance and an SBOM, and custody verify passes; then each
// tamper case fails verification.
func TestSignAttestVerify(t *testing.T) {
	crane := client(t, "crane")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	h := srv.Host()
	home, work, keys := t.TempDir(), t.TempDir(), t.TempDir()
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	pass := []string{"CUSTODY_KEY_PASSWORD=key-passphrase-1"}
	mustCustody(t, home, "", pass, "key", "create", "--keys", keys)
	trust := filepath.Join(work, "trust-root.json")
	if err := os.WriteFile(trust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", keys)), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(work, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "go.sum"), []byte("golang.org/x/text v0.14.0 h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sbom := filepath.Join(work, "sbom.spdx.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app","documentNamespace":"https://example.org/app","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: test"]},"packages":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	adminAuth := remote.WithAuth(&authn.Basic{Username: "admin", Password: srv.AdminPassword()})
	image := func(repo string, tag ...string) string {
		tg := "v1"
		if len(tag) > 0 {
			tg = tag[0]
		}
		layer := layerTar(t, t.TempDir(), 4096)
		run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/"+repo+":"+tg)
		return h + "/" + repo + "@" + strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/"+repo+":"+tg))
	}
	signAndAttest := func(ref string) {
		mustCustody(t, home, "", pass, "sign", "--keys", keys, ref)
		mustCustody(t, home, "", append(pass, githubEnv...), "attest", "provenance", "--from-env", "--workspace", ws, "--keys", keys, ref)
		mustCustody(t, home, "", pass, "attest", "sbom", "--keys", keys, ref)
	}
	verify := func(ref string) (VerifyReportView, error) {
		out, err := custodyCmd(t, home, "", nil, "verify", ref, "--trust-root", trust, "--require", "sbom,provenance",
			"--builder", wantBuilder, "--source", wantSource, "-o", "json")
		var rep VerifyReportView
		if i := strings.Index(out, "{"); i >= 0 {
			_ = json.NewDecoder(strings.NewReader(out[i:])).Decode(&rep)
		}
		return rep, err
	}

	// The good path.
	good := image("apps/good")
	signAndAttest(good)
	rep, err := verify(good)
	if err != nil || !rep.OK || len(rep.Signatures) != 2 || len(rep.Attestations) < 2 {
		t.Fatalf("verify of a signed, attested image: %v %+v", err, rep)
	}
	text := mustCustody(t, home, "", nil, "verify", good, "--trust-root", trust, "--require", "sbom,provenance")
	if !strings.Contains(text, "verified") || !strings.Contains(text, attest.PredicateSLSAProvenanceV1) {
		t.Fatalf("text report: %s", text)
	}
	// custody sbom of the image, and an uploaded SBOM that describes
	// another artifact is refused before anything is signed.
	gen := filepath.Join(work, "gen.spdx.json")
	mustCustody(t, home, "", nil, "sbom", good, "-o", gen)
	if b, err := os.ReadFile(gen); err != nil || !strings.Contains(string(b), `"spdxVersion": "SPDX-2.3"`) && !strings.Contains(string(b), `"spdxVersion":"SPDX-2.3"`) {
		t.Fatalf("custody sbom: %v %.200s", err, b)
	}
	if out, err := custodyCmd(t, home, "", pass, "attest", "sbom", "--sbom", sbom, "--keys", keys, good); err == nil || !strings.Contains(out, "refused") {
		t.Fatalf("SBOM describing nothing was attached: %v %s", err, out)
	}
	// A wrong builder or source constraint fails.
	if out, err := custodyCmd(t, home, "", nil, "verify", good, "--trust-root", trust, "--builder", "https://evil.example/builder"); err == nil {
		t.Fatalf("wrong --builder passed:\n%s", out)
	}

	ctx := context.Background()
	gd, _ := name.NewDigest(good)
	o := sign.Options{Remote: []remote.Option{adminAuth}}
	expect := func(name, ref, why string) {
		t.Helper()
		rep, err := verify(ref)
		if err == nil || rep.OK {
			t.Fatalf("%s: verify passed: %+v", name, rep)
		}
		if !strings.Contains(strings.Join(rep.Failures, "\n"), why) {
			t.Fatalf("%s: failures do not say %q: %q", name, why, rep.Failures)
		}
	}

	// 1. Re-signed: an attacker's key signs (and attests) another image.
	attacker := t.TempDir()
	_, atKey, _ := keyFiles(t, attacker, key.ECDSAP256, "x")
	resigned := image("apps/resigned")
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=x"}, "sign", "--key", atKey, resigned)
	mustCustody(t, home, "", append([]string{"CUSTODY_KEY_PASSWORD=x"}, githubEnv...), "attest", "provenance", "--from-env", "--workspace", ws, "--key", atKey, resigned)
	expect("re-signed", resigned, "signature")

	// 2. A signature moved to another digest (both storage places).
	moved := image("apps/good", "moved") // referrers move within a repository
	md, _ := name.NewDigest(moved)
	moveTag(t, gd, md, sign.SignatureSuffix, adminAuth)
	moveReferrers(t, gd, md, adminAuth)
	expect("moved signature", moved, "signature")

	// 3. Provenance for another digest attached to this one.
	other := image("apps/other")
	od, _ := name.NewDigest(other)
	mustCustody(t, home, "", pass, "sign", "--keys", keys, other)
	// sign.Attach refuses a statement about another digest, so move the
	// attestations of the good image over (the cosign v2 .att tag).
	moveTag(t, gd, od, sign.AttestationSuffix, adminAuth)
	expect("provenance for another digest", other, "attestation")

	// 4. An expired key: rotated out, then used to sign claiming a time
	// after its validity ended. And a revoked key: not in the trust root.
	ring, err := key.Open(keys)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", pass, "key", "rotate", "--keys", keys)
	tr2 := filepath.Join(work, "trust-root-2.json")
	if err := os.WriteFile(tr2, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", keys)), 0o644); err != nil {
		t.Fatal(err)
	}
	oldSigner, err := ring.Signer(old, []byte("key-passphrase-1"))
	if err != nil {
		t.Fatal(err)
	}
	expired := image("apps/expired")
	ed, _ := name.NewDigest(expired)
	oe := o
	oe.Annotations = map[string]string{"dev.custody.signed-at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	if _, err := sign.Sign(ctx, ed, oldSigner, oe); err != nil {
		t.Fatal(err)
	}
	if out, err := custodyCmd(t, home, "", nil, "verify", expired, "--trust-root", tr2); err == nil || !strings.Contains(out, "not valid at") {
		t.Fatalf("signature by an expired key passed: %v\n%s", err, out)
	}
	// What the old key signed while valid still verifies with the new root.
	if out, err := custodyCmd(t, home, "", nil, "verify", good, "--trust-root", tr2, "--require", "sbom,provenance"); err != nil {
		t.Fatalf("rotation broke an old signature: %v\n%s", err, out)
	}

	// 5. An attestation with an unknown predicate type.
	unknown := image("apps/unknown")
	signAndAttest(unknown)
	mustCustody(t, home, "", pass, "attest", "predicate", "--type", "https://example.com/unknown/v1", "--predicate", sbom, "--keys", keys, unknown)
	// The ring's active key is the new one now: use the new trust root.
	if out, err := custodyCmd(t, home, "", nil, "verify", unknown, "--trust-root", tr2); err == nil || !strings.Contains(out, "unknown predicate type") {
		t.Fatalf("unknown predicate passed: %v\n%s", err, out)
	}

	// 6. A DSSE envelope whose payloadType is not in-toto's, signed by a
	// trusted key.
	mismatch := image("apps/mismatch")
	mustCustody(t, home, "", pass, "sign", "--keys", keys, mismatch)
	mmd, _ := name.NewDigest(mismatch)
	newSigner, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ring.Signer(newSigner, []byte("key-passphrase-1"))
	if err != nil {
		t.Fatal(err)
	}
	stmt := attestation(t, ns, mmd, attest.PredicateSLSAProvenanceV1)
	var e dsse.Envelope
	if err := json.Unmarshal(stmt, &e); err != nil {
		t.Fatal(err)
	}
	payload, _ := e.DecodeB64Payload()
	es, _ := dsse.NewEnvelopeSigner(dsseKey{ns})
	wrong, err := es.SignPayload(ctx, "application/json", payload)
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(wrong)
	// sign.Attach refuses it, so store it the way cosign v2 would.
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:       static.NewLayer(wb, "application/vnd.dsse.envelope.v1+json"),
		Annotations: map[string]string{"predicateType": attest.PredicateSLSAProvenanceV1, "dev.cosignproject.cosign/signature": ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sign.TagFor(mmd, sign.AttestationSuffix), img, adminAuth); err != nil {
		t.Fatal(err)
	}
	if out, err := custodyCmd(t, home, "", nil, "verify", mismatch, "--trust-root", tr2); err == nil || !strings.Contains(out, "payloadType") {
		t.Fatalf("mismatched payloadType passed: %v\n%s", err, out)
	}
}

// VerifyReportView is the part of custody verify's JSON the test reads.
type VerifyReportView struct {
	OK           bool
	Signatures   []struct{ Source, KeyID string }
	Attestations []struct {
		PredicateType string
		OK            bool
	}
	Failures []string
}
