// Package vulnhttp serves the offline vulnerability database: import,
// status, scans, and the re-evaluation of what is promoted after each
// import; and it supplies promotion gates with the database's findings.
package vulnhttp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/metrics"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
	"github.com/custody-dev/custody/internal/repopattern"
	"github.com/custody-dev/custody/internal/vuln"
)

// maxVulnUpload caps an uploaded OSV export (osv.dev's all.zip per
// ecosystem is tens of MiB).
const maxVulnUpload = 2 << 30

// Handler serves the offline vulnerability database (docs/promotion.md):
//
//	POST /api/v1/vulndb          an OSV .zip export or advisory .json (admin)
//	GET  /api/v1/vulndb          revision, last update, advisories
//	GET  /api/v1/violations      promoted artifacts whose gate no longer holds
//	POST /api/v1/scan            attach a vulnerability-scan attestation
//
// After each import it re-evaluates every artifact promoted to an
// environment.
type Handler struct {
	db    *vuln.DB
	dir   string
	authz *auth.Service
	audit audit.Auditor
	log   *slog.Logger
	promo *promotionhttp.Handler
	md    meta.Store
	gauge *metrics.GaugeVec

	mu         sync.Mutex
	violations []Violation
	checked    time.Time
}

// Options is everything the vulnerability endpoints need.
type Options struct {
	DB    *vuln.DB
	Dir   string // where uploads are staged
	Authz *auth.Service
	Audit audit.Auditor
	Log   *slog.Logger
	// Promo serves the promotion API whose environments are
	// re-evaluated, and whose service gathers and attests for scans.
	Promo   *promotionhttp.Handler
	Meta    meta.Store
	Metrics *metrics.Registry
}

// New builds the handler; it registers its metric with o.Metrics.
func New(o Options) *Handler {
	v := &Handler{db: o.DB, dir: o.Dir, authz: o.Authz, audit: o.Audit, log: o.Log, promo: o.Promo, md: o.Meta,
		gauge: metrics.NewGaugeVec(metrics.Opts{
			Name: "custody_promoted_violations",
			Help: "Artifacts currently promoted to an environment whose gate no longer holds, by environment (after the last vulnerability database update).",
		}, []string{"environment"})}
	o.Metrics.MustRegister(v.gauge)
	return v
}

// Violation is a promoted artifact whose environment's gate fails now.
type Violation struct {
	Repository  string            `json:"repository"`
	Environment string            `json:"environment"`
	Digest      string            `json:"digest"`
	Failed      []gate.RuleResult `json:"failed"`
}

// Register mounts the vulnerability endpoints on mux.
func (v *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/vulndb", v.importDB)
	mux.HandleFunc("GET /api/v1/vulndb", v.status)
	mux.HandleFunc("GET /api/v1/violations", v.listViolations)
	mux.HandleFunc("POST /api/v1/scan", v.scan)
}

// ScanResult is the predicate of the vulnerability-scan attestation custody
// writes (https://in-toto.io/attestation/vulns/v0.2 shape).
type ScanResult struct {
	Scanner struct {
		URI     string `json:"uri"`
		Version string `json:"version"`
		DB      struct {
			URI        string    `json:"uri"`
			Version    string    `json:"version"`
			LastUpdate time.Time `json:"lastUpdate,omitzero"`
		} `json:"db"`
		Result []ScanEntry `json:"result"`
	} `json:"scanner"`
	Metadata struct {
		ScanStartedOn  time.Time `json:"scanStartedOn"`
		ScanFinishedOn time.Time `json:"scanFinishedOn"`
	} `json:"metadata"`
}

// ScanEntry is one finding of a scan.
type ScanEntry struct {
	ID       string         `json:"id"`
	Severity []ScanSeverity `json:"severity"`
	Package  string         `json:"package"`
	Version  string         `json:"version"`
	Fixed    string         `json:"fixed,omitempty"`
	Waived   bool           `json:"waived,omitempty"`
}

// ScanSeverity is a rating of a finding.
type ScanSeverity struct {
	Method string `json:"method"`
	Score  string `json:"score"`
}

// scan handles POST /api/v1/scan {"repository","digest"}: it matches the
// artifact's verified SBOMs against the database, attaches the result as a
// vulnerability-scan attestation signed by the server, and returns it.
func (v *Handler) scan(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Repository string `json:"repository"`
		Digest     string `json:"digest"`
	}
	if !promotionhttp.DecodeJSON(w, r, &req) || !promotionhttp.ValidArtifact(w, req.Repository, req.Digest) {
		return
	}
	r, _, ok := v.authz.Require(w, r, "scan", req.Repository, auth.PermPush)
	if !ok {
		return
	}
	if v.promo == nil {
		problem.Write(w, problem.NoProjects, "scanning needs the server's signing key and projects configured (docs/promotion.md)")
		return
	}
	var res ScanResult
	res.Metadata.ScanStartedOn = time.Now().UTC()
	f, err := v.promo.Service().Gather(r.Context(), req.Repository, req.Digest)
	if err != nil {
		v.promo.LookupError(w, r, err)
		return
	}
	res.Metadata.ScanFinishedOn = time.Now().UTC()
	res.Scanner.URI, res.Scanner.Version = "https://custody.dev/scanner", "1"
	rev, _ := v.db.Revision(r.Context())
	res.Scanner.DB.URI, res.Scanner.DB.Version = "osv", fmt.Sprint(rev)
	res.Scanner.DB.LastUpdate, _ = v.db.UpdatedAt(r.Context())
	res.Scanner.Result = []ScanEntry{}
	for _, fi := range f.Input.Findings {
		e := ScanEntry{ID: fi.ID, Package: fi.Package, Version: fi.Version, Fixed: fi.Fixed, Waived: fi.Waived,
			Severity: []ScanSeverity{{Method: "custody", Score: fi.Severity}}}
		if fi.Score > 0 {
			e.Severity = append(e.Severity, ScanSeverity{Method: "CVSSv3", Score: fmt.Sprint(fi.Score)})
		}
		res.Scanner.Result = append(res.Scanner.Result, e)
	}
	if err := v.promo.Service().Attest(r.Context(), req.Repository, req.Digest, "https://in-toto.io/attestation/vulns/v0.2", res); err != nil {
		problem.Fail(w, r, v.log, "attaching the scan failed", err)
		return
	}
	v.audit.Record(r.Context(), audit.Event{Action: "scan", Repo: req.Repository, Digest: digest.Digest(req.Digest), Result: "ok",
		Reason: fmt.Sprintf("%d findings, database revision %d", len(res.Scanner.Result), rev), Request: r})
	problem.JSON(w, http.StatusOK, res)
}

// VulnDBStatus is the answer of GET /api/v1/vulndb.
type VulnDBStatus struct {
	Revision   int64       `json:"revision"`
	UpdatedAt  time.Time   `json:"updatedAt,omitzero"`
	Advisories int         `json:"advisories"`
	Checked    time.Time   `json:"violationsChecked,omitzero"`
	Violations int         `json:"violations"`
	Import     *vuln.Stats `json:"import,omitempty"`
}

func (v *Handler) statusOf(ctx context.Context) (VulnDBStatus, error) {
	var st VulnDBStatus
	var err error
	if st.Revision, err = v.db.Revision(ctx); err != nil {
		return st, err
	}
	st.UpdatedAt, _ = v.db.UpdatedAt(ctx)
	st.Advisories, _ = v.db.Count(ctx)
	v.mu.Lock()
	st.Checked, st.Violations = v.checked, len(v.violations)
	v.mu.Unlock()
	return st, nil
}

func (v *Handler) status(w http.ResponseWriter, r *http.Request) {
	r, _, ok := v.authz.Require(w, r, "vulndb.read", "", 0)
	if !ok {
		return
	}
	st, err := v.statusOf(r.Context())
	if err != nil {
		problem.Fail(w, r, v.log, "reading the vulnerability database failed", err)
		return
	}
	problem.JSON(w, http.StatusOK, st)
}

func (v *Handler) importDB(w http.ResponseWriter, r *http.Request) {
	r, _, ok := v.authz.Require(w, r, "vulndb.import", "", auth.PermAdmin)
	if !ok {
		return
	}
	tmp, err := os.CreateTemp(v.dir, "vulndb-upload-*")
	if err != nil {
		problem.Fail(w, r, v.log, "storing the vulnerability upload failed", err)
		return
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, http.MaxBytesReader(w, r.Body, maxVulnUpload))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if k, refused := problem.From(err); refused {
		problem.Write(w, k, err.Error())
		return
	}
	if err != nil {
		problem.Fail(w, r, v.log, "storing the vulnerability upload failed", err)
		return
	}
	if n == 0 {
		problem.Write(w, problem.InvalidUpload, "send an OSV .zip export or advisory .json as the body")
		return
	}
	name := tmp.Name()
	if r.Header.Get("Content-Type") == "application/zip" {
		if err := os.Rename(name, name+".zip"); err == nil {
			name += ".zip"
			defer os.Remove(name)
		}
	} else if err := os.Rename(name, name+".json"); err == nil {
		name += ".json"
		defer os.Remove(name)
	}
	stats, err := v.db.Import(r.Context(), name)
	ev := audit.Event{Action: "vulndb.import", Request: r}
	if err != nil {
		ev.Result, ev.Reason = "invalid", err.Error()
		v.audit.Record(r.Context(), ev)
		problem.Write(w, problem.InvalidUpload, err.Error())
		return
	}
	ev.Result, ev.Reason = "ok", fmt.Sprintf("%+v", stats)
	v.audit.Record(r.Context(), ev)
	// Re-evaluate what is promoted, against the new database.
	if err := v.reevaluate(r.Context()); err != nil {
		v.log.Error("re-evaluating promoted artifacts failed", "err", err)
	}
	st, _ := v.statusOf(r.Context())
	st.Import = &stats
	problem.JSON(w, http.StatusOK, st)
}

// reevaluate runs every environment's gate on the digest it runs now.
func (v *Handler) reevaluate(ctx context.Context) error {
	if v.promo == nil {
		return nil
	}
	var out []Violation
	counts := map[string]int{}
	last := ""
	for {
		repos, err := v.md.Repositories(ctx, last, 1000)
		if err != nil {
			return err
		}
		for _, repo := range repos {
			for _, p := range v.promo.Service().Projects {
				if !repopattern.Match(p.Repositories, repo) {
					continue
				}
				for _, e := range p.Environments {
					counts[e.Name] += 0
					cur, err := v.promo.Service().Current(ctx, repo, e.Name)
					if err != nil || cur == "" {
						continue
					}
					res, _, err := v.promo.Service().Evaluate(ctx, repo, cur, e.Name)
					if err != nil || res.Pass {
						continue
					}
					out = append(out, Violation{Repository: repo, Environment: e.Name, Digest: cur, Failed: res.Failed()})
					counts[e.Name]++
					v.audit.Record(ctx, audit.Event{Action: "gate.violation", Repo: repo, Digest: digest.Digest(cur), Tag: e.Name, Result: "denied",
						Reason: "after the vulnerability database update the gate of " + e.Name + " fails"})
				}
			}
		}
		if len(repos) < 1000 {
			break
		}
		last = repos[len(repos)-1]
	}
	v.mu.Lock()
	v.violations, v.checked = out, time.Now().UTC()
	v.mu.Unlock()
	for env, n := range counts {
		v.gauge.WithLabelValues(env).Set(float64(n))
	}
	return nil
}

func (v *Handler) listViolations(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := v.authz.Require(w, r, "violations.read", "", 0); !ok {
		return
	}
	v.mu.Lock()
	out := append([]Violation{}, v.violations...)
	v.mu.Unlock()
	problem.JSON(w, http.StatusOK, out)
}
