package e2e

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// timelineConfig has two projects, so a project-wide question must name
// one: shop (apps/**, dev and prod, no gates) and tools/**.
const timelineConfig = `projects:
  - name: shop
    repositories: "apps/**"
    environments:
      - name: dev
      - name: prod
  - repositories: "tools/**"
    environments:
      - name: dev
promotion:
  trustRoot: %q
`

// TestPointInTime: what an environment ran at any instant comes from the
// signed promotion and rollback records (a -> dev at t1, b at t2, back to
// a at t3), for one repository and project-wide, with the record and its
// audit-log entry; records no server key signed do not count; a digest's
// history lists every audited event about it in log order; a bad instant
// is refused and changes nothing.
func TestPointInTime(t *testing.T) {
	work, home, ciKeys, data := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	pass := []string{"CUSTODY_KEY_PASSWORD=ci-passphrase-1"}
	mustCustody(t, home, "", pass, "key", "create", "--keys", ciKeys)
	ciTrust := filepath.Join(work, "ci-trust-root.json")
	if err := os.WriteFile(ciTrust, []byte(mustCustody(t, home, "", nil, "key", "export-public", "--trust-root", "--keys", ciKeys)), 0o644); err != nil {
		t.Fatal(err)
	}
	ring, err := key.Open(ciKeys)
	if err != nil {
		t.Fatal(err)
	}
	ciInfo, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	ciSigner, err := ring.Signer(ciInfo, []byte("ci-passphrase-1"))
	if err != nil {
		t.Fatal(err)
	}
	mustCustody(t, home, "", []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}, "key", "create", "--keys", filepath.Join(data, "keys"))
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(timelineConfig, ciTrust)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg},
		Env: []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}})
	h, server := srv.Host(), "--server="+srv.URL
	mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", h, "-u", "admin", "--password-stdin")
	adminAuth := remote.WithAuth(&authn.Basic{Username: "admin", Password: srv.AdminPassword()})
	custody := func(args ...string) string {
		t.Helper()
		return mustCustody(t, home, "", nil, append(args, server)...)
	}
	// api GETs path as user (password user+"-password-123", or the admin)
	// and returns the status and body.
	api := func(user, method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user == "admin" {
			req.SetBasicAuth("admin", srv.AdminPassword())
		} else {
			req.SetBasicAuth(user, user+"-password-123")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	push := func(repo string) string {
		t.Helper()
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		dg, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		d, err := name.NewDigest(h + "/" + repo + "@" + dg.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(d, img, adminAuth); err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	digestOf := func(ref string) string { return ref[strings.Index(ref, "@")+1:] }
	promote := func(ref, env string) time.Time {
		t.Helper()
		var out promotion.Outcome
		if err := json.Unmarshal([]byte(custody("promote", ref, "--to", env, "-o", "json")), &out); err != nil || out.Record == nil {
			t.Fatalf("promote %s: %v %+v", ref, err, out)
		}
		return out.Record.At
	}

	a, b, c := push("apps/web"), push("apps/web"), push("apps/api")
	push("tools/lint")
	t1 := promote(a, "dev")
	t2 := promote(b, "dev")
	tc := promote(c, "dev")
	var rb evidence.Record
	if err := json.Unmarshal([]byte(custody("rollback", "dev", "apps/web", "-o", "json")), &rb); err != nil || rb.Digest != digestOf(a) {
		t.Fatalf("rollback: %v %+v", err, rb)
	}
	t3 := rb.At
	if !t1.Before(t2) || !t2.Before(tc) || !tc.Before(t3) {
		t.Fatalf("record times out of order: %s %s %s %s", t1, t2, tc, t3)
	}

	// Records that do not count: a promotion record claiming b entered
	// dev after the rollback, signed by the CI key (trusted for
	// signatures, but not one of the server's keys, which alone record),
	// and one signed by a key nobody trusts.
	stranger, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	for _, signer := range []crypto.Signer{ciSigner, stranger} {
		rec := evidence.Record{Environment: "dev", Repository: "apps/web", Digest: digestOf(b), By: "mallory", At: t3.Add(time.Millisecond)}
		pred, _ := json.Marshal(rec)
		stmt, err := attest.StatementFor("apps/web", digestOf(b), evidence.PredicatePromotion, pred)
		if err != nil {
			t.Fatal(err)
		}
		envl, err := attest.Sign(context.Background(), signer, "", stmt)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := name.NewDigest(b)
		if _, err := sign.Attach(context.Background(), d, envl, evidence.PredicatePromotion, sign.Options{Remote: []remote.Option{adminAuth}}); err != nil {
			t.Fatal(err)
		}
	}

	// env dev apps/web --at: before t1, at t1, between, after t3.
	envAt := func(at time.Time) (promotion.Deployment, time.Time) {
		t.Helper()
		var st struct {
			At         time.Time
			Current    string
			Deployment *promotion.Deployment
		}
		if err := json.Unmarshal([]byte(custody("env", "dev", "apps/web", "--at", at.Format(time.RFC3339Nano), "-o", "json")), &st); err != nil || st.Deployment == nil {
			t.Fatalf("env at %s: %v %+v", at, err, st)
		}
		if st.Current != digestOf(a) {
			t.Fatalf("current: %s", st.Current)
		}
		return *st.Deployment, st.At
	}
	mid := func(x, y time.Time) time.Time { return x.Add(y.Sub(x) / 2) }
	for _, tc := range []struct {
		at       time.Time
		want     string
		since    time.Time
		rollback bool
	}{
		{t1.Add(-time.Nanosecond), "", time.Time{}, false},
		{t1, a, t1, false},
		{mid(t1, t2), a, t1, false},
		{mid(t2, t3), b, t2, false},
		{t3, a, t3, true},
		{t3.Add(time.Hour), a, t3, true},
	} {
		dep, at := envAt(tc.at)
		if !at.Equal(tc.at) {
			t.Fatalf("answered for %s, asked %s", at, tc.at)
		}
		if tc.want == "" {
			if dep.Digest != "" || dep.Record != nil || dep.AuditIndex != nil {
				t.Fatalf("before t1: %+v", dep)
			}
			continue
		}
		if dep.Digest != digestOf(tc.want) || !dep.Since.Equal(tc.since) || dep.Record == nil || dep.Record.Rollback != tc.rollback ||
			dep.Record.By != "admin" || dep.AuditIndex == nil {
			t.Fatalf("at %s: %+v, want %s since %s", tc.at, dep, tc.want, tc.since)
		}
		// The audit entry named is that promotion's.
		code, body := api("admin", http.MethodGet, fmt.Sprintf("/api/v1/audit/entries?start=%d&end=%d", *dep.AuditIndex, *dep.AuditIndex+1), nil)
		var entries struct {
			Entries []struct {
				Entry string
			}
		}
		if err := json.Unmarshal(body, &entries); code != http.StatusOK || err != nil || len(entries.Entries) != 1 {
			t.Fatalf("audit entry %d: %d %v %s", *dep.AuditIndex, code, err, body)
		}
		var e struct{ Action, Digest, Tag, Result string }
		_ = json.Unmarshal([]byte(entries.Entries[0].Entry), &e)
		wantAction := map[bool]string{false: "promote", true: "rollback"}[tc.rollback]
		if e.Action != wantAction || e.Digest != dep.Digest || e.Tag != "dev" || e.Result != "ok" {
			t.Fatalf("audit entry %d of %+v: %s", *dep.AuditIndex, dep, entries.Entries[0].Entry)
		}
	}
	if out := custody("env", "dev", "apps/web", "--at", t1.Add(-time.Second).UTC().Format("2006-01-02 15:04:05")); !strings.Contains(out, "ran empty") {
		t.Fatalf("text before t1: %s", out)
	}
	if out := custody("env", "dev", "apps/web", "--at", t3.Add(time.Second).Format(time.RFC3339)); !strings.Contains(out, "ran "+digestOf(a)) || !strings.Contains(out, "signed rollback record") {
		t.Fatalf("text after t3: %s", out)
	}

	// Project-wide: both services of shop, sorted, with their records
	// (tools/lint is another project's).
	projectAt := func(at time.Time) []promotion.Deployment {
		t.Helper()
		var st struct {
			Project     string
			Deployments []promotion.Deployment
		}
		if err := json.Unmarshal([]byte(custody("env", "dev", "--project", "shop", "--at", at.Format(time.RFC3339Nano), "-o", "json")), &st); err != nil || st.Project != "shop" {
			t.Fatalf("project-wide: %v %+v", err, st)
		}
		return st.Deployments
	}
	deps := projectAt(mid(t2, tc))
	if len(deps) != 2 || deps[0].Repository != "apps/api" || deps[0].Digest != "" || deps[1].Repository != "apps/web" || deps[1].Digest != digestOf(b) {
		t.Fatalf("project between t2 and tc: %+v", deps)
	}
	deps = projectAt(t3.Add(time.Hour))
	if len(deps) != 2 || deps[0].Digest != digestOf(c) || !deps[0].Since.Equal(tc) || deps[0].Record == nil || deps[0].AuditIndex == nil ||
		deps[1].Digest != digestOf(a) || !deps[1].Record.Rollback {
		t.Fatalf("project after t3: %+v", deps)
	}
	if out := custody("env", "dev", "--project", "apps/**"); !strings.Contains(out, "apps/api") || !strings.Contains(out, digestOf(c)) || !strings.Contains(out, "rollback by admin") {
		t.Fatalf("project by pattern, text: %s", out)
	}
	// Two projects: which one must be said.
	if out, err := custodyCmd(t, home, "", nil, "env", "dev", server); err == nil || !strings.Contains(out, "shop, tools/**") {
		t.Fatalf("no project named with two configured: %v\n%s", err, out)
	}
	if code, body := api("admin", http.MethodGet, "/api/v1/environments?environment=dev&project=nope", nil); code != http.StatusNotFound {
		t.Fatalf("unknown project: %d %s", code, body)
	}

	// Access: a reader of apps/web alone may read its environment but
	// not the project's; an auditor reads histories, a reader does not.
	mustCustody(t, home, "reader1-password-123\n", nil, "user", "create", "reader1", "--password-stdin", server)
	custody("grant", "add", "user:reader1", "reader", "apps/web")
	mustCustody(t, home, "auditor1-password-123\n", nil, "user", "create", "auditor1", "--password-stdin", server)
	custody("grant", "add", "user:auditor1", "auditor", "**")
	if code, body := api("reader1", http.MethodGet, "/api/v1/environments?environment=dev&repository=apps/web", nil); code != http.StatusOK {
		t.Fatalf("reader, one repository: %d %s", code, body)
	}
	if code, body := api("reader1", http.MethodGet, "/api/v1/environments?environment=dev&project=shop", nil); code != http.StatusForbidden || strings.Contains(string(body), "apps/api") || !strings.Contains(string(body), "apps/**") {
		// Refused without naming apps/api: reader1 may not list it.
		t.Fatalf("reader, project-wide: %d %s", code, body)
	}
	hq := "/api/v1/history?" + url.Values{"repository": {"apps/web"}, "digest": {digestOf(a)}}.Encode()
	if code, body := api("reader1", http.MethodGet, hq, nil); code != http.StatusForbidden {
		t.Fatalf("reader reading a history: %d %s", code, body)
	}

	// A bad instant: 400 problem, and nothing changed (no audit entry).
	size := func() uint64 {
		t.Helper()
		_, body := api("admin", http.MethodGet, "/api/v1/audit/entries?start=0&end=0", nil)
		var r struct{ Size uint64 }
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("audit size: %v %s", err, body)
		}
		return r.Size
	}
	before := size()
	for _, q := range []string{"environment=dev&repository=apps/web&at=yesterday", "environment=dev&project=shop&at=2026-13-01", "environment=dev&repository=apps/web&at=",
		"environment=dev&repository=apps/web&at=2026-03-03T15:00:00+01:00"} {
		code, body := api("admin", http.MethodGet, "/api/v1/environments?"+q, nil)
		var p struct{ Type, Detail string }
		if err := json.Unmarshal(body, &p); code != http.StatusBadRequest || err != nil || !strings.Contains(p.Detail, "RFC 3339") ||
			strings.Contains(q, "+") != strings.Contains(p.Detail, "%2B") { // a + lost to URL decoding is named
			t.Fatalf("%s: %d %s", q, code, body)
		}
	}
	if out, err := custodyCmd(t, home, "", nil, "env", "dev", "apps/web", "--at", "next tuesday", server); err == nil || !strings.Contains(out, "RFC 3339") {
		t.Fatalf("--at next tuesday: %v\n%s", err, out)
	}
	if after := size(); after != before {
		t.Fatalf("a refused request wrote %d audit entries", after-before)
	}

	// History: a deploy-time check, an admission decision, a hold and a
	// revocation join the push, tag moves, promotions and attestations.
	if code, body := api("admin", http.MethodGet, "/api/v1/environments?"+url.Values{"environment": {"dev"}, "repository": {"apps/web"}, "digest": {digestOf(a)}}.Encode(), nil); code != http.StatusOK {
		t.Fatalf("deploy-time check: %d %s", code, body)
	}
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop-dev"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: a}}}}
	raw, _ := json.Marshal(pod)
	review, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "uid-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "shop-dev",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}})
	resp, err := http.Post(srv.URL+"/admission/dev", "application/json", bytes.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body := api("admin", http.MethodPut, "/api/v1/hold/apps/web/@"+digestOf(a), nil); code != http.StatusOK {
		t.Fatalf("hold: %d %s", code, body)
	}
	custody("revoke", a, "--reason", "CVE-2026-0001")

	var hist promotion.History
	if err := json.Unmarshal([]byte(mustCustody(t, home, "", nil, "history", a, "-o", "json", server)), &hist); err != nil {
		t.Fatal(err)
	}
	code, body := api("auditor1", http.MethodGet, hq, nil)
	var viaAPI promotion.History
	if err := json.Unmarshal(body, &viaAPI); code != http.StatusOK || err != nil || len(viaAPI.Events) != len(hist.Events) {
		t.Fatalf("auditor reading the history: %d %v %s", code, err, body)
	}
	var kinds []string
	for i, e := range hist.Events {
		if i > 0 && e.AuditIndex <= hist.Events[i-1].AuditIndex {
			t.Fatalf("events out of log order: %+v", hist.Events)
		}
		if i > 0 && e.Time.Before(hist.Events[i-1].Time) {
			t.Fatalf("events out of time order: %+v", hist.Events)
		}
		if len(kinds) == 0 || kinds[len(kinds)-1] != e.Kind {
			kinds = append(kinds, e.Kind)
		}
	}
	// In order: pushed; promoted to dev (its record attached, the
	// manifest put again with the tag moved to it); rolled back to
	// (record, manifest and tag); checked at deploy time; admitted; held;
	// revoked (the revocation attached).
	want := []string{promotion.KindPush, promotion.KindAttestation, promotion.KindPush, promotion.KindTag, promotion.KindPromotion,
		promotion.KindAttestation, promotion.KindPush, promotion.KindTag, promotion.KindRollback,
		promotion.KindVerification, promotion.KindAdmission, promotion.KindHold, promotion.KindAttestation, promotion.KindRevocation}
	if !slices.Equal(kinds, want) {
		t.Fatalf("history kinds:\n got %v\nwant %v\n%+v", kinds, want, hist.Events)
	}
	for _, e := range hist.Events {
		if e.Kind == promotion.KindAttestation && e.Digest == "" {
			t.Fatalf("an attestation event does not name its manifest: %+v", e)
		}
		if e.Kind == promotion.KindAdmission && (e.Result != "ok" || e.Tag != "dev") {
			t.Fatalf("admission event: %+v", e)
		}
	}
	if out := custody("history", a); !strings.Contains(out, "rollback") || !strings.Contains(out, strconv.FormatUint(hist.Events[0].AuditIndex, 10)) {
		t.Fatalf("history text: %s", out)
	}
	// A digest nothing happened to has no history.
	if code, body := api("admin", http.MethodGet, "/api/v1/history?repository=apps/web&digest=sha256:"+strings.Repeat("0", 64), nil); code != http.StatusNotFound {
		t.Fatalf("unknown digest: %d %s", code, body)
	}
	if code, body := api("admin", http.MethodGet, "/api/v1/history?repository=apps/web&digest=nope", nil); code != http.StatusBadRequest {
		t.Fatalf("bad digest: %d %s", code, body)
	}
}

// TestPointInTimeRevokedKey: the records of a server key that was revoked
// (compromised) count for nothing, while those of a key merely rotated
// out still do: a and b promoted under key 1, the rollback to a under key
// 2; once key 1 is revoked only the rollback proves anything.
func TestPointInTimeRevokedKey(t *testing.T) {
	work, home, data := t.TempDir(), t.TempDir(), t.TempDir()
	serverPass := []string{"CUSTODY_KEY_PASSWORD=server-passphrase"}
	keys := filepath.Join(data, "keys")
	mustCustody(t, home, "", serverPass, "key", "create", "--keys", keys)
	ring, err := key.Open(keys)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ring.Active()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "custody.yaml")
	if err := os.WriteFile(cfg, []byte("projects:\n  - repositories: \"apps/**\"\n    environments:\n      - name: dev\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Auth: true, Data: data, Args: []string{"--config", cfg}, Env: serverPass})
	login := func() string {
		mustCustody(t, home, srv.AdminPassword()+"\n", nil, "login", srv.Host(), "-u", "admin", "--password-stdin")
		return "--server=" + srv.URL
	}
	server := login()
	push := func() string {
		t.Helper()
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		dg, _ := img.Digest()
		d, err := name.NewDigest(srv.Host() + "/apps/web@" + dg.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(d, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: srv.AdminPassword()})); err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	promote := func(ref string) time.Time {
		t.Helper()
		var out promotion.Outcome
		if err := json.Unmarshal([]byte(mustCustody(t, home, "", nil, "promote", ref, "--to", "dev", "-o", "json", server)), &out); err != nil || out.Record == nil {
			t.Fatalf("promote %s: %v", ref, err)
		}
		return out.Record.At
	}
	ranAt := func(at time.Time) promotion.Deployment {
		t.Helper()
		var st struct{ Deployment promotion.Deployment }
		if err := json.Unmarshal([]byte(mustCustody(t, home, "", nil, "env", "dev", "apps/web", "--at", at.Format(time.RFC3339Nano), "-o", "json", server)), &st); err != nil {
			t.Fatal(err)
		}
		return st.Deployment
	}
	restart := func(change func()) {
		t.Helper()
		if err := srv.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		change()
		srv.Restart()
		server = login()
	}
	digestOf := func(ref string) string { return ref[strings.Index(ref, "@")+1:] }

	a, b := push(), push()
	t1 := promote(a)
	t2 := promote(b)
	restart(func() { mustCustody(t, home, "", serverPass, "key", "rotate", "--keys", keys) })
	var rb evidence.Record
	if err := json.Unmarshal([]byte(mustCustody(t, home, "", nil, "rollback", "dev", "apps/web", "-o", "json", server)), &rb); err != nil {
		t.Fatal(err)
	}
	t3 := rb.At
	between := t1.Add(t2.Sub(t1) / 2)
	if d := ranAt(between); d.Digest != digestOf(a) {
		t.Fatalf("a record of the rotated-out key no longer counts: %+v", d)
	}

	// Key 1 is compromised: revoked in the ring.
	restart(func() {
		info, err := ring.Get(first.ID)
		if err != nil || info.Status != key.Retired {
			t.Fatalf("first key: %+v %v", info, err)
		}
		info.Status = key.Revoked
		b, _ := json.MarshalIndent(info, "", "  ")
		if err := os.WriteFile(ring.Path(info.ID+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	for _, at := range []time.Time{between, t2.Add(t3.Sub(t2) / 2)} {
		if d := ranAt(at); d.Digest != "" || d.Record != nil {
			t.Fatalf("at %s a revoked key's record counted: %+v", at, d)
		}
	}
	if d := ranAt(t3.Add(time.Minute)); d.Digest != digestOf(a) || d.Record == nil || !d.Record.Rollback || d.AuditIndex == nil {
		t.Fatalf("after the rollback under key 2: %+v", d)
	}
}
