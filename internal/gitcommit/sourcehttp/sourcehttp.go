// Package sourcehttp records source verifications: CI submits the raw git
// commit object of the revision it built; the server checks that it is
// the commit the artifact's verified provenance names and that an allowed
// signer signed it (internal/gitcommit), then attaches a signed
// source-verification attestation (evidence.PredicateSource) to the
// artifact, which gates read through commit_signed_by.
//
//	POST /api/v1/source/<repository>/@<digest>   body: git cat-file commit REV (push permission)
package sourcehttp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gitcommit"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
)

// Handler verifies and records commit signatures.
type Handler struct {
	svc      *promotion.Service
	authz    *auth.Service
	audit    audit.Auditor
	log      *slog.Logger
	verifier *gitcommit.Verifier
	now      func() time.Time
}

// Options build a Handler.
type Options struct {
	Promotion *promotion.Service
	Authz     *auth.Service
	Audit     audit.Auditor
	Log       *slog.Logger
	// AllowedSigners and Keyring are the files of the SSH allowed signers
	// (git's gpg.ssh.allowedSignersFile format) and of the trusted
	// OpenPGP public keys; either may be "".
	AllowedSigners string
	Keyring        string
	Now            func() time.Time
}

// New reads the signer files and returns the handler; nil when no project
// is configured (the records need the promotion service and its key).
func New(o Options) (*Handler, error) {
	v, err := LoadVerifier(o.AllowedSigners, o.Keyring)
	if err != nil {
		return nil, err
	}
	if o.Promotion == nil {
		return nil, nil
	}
	h := &Handler{svc: o.Promotion, authz: o.Authz, audit: o.Audit, log: o.Log, verifier: v, now: o.Now}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// LoadVerifier reads an allowed-signers file and an OpenPGP keyring file
// (either may be "": it trusts no signer of that kind).
func LoadVerifier(allowedSigners, keyring string) (*gitcommit.Verifier, error) {
	v := &gitcommit.Verifier{}
	if allowedSigners != "" {
		b, err := os.ReadFile(allowedSigners)
		if err != nil {
			return nil, fmt.Errorf("promotion.allowedSigners: %w", err)
		}
		if v.Signers, err = gitcommit.ParseAllowedSigners(b); err != nil {
			return nil, fmt.Errorf("promotion.allowedSigners %s: %w", allowedSigners, err)
		}
	}
	if keyring != "" {
		b, err := os.ReadFile(keyring)
		if err != nil {
			return nil, fmt.Errorf("promotion.openpgpKeyring: %w", err)
		}
		if v.Keyring, err = gitcommit.ReadKeyring(b); err != nil {
			return nil, fmt.Errorf("promotion.openpgpKeyring %s: %w", keyring, err)
		}
	}
	return v, nil
}

// Register mounts the endpoint.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/source/", h.submit)
}

// ErrUnverified wraps every reason a submitted commit is refused.
var ErrUnverified = errors.New("source not verified")

// Verify checks raw, the commit object submitted for repo@dgst, against
// the artifact's verified provenance and the allowed signers, and
// returns the record to attach. Nothing is written.
func (h *Handler) Verify(facts *promotion.Facts, repo, dgst string, raw []byte, by string) (evidence.Source, error) {
	c, err := gitcommit.Parse(raw)
	if err != nil {
		return evidence.Source{}, fmt.Errorf("%w: %v", ErrUnverified, err)
	}
	// The commit must be the one the artifact's verified provenance
	// names; every provenance naming a commit must name the same one.
	var commits []string
	for _, p := range facts.Input.Provenance {
		if p.SourceCommit != "" && !slices.Contains(commits, strings.ToLower(p.SourceCommit)) {
			commits = append(commits, strings.ToLower(p.SourceCommit))
		}
	}
	switch len(commits) {
	case 0:
		return evidence.Source{}, fmt.Errorf("%w: no verified provenance of %s@%s names a commit: attach the build's SLSA provenance first", ErrUnverified, repo, dgst)
	case 1:
	default:
		return evidence.Source{}, fmt.Errorf("%w: the verified provenances of %s@%s name different commits (%s)", ErrUnverified, repo, dgst, strings.Join(commits, ", "))
	}
	want := commits[0]
	format := gitcommit.FormatOf(want)
	if format == "" {
		return evidence.Source{}, fmt.Errorf("%w: the provenance names commit %q, which is not a SHA-1 or SHA-256 object ID", ErrUnverified, want)
	}
	id, err := c.ID(format)
	if err != nil {
		return evidence.Source{}, err
	}
	if id != want {
		return evidence.Source{}, fmt.Errorf("%w: the commit object submitted is %s, the provenance names %s", ErrUnverified, id, want)
	}
	s, err := h.verifier.Verify(c, format)
	if err != nil {
		return evidence.Source{}, fmt.Errorf("%w: commit %s: %v", ErrUnverified, id, err)
	}
	return evidence.Source{Repository: repo, Digest: dgst, Commit: id, ObjectFormat: format, Tree: c.Tree, Author: c.Author, Committer: c.Committer,
		Method: s.Method, Principals: s.Principals, KeyFingerprint: s.Fingerprint, VerifiedAt: h.now().UTC(), SubmittedBy: by}, nil
}

func (h *Handler) submit(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/source/")
	repo, dig, ok := strings.Cut(rest, "/@")
	d, err := digest.Parse(dig)
	if !ok || err != nil || !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidReference, "use POST /api/v1/source/<repository>/@<digest> with the commit object (git cat-file commit REV) as the body")
		return
	}
	r, p, ok := h.authz.Require(w, r, "source", repo, auth.PermPush)
	if !ok {
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, gitcommit.MaxBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			problem.Write(w, problem.BodyTooLarge, fmt.Sprintf("a commit object is at most %d bytes", gitcommit.MaxBytes))
			return
		}
		problem.Write(w, problem.UnreadableBody, err.Error())
		return
	}
	if h.svc.Signer == nil {
		problem.Write(w, problem.NoKey, "the server has no unlocked signing key: source verifications are signed (custody key create; CUSTODY_KEY_PASSWORD)")
		return
	}
	ctx := r.Context()
	facts, err := h.svc.Gather(ctx, repo, d.String())
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		problem.Write(w, problem.NotFound, "no artifact "+repo+"@"+d.String())
		return
	}
	if err != nil {
		problem.FailAs(w, r, h.log, problem.ArtifactUnreadable, "reading the artifact or its evidence failed", err)
		return
	}
	rec, err := h.Verify(facts, repo, d.String(), raw, p.Subject)
	if err != nil {
		h.audit.Record(ctx, audit.Event{Action: "source.verify", Repo: repo, Digest: d, Result: "refused", Reason: err.Error(), Request: r})
		problem.Write(w, problem.SourceUnverified, err.Error())
		return
	}
	if err := h.svc.Attest(ctx, repo, d.String(), evidence.PredicateSource, rec); err != nil {
		problem.Fail(w, r, h.log, "recording the source verification failed", err)
		return
	}
	reason := fmt.Sprintf("commit %s signed (%s) by %s, key %s", rec.Commit, rec.Method, strings.Join(rec.Principals, ", "), rec.KeyFingerprint)
	if err := audit.RecordChange(ctx, h.audit, audit.Event{Action: "source.verify", Repo: repo, Digest: d, Result: "ok", Reason: reason, Request: r}); err != nil {
		problem.Fail(w, r, h.log, "auditing the source verification failed", err)
		return
	}
	problem.JSON(w, http.StatusCreated, rec)
}
