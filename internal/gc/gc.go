// Package gc is custody's online garbage collector. It reclaims
//
//   - blobs in the blob store that no repository links and no manifest
//     record is or references,
//   - untagged manifests that no index references and that are not
//     referrers of a live manifest, in repositories that opt in,
//   - upload sessions idle for longer than the upload TTL,
//
// while the registry keeps serving pushes. Safety against concurrent
// pushes rests on three rules, described in docs/maintenance.md: a grace
// period (nothing younger than Grace is deleted), a re-check of every
// candidate inside a metadata write transaction that performs the deletion
// while it holds the write lock, and a per-digest lock (blob.Locks) that the
// registry holds from storing bytes until the metadata naming them commits.
// Content under retention or legal hold is never deleted: every candidate
// is offered to Protector first, and the blob store may refuse on its own.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/repopattern"
)

// Protector says whether content is under retention or legal hold. The
// retention engine implements it.
type Protector interface {
	Protected(ctx context.Context, d digest.Digest) (bool, error)
}

// NothingProtected is the default Protector.
type NothingProtected struct{}

// Protected implements Protector.
func (NothingProtected) Protected(context.Context, digest.Digest) (bool, error) { return false, nil }

// Manifest is what the collector needs to know about one manifest.
type Manifest struct {
	Digest   digest.Digest
	Subject  digest.Digest
	Created  time.Time
	Tagged   bool
	Children []digest.Digest // child manifests of an index
}

// Store is the metadata the collector needs beyond meta.Store. Every
// deletion re-checks its condition inside a write transaction.
type Store interface {
	meta.Store
	// ReferencedBlobs calls fn, from one snapshot, for every digest that
	// is linked, referenced by a manifest, or the bytes of a manifest.
	ReferencedBlobs(ctx context.Context, fn func(d digest.Digest) error) error
	// DeleteBlobIfUnreferenced re-checks in a write transaction that
	// nothing links or references d and, if so, calls del before the
	// transaction ends. It reports whether del ran without error.
	DeleteBlobIfUnreferenced(ctx context.Context, d digest.Digest, del func() error) (bool, error)
	// GCManifests lists the manifests of repo from one snapshot.
	GCManifests(ctx context.Context, repo string) ([]Manifest, error)
	// DeleteUntaggedManifest deletes manifest d of repo if, in a write
	// transaction, it is still created before notAfter, untagged,
	// referenced by no manifest and its subject chain is collectable.
	DeleteUntaggedManifest(ctx context.Context, repo string, d digest.Digest, notAfter time.Time) (bool, error)
}

// Ager reports when a blob was last written (its file's modification time
// for the filesystem store).
type Ager interface {
	ModTime(ctx context.Context, d digest.Digest) (time.Time, error)
}

// Collector runs garbage collection over one pair of stores.
type Collector struct {
	Blobs blob.Store
	Meta  Store
	// Ages gives blob ages for the grace period. Required.
	Ages Ager
	// Locks is shared with the registry serving the same stores.
	Locks *blob.Locks
	// Protected vetoes deletion of content under retention or hold.
	Protected Protector
	// Grace: nothing written (blob) or created (manifest) less than Grace
	// ago is deleted.
	Grace time.Duration
	// UploadTTL: upload sessions idle longer than this are purged.
	UploadTTL time.Duration
	// UntaggedRepos are the repository patterns (internal/repopattern)
	// where untagged manifests are collected.
	UntaggedRepos []string
	Log           *slog.Logger
	Now           func() time.Time
}

// Item is one deleted (or, in a dry run, deletable) object.
type Item struct {
	Repo   string        `json:"repo,omitempty"`
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size,omitempty"`
}

// Report is the result of one run.
type Report struct {
	DryRun    bool      `json:"dryRun"`
	Started   time.Time `json:"started"`
	Duration  string    `json:"duration"`
	Manifests []Item    `json:"manifests"`
	Blobs     []Item    `json:"blobs"`
	// BytesReclaimed sums the sizes of Blobs.
	BytesReclaimed int64 `json:"bytesReclaimed"`
	UploadsPurged  int   `json:"uploadsPurged"`
	// Protected counts candidates kept because they are under retention
	// or hold; Errors lists deletions that failed (and were skipped).
	Protected int      `json:"protected"`
	Errors    []string `json:"errors"`
}

// Run performs one collection: untagged manifests first (so the blobs only
// they referenced become candidates in the same run), then blobs, then
// stale uploads. With dryRun it deletes nothing and reports the candidates
// of the mark phase.
func (c *Collector) Run(ctx context.Context, dryRun bool) (*Report, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	prot := c.Protected
	if prot == nil {
		prot = NothingProtected{}
	}
	if c.Ages == nil {
		return nil, errors.New("gc: no blob ages")
	}
	start := now()
	cutoff := start.Add(-c.Grace)
	rep := &Report{DryRun: dryRun, Started: start.UTC(), Manifests: []Item{}, Blobs: []Item{}, Errors: []string{}}

	if len(c.UntaggedRepos) > 0 {
		if err := c.collectManifests(ctx, rep, cutoff, prot, dryRun); err != nil {
			return rep, err
		}
	}
	if err := c.collectBlobs(ctx, rep, cutoff, prot, dryRun, log); err != nil {
		return rep, err
	}
	if c.UploadTTL > 0 {
		n, err := PurgeUploads(ctx, c.Blobs, c.Meta, start.Add(-c.UploadTTL), dryRun)
		rep.UploadsPurged = n
		if err != nil {
			return rep, err
		}
	}
	rep.Duration = now().Sub(start).String()
	log.Info("gc finished", "dry_run", dryRun, "manifests", len(rep.Manifests), "blobs", len(rep.Blobs),
		"bytes", rep.BytesReclaimed, "uploads", rep.UploadsPurged, "protected", rep.Protected, "errors", len(rep.Errors))
	return rep, nil
}

// collectManifests marks the live manifests of every opted-in repository
// (tagged, reachable from a live index, or a referrer of a live manifest)
// and deletes the others older than cutoff.
func (c *Collector) collectManifests(ctx context.Context, rep *Report, cutoff time.Time, prot Protector, dryRun bool) error {
	last := ""
	for {
		repos, err := c.Meta.Repositories(ctx, last, 1000)
		if err != nil {
			return fmt.Errorf("gc: repositories: %w", err)
		}
		if len(repos) == 0 {
			return nil
		}
		last = repos[len(repos)-1]
		for _, repo := range repos {
			if !repopattern.MatchAny(c.UntaggedRepos, repo) {
				continue
			}
			if err := c.collectRepo(ctx, rep, repo, cutoff, prot, dryRun); err != nil {
				return err
			}
		}
	}
}

func (c *Collector) collectRepo(ctx context.Context, rep *Report, repo string, cutoff time.Time, prot Protector, dryRun bool) error {
	ms, err := c.Meta.GCManifests(ctx, repo)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	byDigest := make(map[digest.Digest]*Manifest, len(ms))
	referrers := map[digest.Digest][]digest.Digest{}
	for i := range ms {
		m := &ms[i]
		byDigest[m.Digest] = m
		if m.Subject != "" {
			referrers[m.Subject] = append(referrers[m.Subject], m.Digest)
		}
	}
	live := map[digest.Digest]bool{}
	var stack []digest.Digest
	for _, m := range ms {
		if m.Tagged || !m.Created.Before(cutoff) {
			stack = append(stack, m.Digest)
		}
	}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if live[d] {
			continue
		}
		live[d] = true
		if m := byDigest[d]; m != nil {
			stack = append(stack, m.Children...)
		}
		stack = append(stack, referrers[d]...)
	}
	// Delete until a pass removes nothing: an index goes before the
	// children it kept referenced, a subject's referrers before... nothing
	// depends on order for correctness, only for completeness.
	var cands []digest.Digest
	for _, m := range ms {
		if !live[m.Digest] {
			cands = append(cands, m.Digest)
		}
	}
	for len(cands) > 0 {
		var rest []digest.Digest
		for _, d := range cands {
			if p, err := prot.Protected(ctx, d); err != nil {
				return fmt.Errorf("gc: protected %s: %w", d, err)
			} else if p {
				rep.Protected++
				continue
			}
			if dryRun {
				rep.Manifests = append(rep.Manifests, Item{Repo: repo, Digest: d})
				continue
			}
			ok, err := c.Meta.DeleteUntaggedManifest(ctx, repo, d, cutoff)
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			if ok {
				rep.Manifests = append(rep.Manifests, Item{Repo: repo, Digest: d})
			} else {
				rest = append(rest, d)
			}
		}
		if len(rest) == len(cands) || dryRun {
			return nil
		}
		cands = rest
	}
	return nil
}

// collectBlobs deletes the blobs outside the referenced snapshot, older
// than cutoff, after re-checking each in a write transaction under its
// digest lock.
func (c *Collector) collectBlobs(ctx context.Context, rep *Report, cutoff time.Time, prot Protector, dryRun bool, log *slog.Logger) error {
	// Mark. Blobs written after the snapshot are younger than cutoff
	// (Grace is positive) or re-checked below anyway.
	marked := map[digest.Digest]struct{}{}
	if err := c.Meta.ReferencedBlobs(ctx, func(d digest.Digest) error {
		marked[d] = struct{}{}
		return nil
	}); err != nil {
		return fmt.Errorf("gc: mark: %w", err)
	}
	type cand struct {
		d    digest.Digest
		size int64
	}
	var cands []cand
	if err := c.Blobs.Walk(ctx, func(d digest.Digest, size int64) error {
		if _, ok := marked[d]; !ok {
			cands = append(cands, cand{d, size})
		}
		return nil
	}); err != nil {
		return fmt.Errorf("gc: walk blobs: %w", err)
	}
	// Sweep.
	for _, b := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		deleted, err := c.sweepBlob(ctx, b.d, cutoff, prot, dryRun, rep)
		if err != nil {
			log.Warn("gc: blob not deleted", "digest", b.d, "err", err)
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", b.d, err))
			continue
		}
		if deleted {
			rep.Blobs = append(rep.Blobs, Item{Digest: b.d, Size: b.size})
			rep.BytesReclaimed += b.size
		}
	}
	return nil
}

func (c *Collector) sweepBlob(ctx context.Context, d digest.Digest, cutoff time.Time, prot Protector, dryRun bool, rep *Report) (bool, error) {
	unlock := c.Locks.Lock(d)
	defer unlock()
	mt, err := c.Ages.ModTime(ctx, d)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !mt.Before(cutoff) {
		return false, nil
	}
	if p, err := prot.Protected(ctx, d); err != nil {
		return false, err
	} else if p {
		rep.Protected++
		return false, nil
	}
	if dryRun {
		linked, err := c.Meta.BlobLinked(ctx, d)
		return err == nil && !linked, err
	}
	return c.Meta.DeleteBlobIfUnreferenced(ctx, d, func() error {
		err := c.Blobs.Delete(ctx, d)
		if errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		return err
	})
}

// PurgeUploads removes upload sessions last updated before before, upload
// files no session refers to, and temporary files of backends that have
// them. With dryRun it only counts the sessions.
func PurgeUploads(ctx context.Context, blobs blob.Store, md meta.Store, before time.Time, dryRun bool) (int, error) {
	stale, err := md.StaleUploads(ctx, before)
	if err != nil {
		return 0, err
	}
	if dryRun {
		return len(stale), nil
	}
	n := 0
	for _, u := range stale {
		if err := blobs.AbortUpload(ctx, u.ID); err != nil && !errors.Is(err, blob.ErrUploadNotFound) {
			return n, err
		}
		if err := md.DeleteUpload(ctx, u.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return n, err
		}
		n++
	}
	// Files without a session: left by a crash between creating the file
	// and recording the session.
	var orphans []string
	err = blobs.Uploads(ctx, func(id string, modified time.Time) error {
		if modified.Before(before) {
			if _, err := md.GetUpload(ctx, id); errors.Is(err, meta.ErrNotFound) {
				orphans = append(orphans, id)
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	for _, id := range orphans {
		if err := blobs.AbortUpload(ctx, id); err == nil {
			n++
		}
	}
	// The backend's own temporary data (a Put cut off by a crash).
	k, err := blobs.PurgeTemp(ctx, before)
	return n + k, err
}
