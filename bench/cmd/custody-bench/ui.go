package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/bench"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/tlog"
)

// The ui-* rows: the server-side render time of the web interface's
// heaviest pages on a custody holding 10,000 repositories and 100,000
// audit entries. The data directory is seeded once per harness run
// (seedUI) and every run of every row starts a fresh custody serve on it
// (authentication on), signs in as admin, requests the page once to warm
// up, then times uiRequests requests one after another (at least
// uiMinRequests, and no more once uiRunBudget has passed). A sample is the
// run's median in ms, and its 90th percentile is kept beside it. Time is
// taken by the client on loopback: handler, in-process API calls, the
// store and rendering, plus a loopback round trip. No other registry has
// these pages, so the peer column holds the 100 ms target instead.
const (
	uiRepos        = 10_000
	uiAuditEntries = 100_000
	uiHeavyTags    = 300
	uiUsers        = 200
	// uiPromoted is how many of uiHeavy's digests are promoted through
	// dev, staging and prod in turn (signed promotions, with history).
	uiPromoted = 30
	// uiKeyPassword is the passphrase of the seeded server signing key
	// (the trust root the Artifact page verifies against).
	uiKeyPassword = "bench-key-passphrase"
	uiRequests    = 21
	// A run stops after uiMinRequests requests once it took uiRunBudget.
	uiMinRequests = 5
	uiRunBudget   = 5 * time.Second
	// uiTarget is the median render time every page must stay under.
	uiTarget = 100
	// uiHeavy is the repository with uiHeavyTags tags.
	uiHeavy = "team-00042/app"
	// uiRareAction is the action of the one audit entry that has it.
	uiRareAction = "legalhold.set"
)

// uiAuditStart is the time of the first seeded audit entry; entries are
// uiAuditStep apart (100,000 entries span about 100 days).
var (
	uiAuditStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	uiAuditStep  = 86 * time.Second
)

// uiPages are the rows and the page each requests ("{digest}" is the heavy
// repository's first tag's digest).
var uiPages = []struct{ row, path string }{
	{"ui-repositories", "/repositories"},
	{"ui-repositories-search", "/repositories?q=team-0421"},
	{"ui-repositories-deep", "/repositories?after=" + url.QueryEscape("team-09000/app")},
	{"ui-repository-tags", "/repositories/" + uiHeavy},
	{"ui-artifact", "/artifacts/" + uiHeavy + "@{digest}"},
	{"ui-environments", "/environments"},
	{"ui-environments-at", "/environments?at=2026-02-01T12:00:00"},
	{"ui-audit", "/audit"},
	{"ui-audit-actor", "/audit?actor=ci-07"},
	{"ui-audit-action", "/audit?action=tag.set"},
	{"ui-audit-repo", "/audit?repo=" + url.QueryEscape("team-05000/app")},
	{"ui-audit-time", "/audit?since=2026-02-10T00:00:00Z&until=2026-02-11T00:00:00Z"},
	{"ui-audit-rare", "/audit?action=" + uiRareAction},
	{"ui-evidence", "/evidence"},
	{"ui-admin-users", "/admin/users"},
}

func uiRows() []string {
	var rows []string
	for _, p := range uiPages {
		rows = append(rows, p.row)
	}
	return rows
}

// uiSeed is the seeded data directory, shared by every ui-* run.
type uiSeed struct {
	dir, data, config, admin string
	digest                   string
	digests                  []string // uiHeavy's tags' digests
}

func (h *harness) measureUI(row, target string) (sample, error) {
	if target == targetReference {
		return sample{unit: "ms", value: uiTarget, p90: uiTarget}, nil
	}
	i := slices.IndexFunc(uiPages, func(p struct{ row, path string }) bool { return p.row == row })
	if i < 0 {
		return sample{}, fmt.Errorf("unknown row %q", row)
	}
	if h.ui == nil {
		seed, err := h.seedUI()
		if err != nil {
			return sample{}, fmt.Errorf("seeding the ui rows: %w", err)
		}
		h.ui = seed
	}
	srv, err := h.startUI()
	if err != nil {
		return sample{}, err
	}
	defer srv.stop()
	c, err := uiSignIn(h.ctx, srv.addr, h.ui.admin)
	if err != nil {
		return sample{}, err
	}
	path := strings.ReplaceAll(uiPages[i].path, "{digest}", h.ui.digest)
	get := func() (time.Duration, error) {
		req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, "http://"+srv.addr+path, nil)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return d, err
	}
	if _, err := get(); err != nil { // warm-up: templates, connections, page cache
		return sample{}, err
	}
	cpu0 := srv.cpuSeconds()
	var ms []float64
	start := time.Now()
	for i := range uiRequests {
		if i >= uiMinRequests && time.Since(start) > uiRunBudget {
			break // a page far over the target: enough to say by how much
		}
		d, err := get()
		if err != nil {
			return sample{}, err
		}
		ms = append(ms, float64(d.Microseconds())/1000)
	}
	s := sample{unit: "ms", ops: len(ms), seconds: time.Since(start).Seconds(), value: median(ms), p90: percentile(ms, 0.9)}
	s.cpu = math.Round((srv.cpuSeconds()-cpu0)*100) / 100
	rss, err := srv.peakRSS()
	if err != nil {
		return s, err
	}
	s.rssMiB = float64(rss) / (1 << 20)
	return s, nil
}

// percentile returns the p-quantile of xs (nearest rank).
func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(math.Ceil(p*float64(len(s))))-1]
}

// startUI starts custody serve with authentication on, on the seeded data.
func (h *harness) startUI() (*server, error) {
	ready := filepath.Join(h.ui.dir, "ready")
	_ = os.Remove(ready)
	s, err := h.spawn(h.ui.dir, "custody.log", h.custodyBin,
		[]string{"serve", "--addr", "127.0.0.1:0", "--data", h.ui.data, "--log-level", "error", "--config", h.ui.config},
		[]string{"CUSTODY_READY_FILE=" + ready, "CUSTODY_KEY_PASSWORD=" + uiKeyPassword})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			s.addr = strings.TrimSpace(string(b))
			break
		}
		if err := h.waitTick(s, deadline, h.ui.dir, "custody.log"); err != nil {
			return nil, err
		}
	}
	return s, h.waitHTTP(s, "/healthz", deadline, h.ui.dir, "custody.log")
}

// seedUI fills a data directory: 10,000 repositories and 100,000 audit
// entries written straight into the metadata store (the SQLite file
// custody serve opens, through its own store and audit log code, before
// any server runs), then through a running custody: uiHeavyTags tagged
// manifests pushed to uiHeavy and uiUsers users created with the API.
func (h *harness) seedUI() (*uiSeed, error) {
	u := &uiSeed{dir: filepath.Join(h.work, "ui")}
	u.data = filepath.Join(u.dir, "data")
	u.config = filepath.Join(u.dir, "custody.yaml")
	if err := os.MkdirAll(u.data, 0o700); err != nil {
		return nil, err
	}
	// One project over every repository: the Environments overview asks
	// for each environment of it.
	cfg := "projects:\n  - name: teams\n    repositories: \"team-*/**\"\n    environments:\n      - name: dev\n      - name: staging\n      - name: prod\n"
	if err := os.WriteFile(u.config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	ring, err := key.Open(filepath.Join(u.data, "keys"))
	if err != nil {
		return nil, err
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte(uiKeyPassword)); err != nil {
		return nil, err
	}
	start := time.Now()
	st, err := sqlite.Open(filepath.Join(u.data, "meta.db"))
	if err != nil {
		return nil, err
	}
	empty := digest.FromString("")
	for i := range uiRepos {
		if err := st.LinkBlob(h.ctx, fmt.Sprintf("team-%05d/app", i), empty, 0); err != nil {
			st.Close()
			return nil, err
		}
	}
	logf("ui: %d repositories in %.1fs", uiRepos, time.Since(start).Seconds())
	start = time.Now()
	if err := seedAudit(h.ctx, st, u.data); err != nil {
		st.Close()
		return nil, err
	}
	st.Close()
	logf("ui: %d audit entries in %.1fs", uiAuditEntries, time.Since(start).Seconds())

	// Pushes through the registry API, without authentication (loopback).
	start = time.Now()
	srv, err := h.startCustody(u.dir, u.data) // no projects: they need authentication
	if err != nil {
		return nil, err
	}
	cl, err := bench.NewClient(h.ctx, srv.addr, nil)
	if err == nil {
		err = cl.Warm(uiHeavy)
	}
	for i := 0; err == nil && i < uiHeavyTags; i++ {
		m := bench.RawManifest(bench.ArtifactManifest("ui", i))
		u.digests = append(u.digests, m.Digest().String())
		err = cl.PutManifest(uiHeavy, fmt.Sprintf("1.0.%d", i), m)
	}
	srv.stop()
	if err != nil {
		return nil, err
	}
	u.digest = u.digests[0]
	logf("ui: %d tags pushed in %.1fs", uiHeavyTags, time.Since(start).Seconds())

	// Users through the account API, as admin (authentication on).
	h.ui = u
	defer func() { h.ui = nil }()
	if srv, err = h.startUI(); err != nil {
		return nil, err
	}
	defer srv.stop()
	pw, err := os.ReadFile(filepath.Join(u.data, "admin-password"))
	if err != nil {
		return nil, err
	}
	u.admin = strings.TrimSpace(string(pw))
	post := func(path, body string, want int) error {
		return send(h.ctx, http.MethodPost, "http://"+srv.addr+path, []byte(body), want, "POST "+path+" "+body, func(r *http.Request) {
			r.SetBasicAuth("admin", u.admin)
			r.Header.Set("Content-Type", "application/json")
		})
	}
	start = time.Now()
	for i := range uiUsers {
		if err := post("/api/v1/users", fmt.Sprintf(`{"name":"user-%03d","groups":["team-%d"]}`, i, i%10), http.StatusCreated); err != nil {
			return nil, err
		}
	}
	for i := range uiPromoted {
		for _, env := range []string{"dev", "staging", "prod"} {
			body := fmt.Sprintf(`{"repository":%q,"digest":%q,"environment":%q,"reason":"release %d"}`, uiHeavy, u.digests[i], env, i)
			if err := post("/api/v1/promotions", body, http.StatusOK); err != nil {
				return nil, err
			}
		}
	}
	logf("ui: %d users and %d promotions in %.1fs", uiUsers, 3*uiPromoted, time.Since(start).Seconds())
	return u, nil
}

// seedAudit appends uiAuditEntries entries to the audit log in the store
// with the key custody serve will load from data: 20 actors, 7 actions,
// every repository 10 times, uiAuditStep apart, and one entry whose action
// is found nowhere else (uiRareAction).
func seedAudit(ctx context.Context, st *sqlite.Store, data string) error {
	signer, vkey, err := tlog.LoadOrCreateKey(data, config.Default().Audit.Origin)
	if err != nil {
		return err
	}
	l, err := tlog.Open(ctx, st, tlog.Options{Signer: signer, VerifierKey: vkey, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer l.Close()
	actions := []string{"blob.put", "manifest.put", "tag.set", "manifest.put", "blob.put", "tag.delete", "token.create"}
	batch := make([]tlog.Entry, 0, 1000)
	for i := range uiAuditEntries {
		e := tlog.Entry{
			Action: actions[i%len(actions)], Actor: fmt.Sprintf("ci-%02d", i%20), Auth: "token", Result: "ok",
			Repo: fmt.Sprintf("team-%05d/app", i%uiRepos), Digest: fmt.Sprintf("sha256:%064x", i), Client: "10.0.0.1:40000",
			RequestID: fmt.Sprintf("%016x", i), Time: tlog.FormatTime(uiAuditStart.Add(time.Duration(i) * uiAuditStep)),
		}
		if i == uiAuditEntries/3 {
			e.Action = uiRareAction
		}
		if batch = append(batch, e); len(batch) == cap(batch) || i == uiAuditEntries-1 {
			if err := l.Append(batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	l.Flush()
	_, err = l.Checkpoint(ctx)
	return err
}

// uiSignIn signs in as admin through the sign-in form and returns a client
// holding the session cookie.
func uiSignIn(ctx context.Context, addr, password string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"username": {"admin"}, "password": {password}, "next": {"/repositories"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/signin", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("sign-in: %s", resp.Status)
	}
	return c, nil
}
