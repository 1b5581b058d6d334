package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// promotionConfig declares apps/** with dev -> test -> prod and the gates
// of docs/promotion.md.
const promotionConfig = `projects:
  - repositories: "apps/**"
    environments:
      - name: dev
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[1]q]}
      - name: test
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[1]q]}
            - use: slsa_provenance_trusted
              params:
                builders: ["https://github.com/actions/runner/github-hosted"]
                sources: ["https://github.com/acme/app"]
                branches: [main]
            - use: sbom_present
            - use: promoted_to_previous
      - name: prod
        approvals: 2
        gate:
          rules:
            - use: signed_by_trusted_key
              params: {keys: [%[1]q]}
            - use: sbom_present
            - use: passed_qa
            - use: no_findings_at_or_above
              params: {severity: HIGH}
            - use: promoted_to_previous
            - use: not_revoked
promotion:
  trustRoot: %[2]q
`

// TestPromotionWalkthrough checks the flow of docs/promotion.md step by
// step (TestPromotionDocWalkthrough runs the document itself): push, sign,
// provenance, SBOM, QA evidence, promote dev -> test -> prod (four eyes),
// verify at deploy time, roll back, revoke; with the refusals along the way.
func TestPromotionWalkthrough(t *testing.T) {
	crane := client(t, "crane")
	work, home, ciKeys := t.TempDir(), t.TempDir(), t.TempDir()
	data := t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-passphrase-1"}

	// The CI signing key and its trust root; the server's own key (which
	// signs promotions) in its data directory.
	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	ciTrust := filepath.Join(work, "ci-trust-root.json")
	if err := os.WriteFile(ciTrust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	ring, err := key.Open(ciKeys)
	if err != nil {
		t.Fatal(err)
	}
	ciKey, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(promotionConfig, ciKey.ID, ciTrust)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")

	// Two release managers (promoters) and a developer (writer).
	users := map[string]string{}
	for name, role := range map[string]string{"rel1": "promoter", "rel2": "promoter", "dev1": "writer"} {
		users[name] = t.TempDir()
		mustCustody(t, home, name+"-password-123\n", nil, "user", "create", name, "--password-stdin", server)
		mustCustody(t, home, "", nil, "grant", "add", "user:"+name, role, "apps/**", server)
		mustCustody(t, users[name], name+"-password-123\n", nil, "login", h, "-u", name, "--password-stdin")
	}
	as := func(user string, args ...string) (string, error) {
		return custodyCmd(t, users[user], "", nil, append(args, server)...)
	}
	mustAs := func(user string, args ...string) string {
		t.Helper()
		out, err := as(user, args...)
		if err != nil {
			t.Fatalf("%s: custody %s: %v\n%s", user, strings.Join(args, " "), err, out)
		}
		return out
	}
	ws := filepath.Join(work, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	image := func(tag string) string {
		layer := layerTar(t, t.TempDir(), 2048)
		run(t, home, crane, "append", "--insecure", "-f", layer, "-t", h+"/apps/web:"+tag)
		return h + "/apps/web@" + strings.TrimSpace(run(t, home, crane, "digest", "--insecure", h+"/apps/web:"+tag))
	}
	// CI: build once, sign, provenance, SBOM.
	ci := func(ref string) {
		mustCustody(t, home, "", pass, "sign", "--keys", ciKeys, ref)
		mustCustody(t, home, "", append(pass, githubEnv...), "attest", "provenance", "--from-env", "--workspace", ws, "--keys", ciKeys, ref)
		mustCustody(t, home, "", pass, "attest", "sbom", "--keys", ciKeys, ref)
	}
	env := func(e string) string {
		var st struct{ Current string }
		if err := json.Unmarshal([]byte(mustAs("rel1", "env", e, "apps/web", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		return st.Current
	}
	digestOf := func(ref string) string { return ref[strings.Index(ref, "@")+1:] }

	v1 := image("1.0.0")
	ci(v1)
	// The server scans the SBOM against its vulnerability database and
	// attaches the signed result.
	if out := mustAs("rel1", "scan", v1); !strings.Contains(out, "0 finding(s)") {
		t.Fatalf("scan: %s", out)
	}

	// Refusals before anything moves: test before dev, a writer promoting,
	// a writer setting an environment tag by hand, an unsigned artifact.
	if out, err := as("rel1", "promote", v1, "--to", "test"); err == nil || !strings.Contains(out, "promoted_to_previous") {
		t.Fatalf("test before dev: %v\n%s", err, out)
	}
	if out, err := as("dev1", "promote", v1, "--to", "dev"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("writer promoting: %v\n%s", err, out)
	}
	if msg := fails(t, users["dev1"], crane, "tag", "--insecure", v1, "prod"); !strings.Contains(msg, "only by promotion") {
		t.Fatalf("writer setting the prod tag: %s", msg)
	}
	unsigned := image("unsigned")
	if out, err := as("rel1", "promote", unsigned, "--to", "dev"); err == nil || !strings.Contains(out, "signed_by_trusted_key") {
		t.Fatalf("unsigned to dev: %v\n%s", err, out)
	}
	if env("dev") != "" || env("test") != "" {
		t.Fatal("a refused promotion moved an environment")
	}
	// gate test evaluates without promoting.
	if out, err := as("rel1", "gate", "test", v1, "--env", "prod"); err == nil || !strings.Contains(out, "passed_qa") || strings.Contains(out, "deprecated") {
		t.Fatalf("gate test before QA: %v\n%s", err, out)
	}
	// policy test, its deprecated alias, still evaluates the gate and says
	// what replaces it.
	if out, err := as("rel1", "policy", "test", v1, "--env", "prod"); err == nil || !strings.Contains(out, "passed_qa") || !strings.Contains(out, `deprecated, use "custody gate test"`) {
		t.Fatalf("policy test before QA: %v\n%s", err, out)
	}

	// dev, test.
	mustAs("rel1", "promote", v1, "--to", "dev", "--reason", "nightly")
	mustAs("rel1", "promote", v1, "--to", "test")
	if env("dev") != digestOf(v1) || env("test") != digestOf(v1) {
		t.Fatalf("dev/test after promotion: %s %s", env("dev"), env("test"))
	}
	// prod needs QA evidence ...
	if out, err := as("rel1", "promote", v1, "--to", "prod"); err == nil || !strings.Contains(out, "passed_qa") {
		t.Fatalf("prod without QA: %v\n%s", err, out)
	}
	mustCustody(t, home, "", pass, "attest", "test-result", "--keys", ciKeys, "--result", "PASSED", "--suite", "qa", v1)
	// ... and two distinct approvers.
	if out := mustAs("rel1", "promote", v1, "--to", "prod"); !strings.Contains(out, "1 of 2") {
		t.Fatalf("first approval: %s", out)
	}
	if out := mustAs("rel1", "promote", v1, "--to", "prod"); !strings.Contains(out, "1 of 2") {
		t.Fatalf("the same approver twice counts once: %s", out)
	}
	if env("prod") != "" {
		t.Fatal("prod moved with one approver")
	}
	mustAs("rel2", "promote", v1, "--to", "prod", "--reason", "release 1.0.0")
	if env("prod") != digestOf(v1) {
		t.Fatal("prod did not move")
	}

	// A deployment trusts the CI key and the registry's own key (which
	// signs promotions and revocations), from GET /api/v1/keys.
	resp, err := http.Get(srv.URL + "/api/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	var serverTR, ciTR key.TrustRoot
	if err := json.NewDecoder(resp.Body).Decode(&serverTR); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b, _ := os.ReadFile(ciTrust)
	if err := json.Unmarshal(b, &ciTR); err != nil {
		t.Fatal(err)
	}
	ciTR.Keys = append(ciTR.Keys, serverTR.Keys...)
	b, _ = json.Marshal(ciTR)
	ciTrust = filepath.Join(work, "deploy-trust-root.json")
	if err := os.WriteFile(ciTrust, b, 0o644); err != nil {
		t.Fatal(err)
	}

	// Deploy time: verify --env prod.
	mustCustody(t, home, "", nil, "verify", v1, "--trust-root", ciTrust, "--env", "prod")
	if out, err := custodyCmd(t, home, "", nil, "verify", unsigned, "--trust-root", ciTrust, "--env", "prod"); err == nil {
		t.Fatalf("an unpromoted digest passed verify --env prod:\n%s", out)
	}

	// Admission: a Pod in a prod namespace runs v1 by digest; an
	// unpromoted digest and a tag that resolves to one are refused.
	admit := func(images ...string) (bool, string) {
		t.Helper()
		pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop-prod"}}
		for i, im := range images {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: im})
		}
		raw, _ := json.Marshal(pod)
		rev := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "uid-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "shop-prod",
				Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}}
		body, _ := json.Marshal(rev)
		resp, err := http.Post(srv.URL+"/admission/prod", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || out.Response.UID != "uid-1" {
			t.Fatalf("admission answer: %d %v %+v", resp.StatusCode, err, out)
		}
		msg := ""
		if out.Response.Result != nil {
			msg = out.Response.Result.Message
		}
		return out.Response.Allowed, msg
	}
	if ok, msg := admit(v1); !ok {
		t.Fatalf("promoted v1 refused: %s", msg)
	}
	if ok, msg := admit(v1, unsigned); ok || !strings.Contains(msg, "never promoted") {
		t.Fatalf("unpromoted image admitted: %v %s", ok, msg)
	}
	if ok, _ := admit(h + "/apps/web:1.0.0"); !ok {
		t.Fatal("a tag resolving to the promoted digest was refused")
	}
	if ok, _ := admit(h + "/apps/web:unsigned"); ok {
		t.Fatal("a tag resolving to an unpromoted digest was admitted")
	}

	// Version 2 through to prod, then roll back to 1.
	v2 := image("2.0.0")
	ci(v2)
	mustCustody(t, home, "", pass, "attest", "test-result", "--keys", ciKeys, "--result", "PASSED", v2)
	for _, e := range []string{"dev", "test"} {
		mustAs("rel1", "promote", v2, "--to", e)
	}
	mustAs("rel1", "promote", v2, "--to", "prod")
	mustAs("rel2", "promote", v2, "--to", "prod")
	if env("prod") != digestOf(v2) {
		t.Fatal("prod is not v2")
	}
	if out, err := custodyCmd(t, home, "", nil, "verify", v1, "--trust-root", ciTrust, "--env", "prod"); err == nil || !strings.Contains(out, "not what prod runs") {
		t.Fatalf("v1 after v2 reached prod: %v\n%s", err, out)
	}
	mustAs("rel1", "rollback", "prod", "apps/web", "--reason", "error rate")
	if env("prod") != digestOf(v1) {
		t.Fatalf("rollback: prod runs %s", env("prod"))
	}
	hist := mustAs("rel1", "env", "prod", "apps/web")
	if strings.Count(hist, "sha256:") < 4 { // current + three history lines
		t.Fatalf("prod history: %s", hist)
	}

	// Revocation: verify (with or without --env) and gates refuse v1.
	if out, err := as("rel1", "revoke", v1, "--reason", "CVE-2026-0001"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("promoter revoking: %v\n%s", err, out)
	}
	mustCustody(t, home, "", nil, "revoke", v1, "--reason", "CVE-2026-0001", server)
	if out, err := custodyCmd(t, home, "", nil, "verify", v1, "--trust-root", ciTrust); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked artifact verified: %v\n%s", err, out)
	}
	if out, err := custodyCmd(t, home, "", nil, "verify", v1, "--trust-root", ciTrust, "--env", "prod"); err == nil {
		t.Fatalf("revoked artifact passed verify --env prod:\n%s", out)
	}
	if out, err := as("rel1", "promote", v1, "--to", "dev"); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("promoting a revoked artifact: %v\n%s", err, out)
	}
	if ok, msg := admit(v1); ok || !strings.Contains(msg, "revoked") {
		t.Fatalf("revoked image admitted: %v %s", ok, msg)
	}
	// The server's key rotates: what the old key recorded (the
	// revocation, the promotions) still counts.
	if err := srv.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "rotate", "--keys", filepath.Join(data, "keys"))
	srv.Restart() // on a new port: sign in there
	server = "--server=" + srv.URL
	mustCustody(t, users["rel1"], "rel1-password-123\n", nil, "login", srv.Host(), "-u", "rel1", "--password-stdin")
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", srv.Host(), "-u", "admin", "--password-stdin")
	if out, err := as("rel1", "promote", v1, "--to", "dev"); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revocation forgotten after the server key rotated: %v\n%s", err, out)
	}
	// The audit log names who promoted what.
	mustCustody(t, home, "", nil, "audit", "checkpoint", "--sign", server)
	mustCustody(t, home, "", nil, "audit", "verify", server)
}

// TestPromotionGateKeyValidity: a gate counts a signature only if the ring
// key that made it was valid at the signing time it claims, as custody
// verify does. A retired CI key's signature dated inside its window counts;
// one dated after the key was rotated out is refused, and nothing moves.
func TestPromotionGateKeyValidity(t *testing.T) {
	work, home, ciKeys, data := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-passphrase-1"}
	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	ring, err := key.Open(ciKeys)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	oldSigner, err := ring.Signer(old, []byte("ci-passphrase-1"))
	if err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", pass, "key", "rotate", "--keys", ciKeys)
	if old, err = ring.Get(old.ID); err != nil || old.NotAfter.IsZero() {
		t.Fatalf("retired key: %+v %v", old, err)
	}
	ciTrust := filepath.Join(work, "ci-trust-root.json")
	if err := os.WriteFile(ciTrust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	conf := fmt.Sprintf("projects:\n  - repositories: \"apps/**\"\n    environments:\n      - name: dev\n        gate:\n          rules:\n            - use: signed_by_trusted_key\n              params: {keys: [%q]}\npromotion:\n  trustRoot: %q\n", old.ID, ciTrust)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	adminAuth := remote.WithAuth(&authn.Basic{Username: "admin", Password: srv.AdminPassword()})

	// signedAt pushes an image signed by the retired key, claiming at.
	signedAt := func(tag string, at time.Time) string {
		t.Helper()
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		dg, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		d, err := name.NewDigest(h + "/apps/web@" + dg.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(d.Context().Tag(tag), img, adminAuth); err != nil {
			t.Fatal(err)
		}
		o := sign.Options{Remote: []remote.Option{adminAuth},
			Annotations: map[string]string{"dev.custody.signed-at": at.UTC().Format(time.RFC3339)}}
		if _, err := sign.Sign(context.Background(), d, oldSigner, o); err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	current := func() string {
		var st struct{ Current string }
		if err := json.Unmarshal([]byte(mustCustody(t, home, "", nil, "env", "dev", "apps/web", "-o", "json", server)), &st); err != nil {
			t.Fatal(err)
		}
		return st.Current
	}

	inside := signedAt("inside", old.NotBefore)
	mustCustody(t, home, "", nil, "promote", inside, "--to", "dev", server)
	if got := current(); !strings.HasSuffix(inside, "@"+got) {
		t.Fatalf("dev runs %q after promoting %s", got, inside)
	}

	outside := signedAt("outside", old.NotAfter.Add(time.Hour))
	if out, err := custodyCmd(t, home, "", nil, "promote", outside, "--to", "dev", server); err == nil || !strings.Contains(out, "signed_by_trusted_key") {
		t.Fatalf("a signature made after its key was rotated out passed the gate: %v\n%s", err, out)
	}
	if out, err := custodyCmd(t, home, "", nil, "policy", "test", outside, "--env", "dev", server); err == nil || !strings.Contains(out, "signed_by_trusted_key") {
		t.Fatalf("policy test passed a signature made outside its key's validity: %v\n%s", err, out)
	}
	if got := current(); !strings.HasSuffix(inside, "@"+got) {
		t.Fatalf("a refused promotion moved dev to %q", got)
	}
	// custody verify refuses it for the same reason.
	if out, err := custodyCmd(t, home, "", nil, "verify", outside, "--trust-root", ciTrust); err == nil || !strings.Contains(out, "not valid at") {
		t.Fatalf("verify passed a signature made outside its key's validity: %v\n%s", err, out)
	}
}
