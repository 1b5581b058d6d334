package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/metrics"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/retention/objectlock"
	"github.com/custody-dev/custody/internal/scrub"
)

// maintenance runs garbage collection and scrub inside the server, on a
// schedule or on request (POST /api/v1/gc), and exposes their results as
// metrics.
type maintenance struct {
	log       *slog.Logger
	collector *gc.Collector
	blobs     blob.Store
	view      scrub.Store
	gcEvery   time.Duration
	scrubEach time.Duration
	buckets   uint32

	// leader, when set, elects the replica that runs scheduled jobs.
	leader leader
	// olock, when set, checks the bucket's object locks during scrub.
	olock *objectlock.Mirror
	meta  metaStore
	// revalidation, when set, re-verifies evidence during scrub.
	revalidation *revalidation

	gcMu    sync.Mutex // one collection at a time
	scrubMu sync.Mutex
	bucket  uint32 // next scrub bucket, 0-based; guarded by scrubMu

	// lastMu guards the last scrub's result (for the assessment).
	lastMu      sync.Mutex
	lastScrubAt time.Time
	lastDamaged int

	gcRuns       *metrics.CounterVec
	gcBlobs      *metrics.Counter
	gcBytes      *metrics.Counter
	gcManifests  *metrics.Counter
	gcLast       *metrics.Gauge
	scrubDamaged *metrics.Gauge
	scrubLast    *metrics.Gauge
	scrubFailed  *metrics.Gauge
	scrubRetired *metrics.Gauge
}

// SetGCProtector replaces what garbage collection asks before deleting
// (New sets the retention checker); call it before Run.
func (s *Server) SetGCProtector(p gc.Protector) { s.maint.collector.Protected = p }

// maintenanceOptions is what the in-server GC and scrub work on.
type maintenanceOptions struct {
	Config config.Config
	Log    *slog.Logger
	// Blobs is the retention-guarded store GC deletes through (it refuses
	// locked blobs itself); Raw is the backend underneath, for ages and
	// scrub.
	Blobs blob.Store
	Raw   rawBlobs
	Meta  metaStore
	View  scrub.Store
	Locks *blob.Locks
	// Protected is asked before deleting: locked or held content is never
	// a candidate.
	Protected gc.Protector
	// ObjectLock, when set, checks the bucket's object locks during scrub.
	ObjectLock *objectlock.Mirror
	Metrics    *metrics.Registry
}

func newMaintenance(o maintenanceOptions) *maintenance {
	cfg := o.Config
	m := &maintenance{
		log: o.Log,
		collector: &gc.Collector{
			Blobs:         o.Blobs,
			Meta:          o.Meta,
			Ages:          o.Raw,
			Locks:         o.Locks,
			Protected:     o.Protected,
			Grace:         time.Duration(cfg.GC.Grace),
			UploadTTL:     time.Duration(cfg.Uploads.TTL),
			UntaggedRepos: cfg.GC.UntaggedManifests,
			Log:           o.Log,
		},
		blobs:     o.Raw,
		view:      o.View,
		leader:    asLeader(o.Meta),
		olock:     o.ObjectLock,
		meta:      o.Meta,
		gcEvery:   time.Duration(cfg.GC.Schedule),
		scrubEach: time.Duration(cfg.Scrub.Schedule),
		buckets:   uint32(max(cfg.Scrub.Buckets, 1)),
		gcRuns: metrics.NewCounterVec(metrics.Opts{
			Name: "custody_gc_runs_total",
			Help: "Garbage collection runs by result (ok, error, dry_run).",
		}, []string{"result"}),
		gcBlobs: metrics.NewCounter(metrics.Opts{
			Name: "custody_gc_blobs_deleted_total",
			Help: "Blobs deleted by garbage collection.",
		}),
		gcBytes: metrics.NewCounter(metrics.Opts{
			Name: "custody_gc_bytes_reclaimed_total",
			Help: "Bytes of blobs deleted by garbage collection.",
		}),
		gcManifests: metrics.NewCounter(metrics.Opts{
			Name: "custody_gc_manifests_deleted_total",
			Help: "Untagged manifests deleted by garbage collection.",
		}),
		gcLast: metrics.NewGauge(metrics.Opts{
			Name: "custody_gc_last_run_timestamp_seconds",
			Help: "When garbage collection last completed (not dry runs).",
		}),
		scrubDamaged: metrics.NewGauge(metrics.Opts{
			Name: "custody_scrub_damaged_objects",
			Help: "Damaged or missing objects found by the last scrub.",
		}),
		scrubLast: metrics.NewGauge(metrics.Opts{
			Name: "custody_scrub_last_run_timestamp_seconds",
			Help: "When the last scrub completed.",
		}),
		scrubFailed: metrics.NewGauge(metrics.Opts{
			Name: "custody_scrub_evidence_failures",
			Help: "Signatures and attestations that no longer verify against the archived trust root, found by the last scrub.",
		}),
		scrubRetired: metrics.NewGauge(metrics.Opts{
			Name: "custody_scrub_evidence_retired_key",
			Help: "Signatures and attestations that verify with a retired key, found by the last scrub.",
		}),
	}
	o.Metrics.MustRegister(m.gcRuns, m.gcBlobs, m.gcBytes, m.gcManifests, m.gcLast, m.scrubDamaged, m.scrubLast, m.scrubFailed, m.scrubRetired)
	return m
}

// GC runs one garbage collection (see internal/gc).
func (s *Server) GC(ctx context.Context, dryRun bool) (*gc.Report, error) {
	return s.maint.gc(ctx, dryRun)
}

func (m *maintenance) gc(ctx context.Context, dryRun bool) (*gc.Report, error) {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	rep, err := m.collector.Run(ctx, dryRun)
	switch {
	case err != nil:
		m.gcRuns.WithLabelValues("error").Inc()
	case dryRun:
		m.gcRuns.WithLabelValues("dry_run").Inc()
	default:
		m.gcRuns.WithLabelValues("ok").Inc()
		m.gcLast.SetToCurrentTime()
	}
	if rep != nil && !dryRun {
		m.gcBlobs.Add(float64(len(rep.Blobs)))
		m.gcBytes.Add(float64(rep.BytesReclaimed))
		m.gcManifests.Add(float64(len(rep.Manifests)))
	}
	return rep, err
}

// Scrub runs one scrub over the next bucket of the rotation.
func (s *Server) Scrub(ctx context.Context) (*scrub.Report, error) {
	return s.maint.scrub(ctx)
}

func (m *maintenance) scrub(ctx context.Context) (*scrub.Report, error) {
	m.scrubMu.Lock()
	defer m.scrubMu.Unlock()
	sub := scrub.Subset{N: m.bucket + 1, T: m.buckets}
	m.bucket = (m.bucket + 1) % m.buckets
	sc := &scrub.Scrubber{Blobs: m.blobs, Meta: m.view, Subset: sub}
	if m.revalidation != nil {
		if err := m.revalidation.prepare(ctx, sc); err != nil {
			return nil, fmt.Errorf("archiving the trust root: %w", err)
		}
	}
	rep, err := sc.Run(ctx)
	if err != nil {
		return nil, err
	}
	if m.olock != nil {
		weak, err := m.olock.Check(ctx, m.meta)
		if err != nil {
			return nil, fmt.Errorf("checking the bucket's object locks: %w", err)
		}
		rep.Problems = append(rep.Problems, weak...)
		rep.DamagedCount += len(weak)
	}
	m.scrubDamaged.Set(float64(rep.DamagedCount))
	m.scrubFailed.Set(float64(len(rep.EvidenceFailures)))
	m.scrubRetired.Set(float64(len(rep.RetiredKeyEvidence)))
	m.scrubLast.SetToCurrentTime()
	m.lastMu.Lock()
	m.lastScrubAt, m.lastDamaged = time.Now(), rep.DamagedCount
	m.lastMu.Unlock()
	for _, p := range rep.Problems {
		m.log.Error("scrub: damaged object", "kind", p.Kind, "digest", p.Digest, "repositories", p.Repos, "detail", p.Detail)
	}
	if m.revalidation != nil {
		m.revalidation.report(ctx, rep)
	}
	return rep, nil
}

// lastScrub reports when the last in-server scrub completed and what it
// found damaged; ok is false before the first.
func (m *maintenance) lastScrub() (at time.Time, damaged int, ok bool) {
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	return m.lastScrubAt, m.lastDamaged, !m.lastScrubAt.IsZero()
}

// loops runs the scheduled GC and scrub until ctx ends.
func (m *maintenance) loops(ctx context.Context) {
	every := func(d time.Duration, fn func()) {
		if d <= 0 {
			return
		}
		go func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fn()
				}
			}
		}()
	}
	every(m.gcEvery, m.elected(ctx, "gc", func() {
		if _, err := m.gc(ctx, false); err != nil && ctx.Err() == nil {
			m.log.Warn("scheduled gc failed", "err", err)
		}
	}))
	every(m.scrubEach, m.elected(ctx, "scrub", func() {
		if _, err := m.scrub(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("scheduled scrub failed", "err", err)
		}
	}))
}

// elected runs fn only on the replica that holds the job's lock, when the
// metadata store elects one (PostgreSQL advisory locks); with the embedded
// store there is one process and fn always runs.
func (m *maintenance) elected(ctx context.Context, job string, fn func()) func() {
	if m.leader == nil {
		return fn
	}
	return func() {
		release, ok, err := m.leader.TryLock(ctx, "custody-"+job)
		if err != nil {
			m.log.Warn("scheduled "+job+": electing a replica failed", "err", err)
			return
		}
		if !ok {
			m.log.Debug("scheduled " + job + " runs on another replica")
			return
		}
		defer release()
		fn()
	}
}

// serveScrub handles POST /api/v1/scrub: it runs one scrub (the next
// bucket of the rotation, the evidence revalidation and the Object Lock
// check) and answers with its JSON report; 200 even when it found damage
// (see damagedObjects and evidenceFailures).
func (m *maintenance) serveScrub(w http.ResponseWriter, r *http.Request) {
	rep, err := m.scrub(r.Context())
	if err != nil {
		problem.Fail(w, r, m.log, "scrub failed", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

// serveGC handles POST /api/v1/gc[?dryRun=true]: it runs one collection
// and answers with its JSON report. It serialises with scheduled runs.
func (m *maintenance) serveGC(w http.ResponseWriter, r *http.Request) {
	dry, _ := strconv.ParseBool(r.URL.Query().Get("dryRun"))
	rep, err := m.gc(r.Context(), dry)
	if err != nil {
		problem.Fail(w, r, m.log, "garbage collection failed", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

// retentionProtector adapts the retention checker to gc.Protector: content
// any retention lock or legal hold protects (in any repository, directly or
// through an index or manifest that contains it) is never collected. GC's
// context carries no governance bypass, so governance locks hold too.
type retentionProtector struct{ c *retention.Checker }

func (p retentionProtector) Protected(ctx context.Context, d digest.Digest) (bool, error) {
	err := p.c.BlobDeletable(ctx, d)
	if errors.Is(err, retention.ErrLocked) {
		return true, nil
	}
	return false, err
}

func asLeader(md metaStore) leader {
	l, _ := md.(leader)
	return l
}
