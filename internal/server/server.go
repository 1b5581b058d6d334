// Package server assembles a running custody: it opens the configured
// stores, mounts the registry and the operational endpoints (/metrics,
// /healthz, /readyz), purges stale uploads, and shuts down gracefully.
package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/assessment"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/blob/s3"
	"github.com/custody-dev/custody/internal/builds/buildshttp"
	"github.com/custody-dev/custody/internal/bundle/bundlehttp"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/catalog"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/drill/drillhttp"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/feed/gomod"
	"github.com/custody-dev/custody/internal/feed/maven"
	"github.com/custody-dev/custody/internal/feed/npm"
	"github.com/custody-dev/custody/internal/feed/origin"
	"github.com/custody-dev/custody/internal/feed/pypi"
	"github.com/custody-dev/custody/internal/firewall"
	"github.com/custody-dev/custody/internal/gc"
	"github.com/custody-dev/custody/internal/generic"
	"github.com/custody-dev/custody/internal/gitcommit/sourcehttp"
	"github.com/custody-dev/custody/internal/imports"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/notary"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
	"github.com/custody-dev/custody/internal/proxy"
	"github.com/custody-dev/custody/internal/pullthrough"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/reserve"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/retention/objectlock"
	"github.com/custody-dev/custody/internal/sign/platform"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/internal/trustedroot"
	"github.com/custody-dev/custody/internal/vuln"
	"github.com/custody-dev/custody/internal/vuln/vulnhttp"
	"github.com/custody-dev/custody/internal/web"
)

// Server is a configured custody server.
type Server struct {
	cfg   config.Config
	log   *slog.Logger
	blobs blob.Store
	// retention enforces retention locks and legal holds.
	retention *retention.Checker
	meta      meta.Store
	metrics   *serverMetrics
	stores    *store.Set // closed by Close
	handler   http.Handler
	maint     *maintenance
	audit     *tlog.Log
	// rekor is the transparency log for signing events; nil when off.
	rekor *rekor.Log
	// auth is nil when authentication is off (auth.mode none).
	auth    *auth.Service
	signing *platform.Handler
	// olock mirrors locks onto an Object Lock bucket; nil otherwise.
	olock *objectlock.Mirror
	// drills records restoration drills and runs the scheduled ones
	// (nil without projects).
	drills *drillhttp.Handler
	// vulnDB is the offline vulnerability database.
	vulnDB *vuln.DB
	// embedded is true on the embedded stores (one process).
	embedded bool
	policies *policy.Engine
	// disk keeps free space on the data directory when state lives there;
	// nil otherwise.
	disk *reserve.Guard
	// blobPing probes the blob backend for /readyz; nil when it has none.
	blobPing func(context.Context) error
}

// presigner is a blob backend that can hand out presigned download URLs.
type presigner interface {
	PresignGet(ctx context.Context, d digest.Digest, expiry time.Duration) (*url.URL, error)
}

// fanOut records every event with each auditor in turn.
type fanOut []audit.Auditor

var _ audit.InChange = fanOut{}

// Flushes implements audit.Flusher: RecordChange fails when one of f
// fails, so f's commits include those of each of its auditors.
func (f fanOut) Flushes(store any) bool {
	for _, a := range f {
		if audit.Flushes(a, store) {
			return true
		}
	}
	return false
}

// ChangeContext implements audit.InChange with the first of f that can
// store the events in store's transactions; RecordChange records them
// with the others.
func (f fanOut) ChangeContext(ctx context.Context, store any, es func() []audit.Event) (context.Context, bool) {
	for _, a := range f {
		if c, ok := audit.ChangeContext(ctx, a, store, es); ok {
			return c, true
		}
	}
	return ctx, false
}

func (f fanOut) Record(ctx context.Context, e audit.Event) {
	for _, a := range f {
		a.Record(ctx, e)
	}
}

// RecordChange records es with every auditor, durably with those that
// can, and returns the first error.
func (f fanOut) RecordChange(ctx context.Context, es ...audit.Event) error {
	var first error
	for _, a := range f {
		if err := audit.RecordChange(ctx, a, es...); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// New opens the stores named by cfg (internal/store) and builds the HTTP
// handler.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	s, err := build(cfg, log, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// NewWith builds the server on stores opened with store.Open from the
// same configuration. On success the server owns them and its Close
// closes them.
func NewWith(cfg config.Config, log *slog.Logger, st *store.Set) (*Server, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	return build(cfg, log, st)
}

// checkConfig refuses combinations of settings the server cannot honour.
func checkConfig(cfg config.Config) error {
	if cfg.Auth.Mode != "none" && cfg.Retention.AllowGovernanceBypass {
		return errors.New("retention.allowGovernanceBypass applies only with auth mode none; with authentication on, " +
			"grant the governance-bypass role on \"**\" to whoever may bypass governance retention (custody grant add user:NAME governance-bypass '**')")
	}
	return nil
}

func build(cfg config.Config, log *slog.Logger, st *store.Set) (_ *Server, err error) {
	// undo releases what was opened, in reverse, when build fails.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	md, rawBlobs := st.Meta, st.Blobs
	// Policies and retention. The registry sees the policy engine chained
	// with the retention checker, and every component sees only the
	// retention-guarded blob store, so no path deletes locked bytes.
	// Every audit event goes to the structured log and the tamper-evident
	// audit log (docs/audit.md).
	tl, err := openAuditLog(cfg, md, log)
	if err != nil {
		return nil, err
	}
	undo = append(undo, tl.Close)
	var auditor audit.Auditor = tlogAuditor{log: tl, next: registry.LogAuditor{Log: log}, store: md}
	if cfg.Audit.DisableUnsafe {
		log.Warn("audit.disableUnsafe: changes are NOT recorded in the tamper-evident audit log (for measurements only)")
		auditor = registry.LogAuditor{Log: log}
	}
	engine, err := policy.NewEngine(context.Background(), md, configuredPolicies(cfg.Policies), md)
	if err != nil {
		return nil, err
	}
	// Authentication and access control (docs/security.md): on unless
	// auth.mode is none, which the config allows only on loopback.
	authz, err := newAuth(cfg, md, auditor, log)
	if err != nil {
		return nil, err
	}
	// Bypassing governance retention needs the bypass-governance
	// permission: from the governance-bypass role with authentication on,
	// from retention.allowGovernanceBypass (every client) with it off.
	var perms retention.Permissions = retention.ConfigPermissions{AllowGovernanceBypass: cfg.Retention.AllowGovernanceBypass}
	var authorizer registry.Authorizer = registry.AllowAll{}
	if authz != nil {
		perms, authorizer = authz, authz
	}
	// On an Object Lock bucket every stored lock is mirrored onto the
	// objects it protects (docs/deploy.md).
	var olock *objectlock.Mirror
	var _ objectlock.Bucket = (*s3.Store)(nil) // S3 buckets are mirrored
	if b, ok := rawBlobs.(objectlock.Bucket); ok {
		olock, err = objectlock.Open(context.Background(), objectlock.Options{Bucket: b, Locks: md, Meta: md, Log: log})
		if err != nil {
			return nil, err
		}
	}
	undo = append(undo, olock.Close)
	checker := &retention.Checker{
		Store:       md,
		Meta:        md,
		Permissions: perms,
		Audit: func(ctx context.Context, e retention.Event) {
			auditor.Record(ctx, audit.Event{Action: e.Action, Repo: e.Repo, Digest: e.Digest, Result: e.Result, Reason: e.Reason})
		},
		Defaults: engine.DefaultRetention,
		Now:      time.Now,
		Stored:   olock.Enqueue,
	}
	// Only the guarded store is ever handed out: every component below
	// (registry, generic files, GC, purge) deletes through it.
	blobs := retention.GuardBlobs(rawBlobs, checker)
	mets := newMetrics()
	mets.watchAudit(tl)
	var blobPing func(context.Context) error
	if p, ok := rawBlobs.(interface{ Ping(context.Context) error }); ok {
		blobPing = p.Ping
	}
	var disk *reserve.Guard
	if st.Embedded {
		disk = &reserve.Guard{Dir: cfg.Data, Reserve: cfg.Limits.DiskReserve}
		diskMetrics(disk, mets.reg)
		// Lay the ballast down now, not during some later request.
		if _, err := disk.Free(); err != nil {
			log.Warn("checking free disk space failed", "err", err)
		}
	}
	// GC and the registry share the digest locks; the registry verifies
	// blob bytes before serving them (docs/maintenance.md).
	locks := &blob.Locks{}
	maint := newMaintenance(maintenanceOptions{
		Config:     cfg,
		Log:        log,
		Blobs:      blobs,
		Raw:        rawBlobs,
		Meta:       md,
		View:       st.Scrub,
		Locks:      locks,
		Protected:  retentionProtector{checker},
		ObjectLock: olock,
		Metrics:    mets.reg,
	})
	// Every endpoint over the stores (the registry, generic files, and
	// the server's internal registry) derives its options from one set:
	// the same auditor, locks, verifier and limits.
	base := registry.Options{
		BlobLocks:       locks,
		Verifier:        rawBlobs,
		Log:             log,
		Auditor:         auditor,
		MaxManifestSize: cfg.Limits.MaxManifestBytes,
	}
	// The server's own registry client (signing on push, platform
	// provenance) talks to an internal registry over the same stores,
	// without authentication: it is never served on the network.
	internalOpts := base
	internalOpts.Authorizer = registry.AllowAll{}
	internalOpts.Policy = registry.Policies{engine, checker}
	internal := registry.New(blobs, md, internalOpts)
	self := []remote.Option{remote.WithTransport(handlerTransport{h: internal, asServer: true})}
	keys := cfg.Signing.Keys
	if keys == "" {
		keys = filepath.Join(cfg.Data, "keys")
	}
	sg, err := platform.Open(platform.Options{
		Config:   cfg.Signing,
		Keys:     keys,
		Projects: len(cfg.Projects) > 0,
		Remote:   self,
		Host:     internalHost,
		Authz:    authz,
		Audit:    auditor,
		Log:      log,
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, sg.Close)
	// The CA's certificates make keyless signatures count wherever the
	// ring's trust root is read (GET /api/v1/keys, gates, bundles).
	if cfg.CA.Certificate != "" {
		cas, err := caTrust(cfg.CA)
		if err != nil {
			return nil, err
		}
		sg.Ring().TrustCertificateAuthorities(cas...)
	}
	// Scrub re-verifies signatures and attestations against the archived
	// trust root through the internal registry (docs/maintenance.md).
	maint.revalidation = &revalidation{ring: sg.Ring(), extra: cfg.Promotion.TrustRoot, remote: self, host: internalHost, audit: auditor, tl: tl, log: log}
	// Promotions (docs/promotion.md): environment tags move only through
	// them, and the generic files and registry below see that policy.
	// Promotion gates see the findings of the offline vulnerability
	// database; its endpoints re-evaluate what is promoted.
	vdb, err := openVulnDB(cfg.Data)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { vdb.Close() })
	nv, nhost, err := notationTrust(cfg)
	if err != nil {
		return nil, err
	}
	promo, err := promotionhttp.New(promotionhttp.Options{
		Projects:    cfg.Projects,
		Ring:        sg.Ring(),
		TrustRoot:   cfg.Promotion.TrustRoot,
		Signer:      sg.Signer(),
		Timestamper: sg.Timestamper(),
		Remote:      self,
		Host:        internalHost,
		Findings:    vulnhttp.Findings{DB: vdb},
		Authz:       authz,
		Audit:       auditor,
		Index:       md,
		AuditLog:    tl,
		Log:         log,
		Registries:  cfg.Admission.Registries,
	})
	if err != nil {
		return nil, err
	}
	if promo != nil && nv != nil {
		// Gates and admission count the Notation signatures nv verifies.
		promo.Service().Trust.WithNotation(nv, nhost)
	}
	policies := registry.Policies{auth.TagPolicy{}, engine, checker}
	var vulnAPI *vulnhttp.Handler
	var drills *drillhttp.Handler
	var sources *sourcehttp.Handler
	if promo != nil {
		if authz == nil {
			return nil, errors.New("projects (promotions) need authentication: remove --auth=none")
		}
		policies = registry.Policies{auth.TagPolicy{}, promo.Policy(), engine, checker}
		drills = drillhttp.New(drillhttp.Options{Promotion: promo.Service(), Authz: authz, Audit: auditor, Log: log, Metrics: mets.reg})
		// Source verification (docs/signing.md): CI submits the signed
		// commit it built; the server records who signed it.
		if sources, err = sourcehttp.New(sourcehttp.Options{Promotion: promo.Service(), Authz: authz, Audit: auditor, Log: log,
			AllowedSigners: cfg.Promotion.AllowedSigners, Keyring: cfg.Promotion.OpenPGPKeyring}); err != nil {
			return nil, err
		}
	}
	// The database is loaded over the API wherever someone can sign in:
	// promotion gates and the feeds' dependency firewall read it.
	if authz != nil {
		vulnAPI = vulnhttp.New(vulnhttp.Options{DB: vdb, Dir: cfg.Data, Authz: authz, Audit: auditor, Log: log, Promo: promo, Meta: md, Metrics: mets.reg})
	}
	var redirect func(context.Context, digest.Digest) (*url.URL, error)
	if p, ok := rawBlobs.(presigner); ok && cfg.S3.Redirect {
		expiry := time.Duration(cfg.S3.RedirectExpiry)
		if expiry <= 0 {
			expiry = 5 * time.Minute
		}
		redirect = func(ctx context.Context, d digest.Digest) (*url.URL, error) { return p.PresignGet(ctx, d, expiry) }
	}
	// Clients reach the registry and generic files with the same access
	// control and policies; only the registry's tags trigger signing on
	// push, and only its blobs are redirected to the object store.
	public := base
	public.Authorizer = authorizer
	public.Policy = policies
	regOpts := public
	regOpts.Auditor = fanOut{auditor, sg}
	regOpts.BlobRedirect = redirect
	// OCI proxy feeds (docs/pullthrough.md) fill their repositories from
	// upstream through the internal registry once the public registry has
	// authorized a read, before it answers.
	pulls, err := pullthrough.New(pullthrough.Options{Feeds: cfg.Feeds, Local: handlerTransport{h: internal, asServer: true},
		Host: internalHost, Auditor: auditor, Log: log, UserAgent: "custody"})
	if err != nil {
		return nil, err
	}
	// Package feeds' repositories take versions and labels only through
	// their protocols; OCI proxy feeds fill theirs from upstream.
	feedGuard := feed.V2Guard(cfg.Feeds, auditor)
	regOpts.Front = func(w http.ResponseWriter, r *http.Request, kind, repo, ref string) bool {
		return feedGuard(w, r, kind, repo, ref) && pulls.Front(w, r, kind, repo, ref)
	}
	reg := registry.New(blobs, md, regOpts)
	var (
		_ registry.Policy     = engine
		_ registry.BlobPolicy = engine
		_ registry.Policy     = checker
	)
	s := &Server{cfg: cfg, log: log, blobs: blobs, meta: md, metrics: mets, stores: st, retention: checker, audit: tl, auth: authz,
		olock: olock, embedded: st.Embedded, policies: engine, disk: disk, blobPing: blobPing, maint: maint, signing: sg,
		vulnDB: vdb, drills: drills}
	mux := http.NewServeMux()
	sg.Register(mux)
	if vulnAPI != nil {
		vulnAPI.Register(mux)
	}
	if promo != nil {
		promo.Register(mux)
		drills.Register(mux)
		sources.Register(mux)
	}
	// Evidence bundles (docs/bundle.md): reads of the stores, streamed.
	exp := bundlehttp.Options{Meta: md, Blobs: blobs, Log: tl, Locks: md,
		Trust: func() (key.TrustRoot, []string, error) {
			return promotionhttp.TrustRoot(sg.Ring(), cfg.Promotion.TrustRoot)
		}, Remote: self, Host: internalHost, Logger: log}
	if promo != nil {
		exp.Promotion = promo.Service()
	}
	if authz != nil {
		exp.Authz = authz
	}
	bundlehttp.New(exp).Register(mux)
	imports.New(imports.Options{Dir: cfg.Data, Remote: self, Host: internalHost, Retention: checker, Audit: auditor, Authz: authz, Log: log}).Register(mux)
	mux.Handle(apiFallback, &api{policies: engine, checker: checker, locks: md, log: log})
	mux.HandleFunc("POST /api/v1/gc", maint.serveGC)
	mux.HandleFunc("POST /api/v1/scrub", maint.serveScrub)
	(&tlog.Handler{Log: tl, Logger: log, Holdings: md}).Register(mux)
	// The maturity assessment reads the evidence with the promotions'
	// trust (docs/assessment.md).
	trust, err := promotionhttp.Trust(sg.Ring(), cfg.Promotion.TrustRoot)
	if err != nil {
		return nil, err
	}
	assess := &assessment.Sources{Meta: md, Locks: md, Policies: engine, Trust: trust, Remote: self, Host: internalHost,
		Audit: tl, Config: cfg, LastScrub: maint.lastScrub, Vuln: vulnStatus(vdb)}
	if promo != nil {
		assess.Promotions = promo.Service()
	}
	(&assessment.Handler{Sources: assess, Log: log}).Register(mux)
	mux.Handle("GET /metrics", mets.reg.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	// Build metadata queries: /api/v1/builds, /api/v1/tags/.../history,
	// /api/v1/versions/...
	(&buildshttp.Handler{Index: md, Log: log}).Register(mux)
	if authz != nil {
		authz.Register(mux)
	}
	// The certificate authority for workloads (docs/keyless.md): Fulcio's
	// API, judging tokens with the OIDC trust configuration; with a CT
	// log, its certificates embed signed certificate timestamps.
	trustMaterial := &sigstoreTrust{ring: sg.Ring(), tsa: sg.TSA()}
	var caChain []*x509.Certificate
	if cfg.CA.Key != "" {
		if authz == nil {
			return nil, errors.New("ca needs authentication on: its workloads prove who they are with OIDC tokens (auth.oidc)")
		}
		authority, closeCA, err := openCA(cfg.CA)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { closeCA.Close() })
		ctl, closeLog, err := openCTLog(cfg.CA)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { closeLog.Close() })
		if ctl != nil {
			authority.WithCTLog(ctl)
			trustMaterial.ctlog, trustMaterial.ctlogStart = ctl, cfg.CA.CTLog.Start
			if trustMaterial.ctlogStart.IsZero() {
				trustMaterial.ctlogStart = authority.Chain()[0].NotBefore
			}
		}
		trustMaterial.ca, trustMaterial.caStart = authority, authority.Chain()[0].NotBefore
		(&ca.Handler{CA: authority, Tokens: authz, Audit: auditor, Log: log}).Register(mux)
		caChain = authority.Chain()
	}
	// The transparency log for signing events (docs/keyless.md): Rekor
	// v2's API; certificate entries only from the CA above.
	if cfg.Rekor.Key != "" {
		rl, err := openRekor(cfg.Rekor, cmp.Or(cfg.Rekor.URL, cfg.CA.URL), md.SigningLog(), caChain, log)
		if err != nil {
			return nil, err
		}
		undo = append(undo, rl.Close)
		s.rekor = rl
		// The ring's trust root names the log, so its entries count in
		// verification (internal/evidence) wherever the trust root goes.
		pubPEM, err := key.MarshalPublicKey(rl.PublicKey())
		if err != nil {
			return nil, err
		}
		added, err := sg.Ring().AddTransparencyLog(key.TrustedLog{BaseURL: rl.URL(), Origin: rl.Origin(), PublicKey: string(pubPEM),
			ValidFor: key.Validity{Start: time.Now().UTC().Truncate(time.Second)}})
		if err != nil {
			return nil, fmt.Errorf("rekor: recording the log in the key ring's trust root: %w", err)
		}
		if added {
			log.Info("transparency log recorded in the key ring's trust root", "origin", rl.Origin(), "url", rl.URL())
		}
		if trustMaterial.tlogs, err = rekorLogs(sg.Ring(), string(pubPEM)); err != nil {
			return nil, err
		}
		(&rekor.Handler{Log: rl, Audit: auditor, Logger: log}).Register(mux)
	}
	if err := trustMaterial.retiredTrust(cfg.CA); err != nil {
		return nil, err
	}
	// Sigstore's trusted_root.json and signing_config.json (public).
	(&trustedroot.Handler{URL: cfg.CA.URL, Input: trustMaterial.input, Log: log}).Register(mux)
	// The repository catalog: /api/v1/repositories lists only what the
	// caller may pull.
	canRead := func(context.Context, string) bool { return true }
	if authz != nil {
		canRead = func(ctx context.Context, repo string) bool { return auth.PrincipalFrom(ctx).Can(repo, auth.PermPull) }
	}
	(&catalog.Handler{Meta: md, Locks: md, Immutable: engine.ImmutableRule, CanRead: canRead, Log: log}).Register(mux)
	gen := generic.New(blobs, md, public)
	// Package feeds (docs/feeds.md): each protocol over the same stores,
	// access control and policies as the registry.
	npmFeeds := npm.New(cfg.Feeds, blobs, md, public)
	pypiFeeds := pypi.New(cfg.Feeds, blobs, md, public, canRead)
	goFeeds := gomod.New(cfg.Feeds, blobs, md, public)
	mavenFeeds := maven.New(cfg.Feeds, blobs, md, public)
	// Proxy feeds' upstream clients, their credentials read from the
	// environment now, so a missing secret stops the start.
	upstreams, err := feed.Upstreams(cfg.Feeds, feed.UpstreamOptions{})
	if err != nil {
		return nil, err
	}
	npmFeeds.Upstreams, pypiFeeds.Upstreams, goFeeds.Upstreams = upstreams, upstreams, upstreams
	mavenFeeds.Upstreams = upstreams
	// The dependency firewall (docs/feeds.md) judges every feed's
	// versions with the vulnerability database and the feeds' waivers.
	waivers := firewall.NewWaivers(feed.NewStore(blobs, md, public))
	fw := firewall.New(vdb, waivers, public.Now)
	npmFeeds.Gate, pypiFeeds.Gate, goFeeds.Gate, mavenFeeds.Gate = fw, fw, fw, fw
	(&firewall.Handler{Feeds: cfg.Feeds, Waivers: waivers, Authz: authz, Audit: auditor, Log: log, Now: public.Now}).Register(mux)
	// Where a build's dependencies came from, by its trusted provenance.
	(&origin.Handler{Feeds: cfg.Feeds, Store: feed.NewStore(blobs, md, public), Authz: authz, Log: log,
		Provenance: origin.Attested(md, trust, internalHost, self)}).Register(mux)
	// /v2/ bypasses ServeMux, whose path cleaning would redirect
	// "/v2/a/../b/..." or "a//b" to another repository instead of letting
	// the registry refuse the name.
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			reg.ServeHTTP(w, r)
			return
		}
		// /generic/ too: it refuses "..", "%2e%2e" and "//" itself.
		if strings.HasPrefix(r.URL.Path, generic.Prefix) {
			gen.ServeHTTP(w, r)
			return
		}
		// /npm/ reads package names from the escaped path ("@scope%2fname").
		if strings.HasPrefix(r.URL.Path, npm.Prefix) {
			npmFeeds.ServeHTTP(w, r)
			return
		}
		// /pypi/ refuses escapes and redirects names to their normalised form itself.
		if strings.HasPrefix(r.URL.Path, pypi.Prefix) {
			pypiFeeds.ServeHTTP(w, r)
			return
		}
		// /go/ reads case-encoded module paths from the escaped path.
		if strings.HasPrefix(r.URL.Path, gomod.Prefix) {
			goFeeds.ServeHTTP(w, r)
			return
		}
		// /maven/ refuses "..", escapes and empty segments itself.
		if strings.HasPrefix(r.URL.Path, maven.Prefix) {
			mavenFeeds.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/v1/") && authz != nil {
			guardAPI(authz, mux).ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	// The web interface (docs/ui.md) serves every path nothing above
	// claims; its pages call /api/v1/ in process, as the browser.
	site, err := web.New(web.Options{
		API:           handlerTransport{h: root},
		Auth:          authz != nil,
		SecureCookies: cfg.TLS.CertFile != "",
		WebAuthn:      cfg.Web.URL != "",
		Log:           log,
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", site)
	// Docker's v1 API stays a plain 404, not the interface's sign-in
	// page: clients probe it (podman search asks /v1/search first) and
	// fall back to /v2/ only on an answer they can read as "not here".
	mux.Handle("/v1/", http.NotFoundHandler())
	// Behind trusted proxies every handler (sign-in throttling, logs,
	// audit) sees the client's address.
	proxies, err := proxy.Parse(cfg.Proxy.Trusted, cfg.Proxy.Header)
	if err != nil {
		return nil, err
	}
	s.handler = proxies.Handler(requestID(bypass(mets.instrument(bodies(cfg.Limits).Wrap(guardDisk(disk, log, root))))))
	return s, nil
}

// vulnStatus reports the vulnerability database's size and last update.
func vulnStatus(db *vuln.DB) func(context.Context) (int, time.Time, error) {
	return func(ctx context.Context) (int, time.Time, error) {
		n, err := db.Count(ctx)
		if err != nil {
			return 0, time.Time{}, err
		}
		at, err := db.UpdatedAt(ctx)
		return n, at, err
	}
}

// drillSchedules are the configured drills (drills:), each into
// <data>/drills unless it names a directory.
func (s *Server) drillSchedules() []drillhttp.Schedule {
	var out []drillhttp.Schedule
	for _, d := range s.cfg.Drills {
		out = append(out, drillhttp.Schedule{Project: d.Project, Environment: d.Environment, Interval: time.Duration(d.Interval),
			Dir: cmp.Or(d.Dir, filepath.Join(s.cfg.Data, "drills"))})
	}
	return out
}

// openVulnDB opens the offline vulnerability database in the data
// directory.
func openVulnDB(dir string) (*vuln.DB, error) {
	db, err := vuln.Open(filepath.Join(dir, "vulndb.db"))
	if err != nil {
		return nil, fmt.Errorf("opening the vulnerability database: %w", err)
	}
	return db, nil
}

// openAuditLog loads (or creates) the log key in the data directory and
// opens the audit log stored in md.
func openAuditLog(cfg config.Config, md tlog.Store, log *slog.Logger) (*tlog.Log, error) {
	origin := cfg.Audit.Origin
	if origin == "" {
		origin = config.Default().Audit.Origin
	}
	signer, vkey, err := tlog.LoadOrCreateKey(cfg.Data, origin)
	if err != nil {
		return nil, err
	}
	if signer.Name() != origin {
		log.Warn("audit log key names another origin than audit.origin; keeping the key's", "key", signer.Name(), "config", origin)
	}
	return tlog.Open(context.Background(), md, tlog.Options{Signer: signer, VerifierKey: vkey, Log: log})
}

// AuditLog returns the server's audit log (for tests).
func (s *Server) AuditLog() *tlog.Log { return s.audit }

// configuredPolicies converts the configuration's policies.
func configuredPolicies(ps []config.Policy) map[string]policy.Policy {
	out := make(map[string]policy.Policy, len(ps))
	for _, p := range ps {
		pp := policy.Policy{
			ImmutableTags:     p.ImmutableTags,
			NoDelete:          p.NoDelete,
			AllowedMediaTypes: p.AllowedMediaTypes,
			MaxArtifactSize:   p.MaxArtifactSize,
		}
		if r := p.Retention; r != nil {
			pp.Retention = &policy.DefaultRetention{Mode: r.Mode, Period: policy.Duration(r.Period)}
		}
		out[p.Repository] = pp
	}
	return out
}

// bypass carries an X-Custody-Bypass-Governance header into the request
// context, where the retention checks look for it.
func bypass(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := strings.TrimSpace(r.Header.Get(retention.BypassHeader)); reason != "" {
			r = r.WithContext(retention.WithBypass(r.Context(), reason))
		}
		h.ServeHTTP(w, r)
	})
}

// Handler returns the server's HTTP handler (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// readyTimeout bounds each backend probe of /readyz.
const readyTimeout = 2 * time.Second

// ready answers 503 naming the backend that does not answer within
// readyTimeout, else 200 with the data directory's free space.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	probe := func(ping func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		return ping(ctx)
	}
	if err := probe(s.meta.Ping); err != nil {
		s.log.Warn("readiness: metadata store unavailable", "err", err)
		http.Error(w, "metadata store unavailable", http.StatusServiceUnavailable)
		return
	}
	if err := s.audit.Health(); err != nil {
		http.Error(w, "audit log integrity check failed; no audit checkpoints are signed (see the server log)", http.StatusServiceUnavailable)
		return
	}
	if s.blobPing != nil {
		if err := probe(s.blobPing); err != nil {
			s.log.Warn("readiness: object store unavailable", "err", err)
			http.Error(w, "object store unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ready\n" + s.diskReady()))
}

// requestID gives every request an ID (the client's X-Request-Id if it is
// sane) that logs and audit events carry.
func requestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || !printable(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(registry.WithRequestID(r.Context(), id)))
	})
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// PurgeUploads removes upload sessions idle for longer than the TTL, and
// upload files no session refers to (garbage collection runs the same
// purge: gc.PurgeUploads).
func (s *Server) PurgeUploads(ctx context.Context) (int, error) {
	n, err := gc.PurgeUploads(ctx, s.blobs, s.meta, time.Now().Add(-time.Duration(s.cfg.Uploads.TTL)), false)
	if err != nil {
		return n, err
	}
	s.metrics.purged.Add(float64(n))
	s.metrics.uploadsGC.SetToCurrentTime()
	return n, nil
}

func (s *Server) purgeLoop(ctx context.Context) {
	every := time.Duration(s.cfg.Uploads.TTL) / 4
	every = min(max(every, time.Second), 10*time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.PurgeUploads(ctx); err != nil {
				s.log.Warn("purging stale uploads failed", "err", err)
			} else if n > 0 {
				s.log.Info("purged stale uploads", "count", n)
			}
			if s.auth != nil {
				if _, err := s.auth.PurgeSessions(ctx); err != nil {
					s.log.Warn("purging timed-out browser sessions failed", "err", err)
				}
				if _, err := s.auth.PurgeChallenges(ctx); err != nil {
					s.log.Warn("purging expired sign-in ceremonies failed", "err", err)
				}
			}
		}
	}
}

// Run serves on the configured address until ctx is cancelled, then shuts
// down gracefully: it stops accepting connections and waits up to the
// shutdown timeout for in-flight requests. Uploads cut off by the timeout
// stay resumable from their last acknowledged chunk.
func (s *Server) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another server using the port? choose one with --addr)", s.cfg.Addr, err)
	}
	ln = s.listener(ln)
	// Header and idle time are bounded here, request bodies by the
	// handler (bodies), connections per client by the listener.
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: time.Duration(s.cfg.Limits.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(s.cfg.Limits.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go s.purgeLoop(bg)
	go s.audit.Run(bg, time.Duration(s.cfg.Audit.CheckpointInterval))
	if s.rekor != nil {
		go s.rekor.Run(bg)
	}
	if !s.embedded {
		// Replicas share the metadata store: pick up policies other
		// replicas stored (accounts and grants are re-read per request).
		go s.policies.Watch(bg, 2*time.Second, func(err error) { s.log.Warn("reloading policies failed", "err", err) })
	}
	s.maint.loops(bg)
	if s.drills != nil {
		go s.drills.Warm(bg, s.audit)
		s.drills.Schedule(bg, s.drillSchedules())
	}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLS.CertFile != "" {
			errc <- srv.ServeTLS(ln, s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	s.log.Info("custody serving", "addr", ln.Addr().String(), "data", s.cfg.Data)
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", time.Duration(s.cfg.ShutdownTimeout).String())
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.ShutdownTimeout))
	defer cancel()
	err = srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown timeout reached; unfinished uploads stay resumable")
		_ = srv.Close()
		err = nil
	}
	return err
}

// Close writes the queued audit entries, signs a last checkpoint if the log
// grew, and releases the stores and the data directory lock.
func (s *Server) Close() error {
	s.signing.Close()
	s.olock.Close()
	if s.rekor != nil {
		s.rekor.Close()
	}
	s.audit.Close()
	if last, err := s.audit.Latest(context.Background()); err != nil || last.Size != s.audit.Size() {
		if _, err := s.audit.Checkpoint(context.Background()); err != nil {
			s.log.Error("audit log: signing the final checkpoint failed", "err", err)
		}
	}
	_ = s.vulnDB.Close()
	return s.stores.Close()
}

// Blobs returns the server's (retention-guarded) blob store, for tests.
func (s *Server) Blobs() blob.Store { return s.blobs }

// openCA opens the configured certificate authority, its key file
// decrypted with ca.passphraseFile or CUSTODY_CA_PASSWORD.
func openCA(c config.CA) (*ca.CA, io.Closer, error) {
	pass, err := caPassphrase(c)
	if err != nil {
		return nil, nil, err
	}
	authority, closer, err := ca.Open(c.Key, c.Certificate, pass, time.Duration(c.Validity))
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	return authority, closer, nil
}

// openRekor opens the transparency log for signing events, its key file
// decrypted with rekor.passphraseFile or CUSTODY_REKOR_PASSWORD.
func openRekor(c config.Rekor, url string, store tlog.Store, caChain []*x509.Certificate, log *slog.Logger) (*rekor.Log, error) {
	pass := os.Getenv("CUSTODY_REKOR_PASSWORD")
	if c.PassphraseFile != "" {
		b, err := os.ReadFile(c.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("rekor.passphraseFile: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	signer, closer, err := key.OpenSigner(c.Key, []byte(pass))
	if err != nil {
		return nil, fmt.Errorf("rekor: opening the log key: %w", err)
	}
	var trust func() rekor.Trust
	if len(caChain) > 0 {
		t := rekor.TrustOf(caChain)
		trust = func() rekor.Trust { return t }
	}
	rl, err := rekor.Open(context.Background(), rekor.Options{Store: store, Signer: signer, URL: url, Trust: trust, Log: log, Closer: closer})
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("rekor: %w", err)
	}
	return rl, nil
}

// notationTrust loads promotion.notation: the Notation verifier gates and
// admission use, and the registry host its registryScopes name this
// server by. It returns a nil verifier when none is configured.
func notationTrust(cfg config.Config) (*notary.Verifier, string, error) {
	n := cfg.Promotion.Notation
	if n.TrustPolicy == "" && n.TrustStore == "" {
		return nil, "", nil
	}
	if n.TrustPolicy == "" || n.TrustStore == "" {
		return nil, "", errors.New("promotion.notation: give both trustPolicy and trustStore")
	}
	v, err := notary.LoadVerifier(n.TrustPolicy, n.TrustStore)
	if err != nil {
		return nil, "", fmt.Errorf("promotion.notation: %w", err)
	}
	host := n.Registry
	if host == "" && len(cfg.Admission.Registries) > 0 {
		host = cfg.Admission.Registries[0]
	}
	return v, host, nil
}
