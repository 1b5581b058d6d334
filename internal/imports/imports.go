// Package imports receives evidence bundles (internal/bundle) exported by
// another custody: the carry between sites, air-gapped ones included.
//
//	POST /api/v1/imports?fingerprint=SHA256   body: the bundle file (admin)
//
// The upload is streamed to a temporary file in the data directory (never
// held in memory), opened with bundle.Open against the trust-root
// fingerprint the caller gives, and verified whole with Bundle.Verify
// (internal/evidence and internal/tlog decide, as offline). Only a bundle
// that verifies is imported, so a bad bundle is a 4xx and stores nothing.
// Then every manifest of the bundle (artifacts, cosign signature and
// attestation images by their tags, referrers) is written by digest into
// this registry, the retention locks and legal holds of the bundle's
// summary are set, and one audit entry per artifact records the import
// with the source's log origin and checkpoint (size and root).
package imports

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/bundle"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/sign"
)

// MaxBundle caps an uploaded bundle (1 TiB); the data directory's disk
// reserve applies as to any upload.
const MaxBundle = 1 << 40

// Options build a Handler.
type Options struct {
	// Dir is the data directory; uploads are written under Dir/imports.
	Dir string
	// Remote reaches this server's registry (its in-process client),
	// named Host in references.
	Remote []remote.Option
	Host   string
	// Retention sets the locks and holds the bundle carries.
	Retention *retention.Checker
	Audit     audit.Auditor
	// Authz decides who imports (admins); nil when authentication is off.
	Authz *auth.Service
	Log   *slog.Logger
	Now   func() time.Time
}

// Handler serves POST /api/v1/imports.
type Handler struct{ o Options }

// New returns the import handler.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Handler{o: o}
}

// Register mounts the import endpoint.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/imports", h.serve)
}

// Result is the answer of an import.
type Result struct {
	// Origin, Size and Root name the source's audit-log checkpoint the
	// bundle is proved against.
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"`
	// SHA256 is the bundle file's SHA-256 (hex); Fingerprint the trust
	// root it was verified against.
	SHA256      string     `json:"sha256"`
	Fingerprint string     `json:"trustRootFingerprint"`
	Artifacts   []Imported `json:"artifacts"`
	// Manifests counts every manifest written (artifacts, signatures,
	// attestations, referrers).
	Manifests int `json:"manifests"`
	// Problems are what could not be carried (a retention lock this
	// registry refuses), after the content was imported.
	Problems []string      `json:"problems"`
	Verified bundle.Report `json:"verified"`
}

// Imported is one artifact imported.
type Imported struct {
	Repository string            `json:"repository"`
	Digest     string            `json:"digest"`
	Retention  *bundle.Retention `json:"retention,omitempty"`
	Lock       *retention.Lock   `json:"lock,omitempty"`
}

// refused is a bundle this server does not import (the client's error).
type refused struct{ msg string }

func (r refused) Error() string { return r.msg }

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	if h.o.Authz != nil {
		var ok bool
		if r, _, ok = h.o.Authz.Require(w, r, "import", "", auth.PermAdmin); !ok {
			return
		}
	}
	fp := r.URL.Query().Get("fingerprint")
	if fp == "" {
		problem.Write(w, problem.Invalid, "give ?fingerprint=SHA256: the trust-root fingerprint of the exporting server (custody key fingerprint there)")
		return
	}
	res, err := h.Import(r.Context(), http.MaxBytesReader(w, r.Body, MaxBundle), fp, r)
	var rf refused
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		problem.JSON(w, http.StatusCreated, res)
	case errors.As(err, &rf):
		h.o.Audit.Record(r.Context(), audit.Event{Action: "import", Result: "invalid", Reason: rf.msg, Request: r})
		problem.WriteBody(w, problem.Invalid.Status(), struct {
			problem.Details
			Verified *bundle.Report `json:"verified,omitempty"`
		}{problem.Invalid.Details(rf.msg), res.verifiedIfFailed()})
	case errors.As(err, &mbe):
		problem.Write(w, problem.BodyTooLarge, fmt.Sprintf("a bundle of more than %d bytes", MaxBundle))
	default:
		h.o.Audit.Record(r.Context(), audit.Event{Action: "import", Result: "error", Reason: err.Error(), Request: r})
		problem.Fail(w, r, h.o.Log, "importing the bundle failed", err)
	}
}

func (r *Result) verifiedIfFailed() *bundle.Report {
	if r == nil || len(r.Verified.Failures) == 0 {
		return nil
	}
	return &r.Verified
}

// Import reads a bundle from body, verifies it against fingerprint and
// imports it. A bundle that does not open or verify is a refused error
// (with the verification report in the Result) and nothing is stored.
func (h *Handler) Import(ctx context.Context, body io.Reader, fingerprint string, req *http.Request) (*Result, error) {
	dir := filepath.Join(h.o.Dir, "imports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "bundle-*.tar")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	hash := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, hash), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, refused{"reading the uploaded bundle: " + err.Error()}
	}
	b, err := bundle.Open(f.Name(), fingerprint)
	if err != nil {
		if errors.Is(err, bundle.ErrInvalid) {
			return nil, refused{"bundle refused: " + err.Error()}
		}
		return nil, err
	}
	defer b.Close()
	m := b.Manifest()
	res := &Result{Origin: m.Log.Origin, Size: m.Log.Size, Root: m.Log.Root, SHA256: hex.EncodeToString(hash.Sum(nil)),
		Fingerprint: strings.TrimPrefix(strings.ToLower(fingerprint), "sha256:"), Artifacts: []Imported{}, Problems: []string{}}
	if m.Request.MetadataOnly {
		return res, refused{"bundle refused: it was exported with --metadata-only, without layer bytes: export it whole to import it"}
	}
	rep, err := b.Verify(ctx)
	if err != nil {
		return nil, err
	}
	res.Verified = rep
	if !rep.OK() {
		var fs []string
		for _, f := range rep.Failures {
			fs = append(fs, f.String())
		}
		return res, refused{"bundle refused: it does not verify: " + strings.Join(fs, "; ")}
	}
	if err := h.copy(ctx, b, res); err != nil {
		// This registry's policies (media types, sizes, immutable tags)
		// may refuse a manifest: the client's to resolve. What was
		// written before stays (content by digest, no tag moved but
		// cosign's).
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode/100 == 4 {
			return res, refused{fmt.Sprintf("this registry refused part of the bundle after %d manifest(s) were stored: %v", res.Manifests, err)}
		}
		return nil, err
	}
	reason := fmt.Sprintf("from %s checkpoint size %d root %s (bundle sha256 %s, trust root %s)", res.Origin, res.Size, res.Root, res.SHA256, res.Fingerprint)
	var events []audit.Event
	for _, a := range b.Summary().Artifacts {
		im := Imported{Repository: a.Repository, Digest: a.Digest, Retention: a.Retention}
		if l, err := h.retain(ctx, a); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s@%s: retention not carried: %v", a.Repository, a.Digest, err))
		} else {
			im.Lock = l
		}
		res.Artifacts = append(res.Artifacts, im)
		events = append(events, audit.Event{Action: "import", Repo: a.Repository, Digest: digest.Digest(a.Digest), Result: "ok", Reason: reason, Request: req})
	}
	if err := audit.RecordChange(ctx, h.o.Audit, events...); err != nil {
		return nil, err
	}
	return res, nil
}

// copy writes every manifest of the bundle into this registry by digest:
// the artifacts first, then their signature and attestation images (and
// the cosign tags that name them) and referrers. Other tags (versions,
// environments) are not moved: this site's promotions own its
// environments; the summary lists the source's tags.
func (h *Handler) copy(ctx context.Context, b *bundle.Bundle, res *Result) error {
	src := []remote.Option{remote.WithTransport(b.Transport()), remote.WithContext(ctx)}
	dst := append(slices.Clone(h.o.Remote), remote.WithContext(ctx))
	descs := slices.Clone(b.Index().Manifests)
	slices.SortStableFunc(descs, func(x, y v1.Descriptor) int {
		return rank(x) - rank(y)
	})
	for _, d := range descs {
		repo := d.Annotations[bundle.AnnotationRepository]
		if repo == "" {
			continue
		}
		from, err := name.NewDigest(bundle.Host+"/"+repo+"@"+d.Digest.String(), name.Insecure)
		if err != nil {
			return err
		}
		desc, err := remote.Get(from, src...)
		if err != nil {
			return fmt.Errorf("reading %s@%s from the bundle: %w", repo, d.Digest, err)
		}
		to, err := name.NewDigest(h.o.Host+"/"+repo+"@"+d.Digest.String(), name.Insecure)
		if err != nil {
			return err
		}
		refs := []name.Reference{to}
		for _, t := range tagsOf(d.Annotations) {
			if isCosignTag(t) {
				refs = append(refs, to.Context().Tag(t))
			}
		}
		for _, ref := range refs {
			if err := put(ref, desc, dst); err != nil {
				return fmt.Errorf("writing %s: %w", ref, err)
			}
		}
		res.Manifests++
	}
	return nil
}

func put(ref name.Reference, desc *remote.Descriptor, o []remote.Option) error {
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return remote.WriteIndex(ref, idx, o...)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return remote.Write(ref, img, o...)
}

// rank orders artifacts before the manifests about them.
func rank(d v1.Descriptor) int {
	if d.Annotations[bundle.AnnotationRole] == bundle.RoleArtifact {
		return 0
	}
	return 1
}

func tagsOf(a map[string]string) []string {
	var out []string
	if t := a[bundle.AnnotationTag]; t != "" {
		out = append(out, t)
	}
	if ts := a[bundle.AnnotationTags]; ts != "" {
		out = append(out, strings.Split(ts, ",")...)
	}
	return out
}

// isCosignTag reports whether t is cosign v2's sha256-<hex>.sig or .att.
func isCosignTag(t string) bool {
	return strings.HasPrefix(t, "sha256-") &&
		(strings.HasSuffix(t, "."+sign.SignatureSuffix) || strings.HasSuffix(t, "."+sign.AttestationSuffix))
}

// retain carries an artifact's retention lock (when it still runs) and
// legal hold; retention.Checker decides, as for any request (a running
// lock here is only ever extended).
func (h *Handler) retain(ctx context.Context, a bundle.Artifact) (*retention.Lock, error) {
	if a.Retention == nil || h.o.Retention == nil {
		return nil, nil
	}
	var l retention.Lock
	var err error
	if a.Retention.Mode != "" && a.Retention.RetainUntil.After(h.o.Now()) {
		if l, err = h.o.Retention.SetRetention(ctx, a.Repository, digest.Digest(a.Digest), a.Retention.Mode, a.Retention.RetainUntil); err != nil {
			return nil, err
		}
	}
	if a.Retention.LegalHold {
		if l, err = h.o.Retention.SetHold(ctx, a.Repository, digest.Digest(a.Digest), true); err != nil {
			return nil, err
		}
	}
	if l.Repo == "" {
		return nil, nil
	}
	return &l, nil
}
