package tlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
)

// Holdings is the registry state the log must account for: the metadata
// store's repositories and their tags (meta.Store implements it).
type Holdings interface {
	Repositories(ctx context.Context, last string, n int) ([]string, error)
	Tags(ctx context.Context, repo, last string, n int) ([]string, error)
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
}

// TagSet is the action of the entries that record a tag being set (by a
// manifest put, also of a generic file).
const TagSet = "tag.set"

// MaxUnrecorded caps the tags one reconciliation reports.
const MaxUnrecorded = 1000

// UnrecordedTag is a tag whose current target no entry records.
type UnrecordedTag struct {
	Repo   string `json:"repo"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

// Reconciliation is the result of Reconcile and the body of GET
// /api/v1/audit/reconcile.
type Reconciliation struct {
	// Tags is how many tags were checked.
	Tags int `json:"tags"`
	// Unrecorded lists the tags (at most MaxUnrecorded) whose current
	// digest no ok tag.set entry records: changes the metadata holds that
	// the log does not.
	Unrecorded []UnrecordedTag `json:"unrecorded"`
	// Truncated is true when more tags were unrecorded than listed.
	Truncated bool `json:"truncated,omitempty"`
}

// Reconcile checks every tag h holds against the log: the log must hold
// an ok tag.set entry for the tag's repository, name and current digest.
func (l *Log) Reconcile(ctx context.Context, h Holdings) (Reconciliation, error) {
	out := Reconciliation{Unrecorded: []UnrecordedTag{}}
	const page = 1000
	for lastRepo := ""; ; {
		repos, err := h.Repositories(ctx, lastRepo, page)
		if err != nil {
			return out, fmt.Errorf("listing repositories: %w", err)
		}
		for _, repo := range repos {
			for lastTag := ""; ; {
				tags, err := h.Tags(ctx, repo, lastTag, page)
				if err != nil {
					return out, fmt.Errorf("listing the tags of %s: %w", repo, err)
				}
				for _, tag := range tags {
					d, err := h.ResolveTag(ctx, repo, tag)
					if errors.Is(err, meta.ErrNotFound) {
						continue // deleted meanwhile: nothing to account for
					}
					if err != nil {
						return out, fmt.Errorf("resolving %s:%s: %w", repo, tag, err)
					}
					out.Tags++
					ok, err := l.recordsTag(ctx, repo, tag, d)
					if err != nil {
						return out, err
					}
					if ok {
						continue
					}
					if len(out.Unrecorded) == MaxUnrecorded {
						out.Truncated = true
						continue
					}
					out.Unrecorded = append(out.Unrecorded, UnrecordedTag{Repo: repo, Tag: tag, Digest: d.String()})
				}
				if len(tags) < page {
					break
				}
				lastTag = tags[len(tags)-1]
			}
		}
		if len(repos) < page {
			return out, nil
		}
		lastRepo = repos[len(repos)-1]
	}
}

// recordsTag reports whether an ok tag.set entry records repo:tag set to
// d.
func (l *Log) recordsTag(ctx context.Context, repo, tag string, d digest.Digest) (bool, error) {
	leaves, err := l.store.TlogSearch(ctx, Query{Repo: repo, Digest: d.String()})
	if err != nil {
		return false, err
	}
	for _, lf := range leaves {
		e, err := ParseEntry(lf.Entry)
		if err == nil && e.Action == TagSet && e.Result == "ok" && e.Tag == tag {
			return true, nil
		}
	}
	return false, nil
}
