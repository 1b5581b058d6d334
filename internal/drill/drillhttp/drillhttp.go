// Package drillhttp records restoration drills (internal/drill): the
// drill-report attestation the server signs and attaches to every drilled
// artifact, one audit entry per artifact, the metric of each
// environment's last successful drill, and the drills the configuration
// schedules.
//
//	POST /api/v1/drills                          record a drill report (promoter on every repository)
//	GET  /api/v1/drills?environment=E[&project=P] the last drill and the last successful one (reader)
package drillhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/drill"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/jsondoc"
	"github.com/custody-dev/custody/internal/metrics"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/tlog"
)

// Record is the predicate of a drill-report attestation
// (drill.PredicateDrill), attached to every artifact the drill rebuilt.
type Record struct {
	Project     string           `json:"project"`
	Environment string           `json:"environment"`
	At          time.Time        `json:"at,omitzero"`
	Source      string           `json:"source"`
	Into        string           `json:"into"`
	By          string           `json:"drilledBy"`
	Started     time.Time        `json:"started"`
	Seconds     float64          `json:"seconds"`
	Artifacts   []drill.Artifact `json:"artifacts"`
	Missing     []string         `json:"missing"`
	OK          bool             `json:"ok"`
	RecordedAt  time.Time        `json:"recordedAt"`
}

// Last is what the server knows of an environment's drills.
type Last struct {
	Project     string    `json:"project"`
	Environment string    `json:"environment"`
	Last        time.Time `json:"last,omitzero"`
	LastOK      bool      `json:"lastOK"`
	// Success is the time of the last successful drill (zero: none).
	Success time.Time `json:"lastSuccess,omitzero"`
}

// MaxReport caps a drill report's JSON; MaxField its source and target
// names, which the audit entries repeat.
const (
	MaxReport = 4 << 20
	MaxField  = 4096
)

// Handler records drills.
type Handler struct {
	svc   *promotion.Service
	authz *auth.Service
	audit audit.Auditor
	log   *slog.Logger
	now   func() time.Time

	mu    sync.Mutex
	lasts map[[2]string]*Last
	gauge *metrics.GaugeVec
	total *metrics.CounterVec
}

// Options build a Handler.
type Options struct {
	Promotion *promotion.Service
	Authz     *auth.Service
	Audit     audit.Auditor
	Log       *slog.Logger
	Metrics   *metrics.Registry
	Now       func() time.Time
}

// New returns the drill recorder; nil when no project is configured.
func New(o Options) *Handler {
	if o.Promotion == nil {
		return nil
	}
	h := &Handler{svc: o.Promotion, authz: o.Authz, audit: o.Audit, log: o.Log, now: o.Now, lasts: map[[2]string]*Last{},
		gauge: metrics.NewGaugeVec(metrics.Opts{
			Name: "custody_environment_last_drill_timestamp_seconds",
			Help: "Unix time of the last successful restoration drill of each environment (custody drill).",
		}, []string{"project", "environment"}),
		total: metrics.NewCounterVec(metrics.Opts{
			Name: "custody_drills_total",
			Help: "Restoration drills recorded, by result (ok, failed).",
		}, []string{"project", "environment", "result"}),
	}
	if h.now == nil {
		h.now = time.Now
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(h.gauge, h.total)
	}
	return h
}

// Register mounts the drill API.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/drills", h.record)
	mux.HandleFunc("GET /api/v1/drills", h.get)
}

// ProjectOf names the project of repo (its repositories pattern).
func (h *Handler) ProjectOf(repo, env string) (string, error) {
	p, i, err := h.svc.Lookup(repo, env)
	if err != nil {
		return "", err
	}
	if i < 0 {
		return "", fmt.Errorf("%w %q", promotion.ErrNoEnv, env)
	}
	return p.Title(), nil
}

// ErrInvalid wraps the reasons a drill report is refused.
var ErrInvalid = errors.New("invalid drill report")

// check validates a report's artifacts and returns its project.
func (h *Handler) check(ctx context.Context, rep *drill.Report) (string, error) {
	if rep.Environment == "" || len(rep.Artifacts) == 0 {
		return "", fmt.Errorf("%w: it names no environment or no artifact", ErrInvalid)
	}
	if len(rep.Into) > MaxField || len(rep.Source) > MaxField {
		return "", fmt.Errorf("%w: source or into longer than %d bytes", ErrInvalid, MaxField)
	}
	project := ""
	for _, a := range rep.Artifacts {
		if !registry.ValidName(a.Repository) {
			return "", fmt.Errorf("%w: repository %q", ErrInvalid, a.Repository)
		}
		if _, err := digest.Parse(a.Digest); err != nil {
			return "", fmt.Errorf("%w: digest %q: %v", ErrInvalid, a.Digest, err)
		}
		p, err := h.ProjectOf(a.Repository, rep.Environment)
		if err != nil {
			return "", err
		}
		if project != "" && p != project {
			return "", fmt.Errorf("%w: its repositories belong to projects %s and %s", ErrInvalid, project, p)
		}
		project = p
	}
	// The report must cover exactly what ran then: the digests the
	// signed promotion records name (promotion.EnvironmentAt).
	if rep.At.IsZero() {
		return "", fmt.Errorf("%w: it names no instant (at)", ErrInvalid)
	}
	deps, err := h.svc.EnvironmentAt(ctx, project, rep.Environment, rep.At)
	if err != nil {
		return "", err
	}
	var want, got []string
	for _, d := range deps {
		if d.Digest != "" {
			want = append(want, d.Repository+"@"+d.Digest)
		}
	}
	for _, a := range rep.Artifacts {
		got = append(got, a.Repository+"@"+a.Digest)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		var left, extra []string
		for _, w := range want {
			if !slices.Contains(got, w) {
				left = append(left, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				extra = append(extra, g)
			}
		}
		return "", fmt.Errorf("%w: it does not cover what %s ran at %s: leaves out [%s], adds [%s]", ErrInvalid,
			rep.Environment, rep.At.UTC().Format(time.RFC3339), firstFew(left), firstFew(extra))
	}
	return project, nil
}

// Save signs the report's record, attaches it to every drilled artifact,
// audits one entry per artifact and updates the metric. by is who ran
// the drill.
func (h *Handler) Save(ctx context.Context, rep *drill.Report, by string, r *http.Request) (Record, error) {
	project, err := h.check(ctx, rep)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Project: project, Environment: rep.Environment, At: rep.At, Source: rep.Source, Into: rep.Into, By: by,
		Started: rep.Started, Seconds: rep.Seconds, Missing: rep.Missing, OK: rep.OK && len(rep.Missing) == 0, RecordedAt: h.now().UTC()}
	if rec.Missing == nil {
		rec.Missing = []string{}
	}
	for _, a := range rep.Artifacts {
		rec.Artifacts = append(rec.Artifacts, drill.Artifact{Repository: a.Repository, Digest: a.Digest})
	}
	result := "ok"
	if !rec.OK {
		result = "failed"
	}
	reason := fmt.Sprintf("drill of %s in project %s into %s: %s, %d artifact(s), %d missing, %.1fs", rec.Environment, project, rec.Into, result, len(rec.Artifacts), len(rec.Missing), rec.Seconds)
	var events []audit.Event
	for _, a := range rec.Artifacts {
		if err := h.svc.Attest(ctx, a.Repository, a.Digest, drill.PredicateDrill, rec); err != nil {
			return Record{}, fmt.Errorf("attaching the drill report to %s@%s: %w", a.Repository, a.Digest, err)
		}
		events = append(events, audit.Event{Action: "drill", Repo: a.Repository, Digest: digest.Digest(a.Digest), Tag: rec.Environment, Result: result, Reason: reason, Request: r})
	}
	if err := audit.RecordChange(ctx, h.audit, events...); err != nil {
		return Record{}, err
	}
	h.note(project, rec.Environment, rec.RecordedAt, rec.OK)
	return rec, nil
}

// firstFew joins at most five of list, saying how many more there are.
func firstFew(list []string) string {
	if len(list) <= 5 {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:5], ", ") + fmt.Sprintf(" and %d more", len(list)-5)
}

// note remembers a drill of project/env at t and counts it.
func (h *Handler) note(project, env string, t time.Time, ok bool) {
	h.remember(project, env, t, ok)
	result := "failed"
	if ok {
		result = "ok"
	}
	h.total.WithLabelValues(project, env, result).Inc()
}

// remember keeps the last drill and the last successful one of
// project/env, and sets the metric of the latter.
func (h *Handler) remember(project, env string, t time.Time, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]string{project, env}
	l := h.lasts[k]
	if l == nil {
		l = &Last{Project: project, Environment: env}
		h.lasts[k] = l
	}
	if t.After(l.Last) {
		l.Last, l.LastOK = t, ok
	}
	if ok && t.After(l.Success) {
		l.Success = t
		h.gauge.WithLabelValues(project, env).Set(float64(t.UnixNano()) / 1e9)
	}
}

// LastOf returns what the server knows of env's drills in project.
func (h *Handler) LastOf(project, env string) Last {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.lasts[[2]string{project, env}]; l != nil {
		return *l
	}
	return Last{Project: project, Environment: env}
}

// Warm reads the drill entries of the audit log (from its start, in
// chunks), so the metric and custody env know the drills recorded before
// the server started.
func (h *Handler) Warm(ctx context.Context, l *tlog.Log) {
	size := l.Size()
	const chunk = 4096
	for start := uint64(0); start < size; start += chunk {
		leaves, err := l.Leaves(ctx, start, min(start+chunk, size))
		if err != nil {
			h.log.Warn("reading the audit log for past drills failed", "err", err)
			return
		}
		for _, lf := range leaves {
			if !strings.Contains(string(lf.Entry), `"action":"drill"`) {
				continue
			}
			e, err := tlog.ParseEntry(lf.Entry)
			if err != nil || e.Action != "drill" || (e.Result != "ok" && e.Result != "failed") {
				continue
			}
			t, err := time.Parse(tlog.TimeFormat, e.Time)
			if err != nil {
				continue
			}
			project, err := h.ProjectOf(e.Repo, e.Tag)
			if err != nil {
				continue // no longer configured
			}
			h.remember(project, e.Tag, t, e.Result == "ok")
		}
	}
}

func (h *Handler) record(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReport))
	var rep drill.Report
	if err == nil {
		err = jsondoc.UnmarshalStrict(b, &rep)
	}
	if err != nil {
		problem.Write(w, problem.InvalidBody, "malformed drill report: "+err.Error())
		return
	}
	if len(rep.Artifacts) == 0 {
		problem.Write(w, problem.Invalid, "the drill report names no artifact")
		return
	}
	r, pr, ok := h.authz.Require(w, r, "drill", rep.Artifacts[0].Repository, auth.PermMoveTag)
	if !ok {
		return
	}
	for _, a := range rep.Artifacts[1:] {
		if !pr.Can(a.Repository, auth.PermMoveTag) {
			h.audit.Record(r.Context(), audit.Event{Action: "drill", Repo: a.Repository, Result: "denied", Reason: "recording a drill needs the promoter role on every repository", Request: r})
			problem.Write(w, problem.Denied, "recording a drill needs the move-tag permission (promoter) on "+a.Repository)
			return
		}
	}
	rec, err := h.Save(r.Context(), &rep, pr.Subject, r)
	switch {
	case err == nil:
		problem.JSON(w, http.StatusCreated, rec)
	case errors.Is(err, ErrInvalid):
		h.audit.Record(r.Context(), audit.Event{Action: "drill", Repo: rep.Artifacts[0].Repository, Tag: rep.Environment, Result: "invalid", Reason: err.Error(), Request: r})
		problem.Write(w, problem.Invalid, err.Error())
	case errors.Is(err, promotion.ErrNoProject), errors.Is(err, promotion.ErrNoEnv):
		problem.Write(w, problem.NotFound, err.Error())
	default:
		problem.Fail(w, r, h.log, "recording the drill failed", err)
	}
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	env, project := q.Get("environment"), q.Get("project")
	if env == "" {
		problem.Write(w, problem.Invalid, "give ?environment=ENV[&project=P]")
		return
	}
	if _, _, ok := h.authz.Require(w, r, "drill.read", "", 0); !ok {
		return
	}
	p, err := h.svc.ProjectNamed(project)
	if errors.Is(err, promotion.ErrWhichProject) {
		problem.Write(w, problem.Invalid, err.Error())
		return
	}
	if err != nil {
		problem.Write(w, problem.NotFound, err.Error())
		return
	}
	l := h.LastOf(p.Title(), env)
	problem.JSON(w, http.StatusOK, l)
}

// Schedule is one drill the configuration schedules (drills:).
type Schedule struct {
	Project     string
	Environment string
	Interval    time.Duration
	// Dir holds the runs' layouts: each run rebuilds into a fresh
	// subdirectory and the previous runs are removed once it is done.
	Dir string
}

// Schedule runs each scheduled drill every Interval (the first one
// Interval after the start) until ctx ends.
func (h *Handler) Schedule(ctx context.Context, schedules []Schedule) {
	for _, s := range schedules {
		go func() {
			t := time.NewTicker(s.Interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					h.RunScheduled(ctx, s)
				}
			}
		}()
	}
}

// RunScheduled runs one scheduled drill as the server: from its own store,
// with its own trust, into a fresh layout under s.Dir; records the report
// and alerts through the log (error) and metrics (custody_drills_total
// {result="failed"}, and the last-success timestamp going stale) when
// anything is missing.
func (h *Handler) RunScheduled(ctx context.Context, s Schedule) *drill.Report {
	ctx = identity.With(ctx, identity.Server)
	log := h.log.With("project", s.Project, "environment", s.Environment)
	fail := func(msg string, err error) *drill.Report {
		log.Error("scheduled drill could not run: "+msg, "err", err)
		project := s.Project
		if p, perr := h.svc.ProjectNamed(s.Project); perr == nil {
			project = p.Title()
		}
		h.note(project, s.Environment, h.now().UTC(), false)
		return nil
	}
	p, err := h.svc.ProjectNamed(s.Project)
	if err != nil {
		return fail("no such project", err)
	}
	at := h.now().UTC()
	deps, err := h.svc.EnvironmentAt(ctx, p.Title(), s.Environment, at)
	if err != nil {
		return fail("reading what the environment runs", err)
	}
	opts := drill.Options{Project: p.Title(), Environment: s.Environment, At: at, Source: h.svc.Remote, SourceHost: h.svc.Host,
		Target: h.svc.Remote, Trust: h.svc.Trust, Now: h.now}
	for _, d := range deps {
		if d.Digest != "" {
			opts.Artifacts = append(opts.Artifacts, drill.Artifact{Repository: d.Repository, Digest: d.Digest})
		}
	}
	base := filepath.Join(s.Dir, strings.NewReplacer("/", "_", "*", "_").Replace(p.Title())+"-"+s.Environment)
	opts.Into = filepath.Join(base, at.Format("20060102T150405.000000000Z"))
	rep, err := drill.Run(ctx, opts)
	if err != nil {
		return fail("preparing the layout", err)
	}
	if len(rep.Artifacts) == 0 {
		log.Error("scheduled drill: the environment runs nothing", "missing", rep.Missing)
		h.note(p.Title(), s.Environment, at, false)
		return rep
	}
	if _, err := h.Save(ctx, rep, identity.Server.Subject, nil); err != nil {
		log.Error("scheduled drill: recording the report failed", "err", err)
		h.note(p.Title(), s.Environment, at, false)
		return rep
	}
	if rep.OK {
		log.Info("scheduled drill complete", "artifacts", len(rep.Artifacts), "seconds", rep.Seconds, "into", opts.Into)
	} else {
		log.Error("scheduled drill found something missing", "missing", strings.Join(rep.Missing, "; "), "into", opts.Into)
	}
	// Keep only this run's layout.
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			if p := filepath.Join(base, e.Name()); p != opts.Into {
				_ = os.RemoveAll(p)
			}
		}
	}
	return rep
}
