// Package objectlock mirrors custody's retention locks and legal holds
// onto a bucket that enforces write-once itself (S3 Object Lock), and
// reports, as a scrub step, objects whose bucket lock is weaker than
// custody's record.
package objectlock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/scrub"
)

// Bucket is what a blob backend offers when its bucket enforces
// write-once itself (S3 Object Lock).
type Bucket interface {
	ObjectLockEnabled(ctx context.Context) (bool, error)
	SetRetention(ctx context.Context, d digest.Digest, mode string, until time.Time, bypassGovernance bool) error
	SetLegalHold(ctx context.Context, d digest.Digest, on bool) error
	BucketLock(ctx context.Context, d digest.Digest) (mode string, until time.Time, hold bool, err error)
}

// Mirror mirrors custody's retention locks and legal holds onto the
// bucket: every object an artifact references (its manifest, config and
// layers, and child manifests) gets the strongest retention and hold of
// all the artifacts referencing it, so the bucket refuses deletion even to
// someone who bypasses custody. It never shortens or weakens a bucket lock.
type Mirror struct {
	bucket Bucket
	locks  retention.Store
	meta   meta.Store
	log    *slog.Logger
	queue  chan retention.Lock
	done   chan struct{}

	// mu guards the counts of artifacts queued and mirrored; mirrored is
	// closed and replaced whenever one is done (Flush waits on it).
	mu             sync.Mutex
	queued, served uint64
	mirrored       chan struct{}
	closed         bool
}

// Options is what a Mirror works on.
type Options struct {
	// Bucket is the blob backend's bucket.
	Bucket Bucket
	// Locks are custody's retention locks and legal holds; Meta finds the
	// objects each artifact references.
	Locks retention.Store
	Meta  meta.Store
	Log   *slog.Logger
}

// Open starts the mirror when the bucket has Object Lock on, or returns
// nil (retention is then custody's alone).
func Open(ctx context.Context, o Options) (*Mirror, error) {
	on, err := o.Bucket.ObjectLockEnabled(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the bucket's Object Lock configuration: %w", err)
	}
	if !on {
		o.Log.Warn("the S3 bucket has no Object Lock: retention is enforced by custody alone (docs/deploy.md)")
		return nil, nil
	}
	m := &Mirror{bucket: o.Bucket, locks: o.Locks, meta: o.Meta, log: o.Log, queue: make(chan retention.Lock, 4096), done: make(chan struct{}), mirrored: make(chan struct{})}
	go m.run()
	return m, nil
}

// Enqueue asks for l's artifact to be mirrored (after its manifest is
// stored: default retention is set just before).
func (o *Mirror) Enqueue(l retention.Lock) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	select {
	case o.queue <- l:
		o.queued++
	default:
		o.log.Error("object lock: queue full; the next scrub reports the artifact", "repo", l.Repo, "digest", l.Digest)
	}
}

// Flush waits until what was queued before it has been mirrored (or has
// failed, and been logged), or ctx ends.
func (o *Mirror) Flush(ctx context.Context) error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	want := o.queued
	for o.served < want {
		ch := o.mirrored
		o.mu.Unlock()
		select {
		case <-ch:
		case <-o.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
	o.mu.Unlock()
	return nil
}

// Close mirrors what is queued and stops the mirror.
func (o *Mirror) Close() {
	if o != nil {
		o.mu.Lock()
		if !o.closed {
			o.closed = true
			close(o.queue)
		}
		o.mu.Unlock()
		<-o.done
	}
}

func (o *Mirror) run() {
	defer close(o.done)
	for l := range o.queue {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := o.mirror(ctx, l.Repo, l.Digest); err != nil {
			o.log.Error("object lock: mirroring a retention lock onto the bucket failed; the next scrub reports it", "repo", l.Repo, "digest", l.Digest, "err", err)
		}
		cancel()
		o.mu.Lock()
		o.served++
		close(o.mirrored)
		o.mirrored = make(chan struct{})
		o.mu.Unlock()
	}
}

// objects lists what artifact repo@d references, itself included.
func (o *Mirror) objects(ctx context.Context, repo string, d digest.Digest) ([]digest.Digest, error) {
	var m meta.Manifest
	var err error
	for range 50 { // the manifest record lands just after its default lock
		if m, err = o.meta.GetManifest(ctx, repo, d); !errors.Is(err, meta.ErrNotFound) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	out := append([]digest.Digest{d}, m.Blobs...)
	for _, c := range m.Manifests {
		sub, err := o.objects(ctx, repo, c)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// want is the strongest lock over every artifact protecting object d.
func (o *Mirror) want(ctx context.Context, d digest.Digest, now time.Time) (mode string, until time.Time, hold bool, err error) {
	ls, err := o.locks.Protecting(ctx, d, "")
	if err != nil {
		return "", time.Time{}, false, err
	}
	for _, l := range ls {
		hold = hold || l.LegalHold
		if !l.RetainUntil.After(now) {
			continue
		}
		if l.Mode == retention.Compliance || mode == "" {
			mode = l.Mode
		}
		if l.RetainUntil.After(until) {
			until = l.RetainUntil
		}
	}
	return mode, until, hold, nil
}

// mirror applies the strongest lock to every object of repo@d.
func (o *Mirror) mirror(ctx context.Context, repo string, d digest.Digest) error {
	objs, err := o.objects(ctx, repo, d)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, obj := range objs {
		mode, until, hold, err := o.want(ctx, obj, now)
		if err != nil {
			return err
		}
		bm, bu, bh, err := o.bucket.BucketLock(ctx, obj)
		if err != nil {
			return fmt.Errorf("%s: %w", obj, err)
		}
		if mode != "" && bucketWeaker(bm, bu, mode, until, now) {
			if mode == retention.Governance && bm == retention.Compliance {
				mode = retention.Compliance // never weaken the bucket's mode
			}
			if bu.After(until) {
				until = bu
			}
			upgrade := bm == retention.Governance && mode == retention.Compliance && bu.After(now)
			if err := o.bucket.SetRetention(ctx, obj, mode, until, upgrade); err != nil {
				return fmt.Errorf("%s: retention: %w", obj, err)
			}
		}
		if hold != bh {
			if err := o.bucket.SetLegalHold(ctx, obj, hold); err != nil {
				return fmt.Errorf("%s: legal hold: %w", obj, err)
			}
		}
	}
	return nil
}

// bucketWeaker reports whether the bucket's lock (bm until bu) is weaker
// than custody's (mode until until) at now.
func bucketWeaker(bm string, bu time.Time, mode string, until, now time.Time) bool {
	if !bu.After(now) {
		bm = "" // expired: no lock
	}
	switch {
	case bm == "":
		return true
	case mode == retention.Compliance && bm != retention.Compliance:
		return true
	}
	return bu.Before(until.Truncate(time.Second))
}

// Check reports objects whose bucket lock is weaker than custody's record
// (a scrub step): the bucket should refuse what custody refuses. It first
// lets the mirror finish what is queued, so a lock set a moment ago is
// not reported.
func (o *Mirror) Check(ctx context.Context, md meta.Store) ([]scrub.Problem, error) {
	if err := o.Flush(ctx); err != nil {
		return nil, err
	}
	var out []scrub.Problem
	now := time.Now()
	last := ""
	for {
		repos, err := md.Repositories(ctx, last, 1000)
		if err != nil {
			return out, err
		}
		for _, repo := range repos {
			ls, err := o.locks.ListLocks(ctx, repo)
			if err != nil {
				return out, err
			}
			for _, l := range ls {
				if !l.Retained(now) && !l.LegalHold {
					continue
				}
				objs, err := o.objects(ctx, repo, l.Digest)
				if err != nil {
					continue
				}
				for _, obj := range objs {
					mode, until, hold, err := o.want(ctx, obj, now)
					if err != nil {
						return out, err
					}
					bm, bu, bh, err := o.bucket.BucketLock(ctx, obj)
					if err != nil {
						return out, err
					}
					var detail string
					switch {
					case mode != "" && bucketWeaker(bm, bu, mode, until, now):
						detail = fmt.Sprintf("bucket retention %s until %s is weaker than custody's %s until %s", cmp.Or(bm, "nothing"), bu.Format(time.RFC3339), mode, until.Format(time.RFC3339))
					case hold && !bh:
						detail = "custody holds it under legal hold, the bucket does not"
					default:
						continue
					}
					out = append(out, scrub.Problem{Kind: "object-lock", Digest: obj, Repos: []string{repo}, Detail: detail})
				}
			}
		}
		if len(repos) < 1000 {
			return out, nil
		}
		last = repos[len(repos)-1]
	}
}
