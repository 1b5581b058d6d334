package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/scrub"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

const testResultType = "https://in-toto.io/attestation/test-result/v0.1"

// scrubServer runs 'custody scrub --server' and returns its JSON report
// and exit status.
func scrubServer(t *testing.T, srv *testserver.Server) (*scrub.Report, int) {
	t.Helper()
	code, out, errb := run(t, "scrub", "--server", srv.URL, "-o", "json")
	var rep scrub.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("scrub --server: %v (exit %d)\n%s\n%s", err, code, out, errb)
	}
	return &rep, code
}

// failures returns the evidence failures about one artifact.
func failures(rep *scrub.Report, repo, d string) []scrub.EvidenceFinding {
	var out []scrub.EvidenceFinding
	for _, f := range rep.EvidenceFailures {
		if f.Repo == repo && string(f.Artifact) == d {
			out = append(out, f)
		}
	}
	return out
}

// auditActions returns the audit-log entries of repo with action.
func auditActions(t *testing.T, srv *testserver.Server, repo, action string) []map[string]any {
	t.Helper()
	resp, err := http.Get(srv.URL + "/api/v1/audit/search?repo=" + url.QueryEscape(repo))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Entries []struct {
			Entry string `json:"entry"`
		} `json:"entries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range body.Entries {
		var m map[string]any
		if err := json.Unmarshal([]byte(e.Entry), &m); err != nil {
			t.Fatal(err)
		}
		if m["action"] == action {
			out = append(out, m)
		}
	}
	return out
}

func metric(t *testing.T, srv *testserver.Server, name string) string {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("metric %s not exposed", name)
	}
	return m[1]
}

// TestScrubRevalidatesEvidence: a real server's scrub re-verifies the
// signatures and attestations of stored artifacts against the key ring's
// archived trust root. A retired key keeps verifying what it signed while
// valid (reported for information); a forged signature, a signature whose
// claimed time lies outside its key's window, an attestation about
// another digest, and, once the key is revoked, everything the key
// signed are reported with the artifact, the evidence digest and the
// reason, in the report, a metric, the log and the audit log.
func TestScrubRevalidatesEvidence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	data := t.TempDir()
	keys := filepath.Join(data, "keys")
	t.Setenv(keyPasswordEnv, "ring-pass")
	runKey(t, "key", "create", "--keys", keys)
	ring, err := key.Open(keys)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Data: data})

	// apps/web is signed and attested with key A.
	web := pushTagged(t, srv, "apps/web", "v1")
	webRef := srv.Host() + "/apps/web@" + web
	runKey(t, "sign", "--keys", keys, webRef)
	pred := filepath.Join(t.TempDir(), "result.json")
	writeFile(t, pred, `{"result":"PASSED"}`)
	runKey(t, "attest", "predicate", "--keys", keys, "--type", testResultType, "--predicate", pred, webRef)

	// --server runs the server's own rotation: no offline flags with it.
	if code, _, errb := run(t, "scrub", "--server", srv.URL, "--read-data-subset", "1/2"); code == 0 || !strings.Contains(errb, "leave out") {
		t.Fatalf("scrub --server --read-data-subset: exit %d, %s", code, errb)
	}

	// Before the rotation: everything verifies, nothing is retired.
	rep, code := scrubServer(t, srv)
	if code != 0 || !rep.OK() || rep.ArtifactsRevalidated != 1 || rep.EvidenceChecked != 3 || len(rep.RetiredKeyEvidence) != 0 {
		t.Fatalf("fresh store: exit %d, %+v", code, rep)
	}
	if !strings.HasPrefix(rep.TrustRoot, "sha256:") {
		t.Fatalf("trust root not named: %q", rep.TrustRoot)
	}

	// Rotate to key B: A is retired and still verifies what it signed.
	runKey(t, "key", "rotate", "--keys", keys)
	if a, err = ring.Get(a.ID); err != nil || a.Status != key.Retired {
		t.Fatalf("key A after rotation: %+v %v", a, err)
	}
	b, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	rep, code = scrubServer(t, srv)
	if code != 0 || !rep.OK() || len(rep.RetiredKeyEvidence) != 3 {
		t.Fatalf("after rotation: exit %d, %+v", code, rep)
	}
	for _, f := range rep.RetiredKeyEvidence {
		if f.KeyID != a.ID || string(f.Artifact) != web || f.Evidence == "" {
			t.Errorf("retired-key evidence: %+v", f)
		}
	}
	if n := len(auditActions(t, srv, "", "trust-root.archive")); n != 2 {
		t.Errorf("%d trust-root.archive audit entries, want 2 (before and after the rotation)", n)
	}

	// apps/api is signed with B; then come crafted pushes: a signature by
	// a key outside the trust root, a signature by the retired key A that
	// claims a time after A's window, and an attestation signed by B
	// whose subject is apps/web's digest.
	api := pushTagged(t, srv, "apps/api", "v2")
	apiRef := srv.Host() + "/apps/api@" + api
	runKey(t, "sign", "--keys", keys, apiRef)
	ctx := context.Background()
	d, err := name.NewDigest(apiRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := sign.Sign(ctx, d, stranger, sign.Options{Storage: sign.StorageTag}); err != nil {
		t.Fatal(err)
	}
	signerA, err := ring.Signer(a, []byte("ring-pass"))
	if err != nil {
		t.Fatal(err)
	}
	late := a.NotAfter.Add(time.Hour).Format(time.RFC3339)
	lateRes, err := sign.Sign(ctx, d, signerA, sign.Options{Storage: sign.StorageReferrer,
		Annotations: map[string]string{evidence.SignedAtAnnotation: late}})
	if err != nil {
		t.Fatal(err)
	}
	signerB, err := ring.Signer(b, []byte("ring-pass"))
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := attest.StatementFor("apps/api", web, testResultType, []byte(`{"result":"PASSED"}`))
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.Sign(ctx, signerB, "", stmt)
	if err != nil {
		t.Fatal(err)
	}
	// sign.Attach refuses a statement about another digest: push the
	// .att image by hand, as any client with push rights could.
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:       static.NewLayer(env, types.MediaType(sign.DSSEMediaType)),
		Annotations: map[string]string{sign.PredicateTypeAnnotation: testResultType, sign.SignatureAnnotation: ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	attTag := sign.TagFor(d, sign.AttestationSuffix)
	if err := remote.Write(attTag, img); err != nil {
		t.Fatal(err)
	}
	attImage, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	rep, code = scrubServer(t, srv)
	fs := failures(rep, "apps/api", api)
	if code != 1 || rep.OK() || len(fs) != 3 || len(rep.EvidenceFailures) != 3 {
		t.Fatalf("crafted evidence: exit %d, %d failures, want 3 about apps/api: %+v", code, len(fs), rep.EvidenceFailures)
	}
	want := map[string]bool{}
	for _, f := range fs {
		if f.Evidence == "" || f.Reason == "" {
			t.Errorf("finding without evidence digest or reason: %+v", f)
		}
		switch {
		case f.Kind == scrub.EvidenceSignature && strings.Contains(f.Reason, "does not verify with any of the 2 trusted keys"):
			want["forged"] = true
		case f.Kind == scrub.EvidenceSignature && f.KeyID == a.ID && f.Evidence == lateRes.Referrer &&
			strings.Contains(f.Reason, "was not valid at "+late):
			want["late"] = true
		case f.Kind == scrub.EvidenceAttestation && f.PredicateType == testResultType && f.KeyID == b.ID &&
			f.Evidence == attImage.String() && strings.Contains(f.Reason, api):
			want["subject"] = true
		default:
			t.Errorf("unexpected finding: %+v", f)
		}
	}
	if len(want) != 3 {
		t.Fatalf("findings %v, want forged, late and subject: %+v", want, fs)
	}
	if got := metric(t, srv, "custody_scrub_evidence_failures"); got != "3" {
		t.Errorf("custody_scrub_evidence_failures = %s, want 3", got)
	}
	if !srv.WaitLog("evidence no longer verifies", 5*time.Second) {
		t.Error("no log line for the failures")
	}
	if n := len(auditActions(t, srv, "apps/api", "evidence.revalidate")); n != 3 {
		t.Errorf("%d evidence.revalidate audit entries about apps/api, want 3", n)
	}
	// A failure that persists is recorded in the audit log once.
	if rep, _ = scrubServer(t, srv); len(rep.EvidenceFailures) != 3 {
		t.Fatalf("second scrub: %+v", rep.EvidenceFailures)
	}
	if n := len(auditActions(t, srv, "apps/api", "evidence.revalidate")); n != 3 {
		t.Errorf("%d evidence.revalidate audit entries after a second scrub, want still 3", n)
	}

	// Revoke A: everything A signed, even while it was valid, fails.
	out := runKey(t, "key", "revoke", "--keys", keys, a.ID[:12])
	if !strings.Contains(out, "revoked key "+a.ID) {
		t.Fatalf("key revoke: %s", out)
	}
	versions, err := ring.Versions()
	if err != nil {
		t.Fatal(err)
	}
	if _, errb := runKeyErr(t, "key", "revoke", "--keys", keys, a.ID); !strings.Contains(errb, "already revoked") {
		t.Fatalf("revoking twice: %q", errb)
	}
	if again, err := ring.Versions(); err != nil || len(again) != len(versions) {
		t.Fatalf("a refused revocation changed the history: %d versions, was %d (%v)", len(again), len(versions), err)
	}
	code, text, _ := run(t, "scrub", "--server", srv.URL)
	if code != 1 || !strings.Contains(text, "EVIDENCE apps/web@"+web) {
		t.Fatalf("after revocation: exit %d\n%s", code, text)
	}
	rep, _ = scrubServer(t, srv)
	fs = failures(rep, "apps/web", web)
	kinds := map[string]int{}
	for _, f := range fs {
		kinds[f.Kind]++
		if f.Evidence == "" || !strings.Contains(f.Reason, "signed by key "+a.ID+", which is revoked") {
			t.Errorf("finding without evidence digest or naming the revoked key: %+v", f)
		}
	}
	if kinds[scrub.EvidenceSignature] != 2 || kinds[scrub.EvidenceAttestation] != 1 || len(rep.RetiredKeyEvidence) != 0 {
		t.Fatalf("after revocation: %+v; retired %+v", fs, rep.RetiredKeyEvidence)
	}
	// Restoring A's metadata as retired does not bring it back: the
	// archived trust root keeps it revoked.
	a.Status = key.Retired
	restored, _ := json.MarshalIndent(a, "", "  ")
	writeFile(t, ring.Path(a.ID+".json"), string(restored))
	rep, _ = scrubServer(t, srv)
	if len(failures(rep, "apps/web", web)) != 3 {
		t.Fatalf("a revoked key restored by hand verifies again: %+v", rep.EvidenceFailures)
	}
	if !slices.ContainsFunc(auditActions(t, srv, "apps/web", "evidence.revalidate"), func(m map[string]any) bool {
		r, _ := m["reason"].(string)
		return strings.HasPrefix(r, "attestation sha256:")
	}) {
		t.Error("no audit entry for the attestation of the revoked key")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
