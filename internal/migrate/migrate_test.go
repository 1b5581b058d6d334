package migrate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/migrate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// client talks to one server as one identity.
type client struct {
	t    *testing.T
	base string
	// authz is the Authorization header value.
	authz string
}

func (c client) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, */*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, b
}

func (c client) must(method, path string, body any, want int) []byte {
	c.t.Helper()
	code, b := c.call(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// fixture is what fill pushed and configured, to be checked on every copy.
type fixture struct {
	adminPass string
	token     string // an admin API token's secret
	alicePass string
	// manifests: repo -> digests pushed there.
	manifests map[string][]digest.Digest
	blobs     map[string][]digest.Digest
	subject   digest.Digest // of team/app, with one referrer
	locked    digest.Digest // retention lock + legal hold in team/app
}

func ggcrPush(t *testing.T, host, ref string, img v1.Image, a authn.Authenticator) digest.Digest {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(a)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(d.String())
}

func imageBlobs(t *testing.T, img v1.Image) []digest.Digest {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := []digest.Digest{digest.Digest(cfg.String())}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, digest.Digest(d.String()))
	}
	return out
}

// fill pushes images, an index, a referrer and tags with history, sets a
// retention lock, a legal hold and two policy versions, creates a user
// and an API token, and signs a checkpoint.
func fill(t *testing.T, srv *testserver.Server) *fixture {
	f := &fixture{adminPass: srv.AdminPassword(), manifests: map[string][]digest.Digest{}, blobs: map[string][]digest.Digest{}}
	admin := client{t, srv.URL, basic("admin", f.adminPass)}
	au := &authn.Basic{Username: "admin", Password: f.adminPass}

	f.alicePass = "alice-long-password-1"
	admin.must("POST", "/api/v1/users", auth.UserRequest{Name: "alice", Password: f.alicePass}, http.StatusCreated)
	admin.must("POST", "/api/v1/grants", auth.Grant{Subject: "user:alice", Role: auth.RoleReader, Repository: "team/**"}, http.StatusCreated)
	// A disabled account must stay disabled.
	admin.must("POST", "/api/v1/users", auth.UserRequest{Name: "dora", Password: "dora-long-password-1"}, http.StatusCreated)
	admin.must("POST", "/api/v1/users/dora/disable", nil, http.StatusOK)
	var tok auth.CreatedToken
	b := admin.must("POST", "/api/v1/tokens", auth.TokenRequest{Name: "ci", Scopes: []auth.Scope{{Role: auth.RoleAdmin, Repositories: []string{"**"}}}}, http.StatusCreated)
	if err := json.Unmarshal(b, &tok); err != nil || tok.Secret == "" {
		t.Fatalf("token: %v %s", err, b)
	}
	f.token = tok.Secret
	// A revoked token must stay revoked.
	b = admin.must("POST", "/api/v1/tokens", auth.TokenRequest{Name: "old", Scopes: []auth.Scope{{Role: auth.RoleReader, Repositories: []string{"**"}}}}, http.StatusCreated)
	var old auth.CreatedToken
	if err := json.Unmarshal(b, &old); err != nil {
		t.Fatal(err)
	}
	admin.must("DELETE", "/api/v1/tokens/"+old.ID, nil, http.StatusNoContent)

	var imgs []v1.Image
	for i := range 3 {
		img, err := random.Image(int64(2048+i), 2)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		repo := "team/app"
		if i == 2 {
			repo = "other/lib"
		}
		d := ggcrPush(t, srv.Host(), fmt.Sprintf("%s:v1.%d", repo, i), img, au)
		f.manifests[repo] = append(f.manifests[repo], d)
		f.blobs[repo] = append(f.blobs[repo], imageBlobs(t, img)...)
	}
	// latest moves twice: its history has three entries.
	for _, img := range []v1.Image{imgs[0], imgs[1], imgs[0]} {
		ggcrPush(t, srv.Host(), "team/app:latest", img, au)
	}
	f.subject = f.manifests["team/app"][0]
	f.locked = f.manifests["team/app"][1]

	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	ir, _ := name.ParseReference(srv.Host()+"/team/app:index", name.Insecure)
	if err := remote.WriteIndex(ir, idx, remote.WithAuth(au)); err != nil {
		t.Fatalf("push index: %v", err)
	}
	idxDigest, _ := idx.Digest()
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		f.manifests["team/app"] = append(f.manifests["team/app"], digest.Digest(m.Digest.String()))
		child, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		f.blobs["team/app"] = append(f.blobs["team/app"], imageBlobs(t, child)...)
	}
	f.manifests["team/app"] = append(f.manifests["team/app"], digest.Digest(idxDigest.String()))

	// A referrer (an SBOM-like artifact) of the first image.
	ref, err := random.Image(300, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref = mutate.MediaType(ref, types.OCIManifestSchema1)
	ref = mutate.Annotations(ref, map[string]string{"org.example.kind": "sbom"}).(v1.Image)
	rawSubj, err := imgs[0].RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	subjType, err := imgs[0].MediaType()
	if err != nil {
		t.Fatal(err)
	}
	ref = mutate.Subject(ref, v1.Descriptor{MediaType: subjType, Digest: v1.Hash{Algorithm: "sha256", Hex: f.subject.Encoded()}, Size: int64(len(rawSubj))}).(v1.Image)
	rd, err := ref.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ggcrPush(t, srv.Host(), "team/app@"+rd.String(), ref, au)
	f.manifests["team/app"] = append(f.manifests["team/app"], digest.Digest(rd.String()))

	until := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	admin.must("PUT", "/api/v1/retention/team/app/@"+f.locked.String(), map[string]string{"mode": "governance", "retainUntil": until}, http.StatusOK)
	admin.must("PUT", "/api/v1/hold/team/app/@"+f.locked.String(), nil, http.StatusOK)
	admin.must("PUT", "/api/v1/policies/other/**", map[string]any{"immutableTags": []string{"v*"}}, http.StatusOK)
	admin.must("PUT", "/api/v1/policies/other/**", map[string]any{"immutableTags": []string{"v*"}, "noDelete": true}, http.StatusOK)
	admin.must("POST", "/api/v1/audit/checkpoint", nil, http.StatusOK)
	return f
}

// observe reads everything the fixture set from a server, as text that
// must be identical on every faithful copy.
func observe(t *testing.T, base string, f *fixture) map[string]string {
	t.Helper()
	admin := client{t, base, basic("admin", f.adminPass)}
	out := map[string]string{}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	for repo, ds := range f.manifests {
		for _, d := range ds {
			b := admin.must("GET", "/v2/"+repo+"/manifests/"+d.String(), nil, http.StatusOK)
			if digest.FromBytes(b) != d {
				t.Fatalf("manifest %s in %s: served bytes hash to %s", d, repo, digest.FromBytes(b))
			}
			out["manifest "+repo+"@"+d.String()] = sum(b)
		}
		out["tags "+repo] = string(admin.must("GET", "/v2/"+repo+"/tags/list", nil, http.StatusOK))
	}
	for repo, ds := range f.blobs {
		for _, d := range ds {
			b := admin.must("GET", "/v2/"+repo+"/blobs/"+d.String(), nil, http.StatusOK)
			if digest.FromBytes(b) != d {
				t.Fatalf("blob %s in %s: served bytes hash to %s", d, repo, digest.FromBytes(b))
			}
			out["blob "+d.String()] = "ok"
		}
	}
	out["referrers"] = string(admin.must("GET", "/v2/team/app/referrers/"+f.subject.String(), nil, http.StatusOK))
	var hist []struct {
		Digest string `json:"digest"`
	}
	b := admin.must("GET", "/api/v1/tags/team/app/latest/history", nil, http.StatusOK)
	if err := json.Unmarshal(b, &hist); err != nil {
		// The answer may be wrapped in an object.
		var wrapped struct {
			History []struct {
				Digest string `json:"digest"`
			} `json:"history"`
		}
		if err2 := json.Unmarshal(b, &wrapped); err2 != nil {
			t.Fatalf("tag history: %v %s", err, b)
		}
		hist = wrapped.History
	}
	var hs []string
	for _, h := range hist {
		hs = append(hs, h.Digest)
	}
	out["history latest"] = strings.Join(hs, ",")
	out["retention"] = string(admin.must("GET", "/api/v1/retention/team/app/@"+f.locked.String(), nil, http.StatusOK))
	out["policy v1"] = string(admin.must("GET", "/api/v1/policies/other/**?version=1", nil, http.StatusOK))
	out["policy"] = string(admin.must("GET", "/api/v1/policies/other/**", nil, http.StatusOK))
	out["grants"] = string(admin.must("GET", "/api/v1/grants", nil, http.StatusOK))
	out["users"] = string(admin.must("GET", "/api/v1/users", nil, http.StatusOK))
	out["tokens"] = string(admin.must("GET", "/api/v1/tokens", nil, http.StatusOK))
	out["whoami token"] = string(client{t, base, "Bearer " + f.token}.must("GET", "/api/v1/whoami", nil, http.StatusOK))
	out["whoami alice"] = string(client{t, base, basic("alice", f.alicePass)}.must("GET", "/api/v1/whoami", nil, http.StatusOK))
	return out
}

// auditEntries returns the first n audit entries a server serves.
func auditEntries(t *testing.T, base, token string, n int) []tlog.EntryJSON {
	t.Helper()
	c := client{t, base, "Bearer " + token}
	var all []tlog.EntryJSON
	for start := 0; start < n; start += tlog.MaxEntries {
		var r tlog.EntriesResponse
		b := c.must("GET", fmt.Sprintf("/api/v1/audit/entries?start=%d&end=%d", start, min(start+tlog.MaxEntries, n)), nil, http.StatusOK)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r.Entries...)
	}
	return all
}

func auditSize(t *testing.T, base, token string) int {
	t.Helper()
	var r tlog.EntriesResponse
	b := client{t, base, "Bearer " + token}.must("GET", "/api/v1/audit/entries?start=0&end=1", nil, http.StatusOK)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return int(r.Size)
}

// custody runs the custody binary and returns its stdout.
func custody(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("custody %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), err
}

// verifyAudit runs `custody audit verify` against a server, also
// checking that the log extends the checkpoint saved from the source.
func verifyAudit(t *testing.T, base, data, token, since string) {
	t.Helper()
	out, err := custody(t, []string{"CUSTODY_TOKEN=" + token}, "audit", "verify", "--server", base,
		"--key", filepath.Join(data, "log-key.pub"), "--since-checkpoint", since)
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	t.Logf("audit verify: %s", strings.TrimSpace(out))
}

type migrateResult struct {
	migrate.Summary
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func runMigrate(t *testing.T, env []string, from, to string, extra ...string) migrateResult {
	t.Helper()
	out, err := custody(t, env, append([]string{"migrate", "--from", from, "--to", to, "-o", "json"}, extra...)...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var r migrateResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || !r.OK {
		t.Fatalf("migrate -o json: %v %s", err, out)
	}
	return r
}

func diff(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: %s differs:\n source: %s\n target: %s", what, k, want[k], got[k])
		}
	}
}

// TestRoundTrip migrates a filled embedded store to PostgreSQL + S3 and
// back, and checks that a server on each copy serves the same manifests,
// blobs, tags, referrers, history, retention, policies and accounts, and
// an audit log that verifies with the same key and extends the
// checkpoint the source signed.
func TestRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	pg := testserver.NewReplicated(t, "migrate")

	src := testserver.Start(t, testserver.Options{Auth: true})
	f := fill(t, src)
	want := observe(t, src.URL, f)
	if want["history latest"] == "" || strings.Count(want["history latest"], ",") != 2 {
		t.Fatalf("source tag history is %q, want three entries", want["history latest"])
	}
	cp := client{t, src.URL, "Bearer " + f.token}.must("GET", "/api/v1/audit/checkpoint", nil, http.StatusOK)
	since := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.WriteFile(since, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	n := auditSize(t, src.URL, f.token)
	entries := auditEntries(t, src.URL, f.token, n)
	if err := src.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Embedded -> PostgreSQL + S3.
	r := runMigrate(t, pg.CredEnv(), src.Data, pg.Config)
	if r.Blobs.Copied == 0 || r.Manifests.Copied == 0 || r.AuditLeaves.Copied < int64(n) || r.Tokens.Copied != 2 || r.Users.Copied != 3 || r.Locks.Copied != 1 || r.Policies.Copied != 2 || !r.Checkpoint || r.TagMoves < 3 {
		t.Fatalf("summary: %+v", r.Summary)
	}
	// A second run without --resume refuses the non-empty target ...
	if _, err := custody(t, pg.CredEnv(), "migrate", "--from", src.Data, "--to", pg.Config); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("migrate into a non-empty target: %v", err)
	}
	// ... and with it finds nothing left to copy.
	again := runMigrate(t, pg.CredEnv(), src.Data, pg.Config, "--resume")
	if again.Blobs.Copied+again.Manifests.Copied+again.Links.Copied+again.AuditLeaves.Copied+again.Tags.Copied+again.Tokens.Copied+again.Users.Copied+again.Policies.Copied != 0 {
		t.Fatalf("resume of a complete migration copied again: %+v", again.Summary)
	}

	tgt := testserver.Start(t, testserver.Options{Data: pg.Data, Auth: true, Env: pg.Env()})
	diff(t, "postgres+s3", want, observe(t, tgt.URL, f))
	if got := auditEntries(t, tgt.URL, f.token, n); !slices.Equal(got, entries) {
		t.Errorf("audit entries 0..%d differ after migration", n)
	}
	verifyAudit(t, tgt.URL, pg.Data, f.token, since)
	if err := tgt.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// PostgreSQL + S3 -> embedded.
	back := t.TempDir()
	runMigrate(t, pg.CredEnv(), pg.Config, back)
	srv := testserver.Start(t, testserver.Options{Data: back, Auth: true})
	diff(t, "back to embedded", want, observe(t, srv.URL, f))
	if got := auditEntries(t, srv.URL, f.token, n); !slices.Equal(got, entries) {
		t.Errorf("audit entries 0..%d differ after the migration back", n)
	}
	verifyAudit(t, srv.URL, back, f.token, since)
}

// cancelAfter cancels a migration once it has reported enough progress
// in a phase.
type cancelAfter struct {
	phase  string
	after  int64
	cancel context.CancelFunc
	cur    atomic.Value
	n      atomic.Int64
}

func (c *cancelAfter) Phase(name string, total int64, bytes bool) {
	c.cur.Store(name)
	c.n.Store(0)
}

func (c *cancelAfter) Add(n int64) {
	if c.cur.Load() == c.phase && c.n.Add(n) >= c.after {
		c.cancel()
	}
}

func openStore(t *testing.T, cfg config.Config) migrate.Store {
	t.Helper()
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return migrate.Store{Meta: st.Meta, Scrub: st.Scrub, Blobs: st.Blobs, Data: cfg.Data}
}

// TestResume interrupts a migration during the blob copy and again during
// the manifests, then resumes it to completion and checks the copy.
func TestResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	pg := testserver.NewReplicated(t, "migrate")
	for _, kv := range pg.CredEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	srv := testserver.Start(t, testserver.Options{})
	au := authn.Anonymous
	var pushed []digest.Digest
	for i := range 12 {
		img, err := random.Image(64<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		pushed = append(pushed, ggcrPush(t, srv.Host(), fmt.Sprintf("r%d/app:v%d", i%3, i), img, au))
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	scfg := config.Default()
	scfg.Auth.MFA.Roles = nil // passwords alone in these tests
	scfg.Data = srv.Data
	tcfg, err := config.Load(pg.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	from, to := openStore(t, scfg), openStore(t, tcfg)

	for _, stop := range []struct {
		phase string
		after int64
	}{{"blobs", 1 << 20}, {"manifests", 5}} {
		ctx, cancel := context.WithCancel(context.Background())
		rep := &cancelAfter{phase: stop.phase, after: stop.after, cancel: cancel}
		sum, err := migrate.Run(ctx, from, to, migrate.Options{Resume: true, Progress: rep, Workers: 2})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted in %s: err %v, summary %+v", stop.phase, err, sum)
		}
		t.Logf("interrupted in %s: %d blobs, %d manifests copied", stop.phase, sum.Blobs.Copied, sum.Manifests.Copied)
	}
	if _, err := migrate.Run(context.Background(), from, to, migrate.Options{}); !errors.Is(err, migrate.ErrTargetNotEmpty) {
		t.Fatalf("Run into a partly copied target without Resume: %v", err)
	}
	sum, err := migrate.Run(context.Background(), from, to, migrate.Options{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Blobs.Skipped == 0 || sum.Manifests.Skipped == 0 || sum.Blobs.Copied == 0 && sum.Manifests.Copied == 0 {
		t.Fatalf("resume did not continue the interrupted copy: %+v", sum)
	}
	// Everything is there.
	ctx := context.Background()
	n := 0
	if err := from.Blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		n++
		got, err := to.Blobs.Stat(ctx, d)
		if err != nil || got != size {
			return fmt.Errorf("blob %s: %d %v, want %d", d, got, err, size)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, d := range pushed {
		repo := fmt.Sprintf("r%d/app", i%3)
		got, err := to.Meta.ResolveTag(ctx, repo, fmt.Sprintf("v%d", i))
		if err != nil || got != d {
			t.Fatalf("tag v%d in %s: %s %v, want %s", i, repo, got, err, d)
		}
	}
	a, _ := from.Meta.TlogSize(ctx)
	b, _ := to.Meta.TlogSize(ctx)
	if a != b || a == 0 {
		t.Fatalf("audit log: source %d entries, target %d", a, b)
	}
	t.Logf("%d blobs, %d audit entries; resume: %+v", n, b, sum)
}

// TestEmbeddedCopy migrates between two embedded stores (no services
// needed) and checks the copy as TestRoundTrip does; a target whose data
// directory holds another audit key is refused before anything is copied.
func TestEmbeddedCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	src := testserver.Start(t, testserver.Options{Auth: true})
	f := fill(t, src)
	want := observe(t, src.URL, f)
	cp := client{t, src.URL, "Bearer " + f.token}.must("GET", "/api/v1/audit/checkpoint", nil, http.StatusOK)
	since := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.WriteFile(since, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	// While the server runs, its embedded store is locked.
	if _, err := custody(t, nil, "migrate", "--from", src.Data, "--to", t.TempDir()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("migrate from a store a server runs on: %v", err)
	}
	if err := src.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "log-key.pub"), []byte("another key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := custody(t, nil, "migrate", "--from", src.Data, "--to", other); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("migrate into a data directory with another key: %v", err)
	}
	files := 0
	_ = filepath.WalkDir(filepath.Join(other, "blobs"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if files > 0 {
		t.Fatalf("the refused migration copied %d blobs", files)
	}

	dst := t.TempDir()
	r := runMigrate(t, nil, src.Data, dst)
	if r.KeyFiles.Copied < 3 || r.Blobs.Copied == 0 {
		t.Fatalf("summary: %+v", r.Summary)
	}
	srv := testserver.Start(t, testserver.Options{Data: dst, Auth: true})
	diff(t, "embedded copy", want, observe(t, srv.URL, f))
	verifyAudit(t, srv.URL, dst, f.token, since)
}

// TestDiverged refuses to resume into a store that went its own way: its
// audit log is not a prefix of the source's, or its key files differ.
func TestDiverged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	var dirs []string
	for i := range 2 {
		srv := testserver.Start(t, testserver.Options{})
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		ggcrPush(t, srv.Host(), fmt.Sprintf("repo%d/app:v1", i), img, authn.Anonymous)
		if err := srv.Stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, srv.Data)
	}
	open := func(dir string) migrate.Store {
		cfg := config.Default()
		cfg.Auth.MFA.Roles = nil // passwords alone in these tests
		cfg.Data = dir
		return openStore(t, cfg)
	}
	from, to := open(dirs[0]), open(dirs[1])
	if _, err := migrate.Run(context.Background(), from, to, migrate.Options{Resume: true}); !errors.Is(err, migrate.ErrDiverged) || !strings.Contains(err.Error(), "log-key") {
		t.Fatalf("resume into a store with other keys: %v", err)
	}
	to.Data = "" // leave the key files out: the audit logs differ
	_, err := migrate.Run(context.Background(), from, to, migrate.Options{Resume: true})
	if !errors.Is(err, migrate.ErrDiverged) || !strings.Contains(err.Error(), "audit log entry 0 differs") {
		t.Fatalf("resume into a store with another audit log: %v", err)
	}
	// Nothing was copied before the refusal.
	if tags, err := to.Meta.Tags(context.Background(), "repo0/app", "", 10); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("repo0/app in the refused target: %v %v", tags, err)
	}
}
