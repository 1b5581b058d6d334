package feed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/registry"
)

// Labels are names for versions that move, such as npm's dist-tags
// ("latest", "beta"). A version's tag never moves, and moving a tag is
// the promoter's right, not a publisher's; so a label is kept as an
// append-only log of tags in the package's repository:
// "__<label>.<sequence>" (ten digits), each pointing at the version the
// label named from then on, or at a tombstone manifest (artifactType
// TombstoneType) once it was removed. The entry with the highest sequence
// is the label's value. Setting or removing a label creates a tag, which
// a writer may do; the history stays in the registry and the audit log.
// Version tags never begin "__" (see VersionTag), so the two never meet.

// TombstoneType is the artifactType of the manifest a removed label
// points at.
const TombstoneType = "application/vnd.custody.feed.label-removed.v1"

const (
	labelPrefix = "__"
	seqDigits   = 10
	// maxLabel keeps "__<label>.<sequence>" within the 128 characters of
	// a tag.
	maxLabel = 128 - len(labelPrefix) - 1 - seqDigits
)

// ValidLabel reports whether name may be a label: 1 to 115 letters,
// digits, '.' and '-', starting with a letter or digit.
func ValidLabel(name string) bool {
	if name == "" || len(name) > maxLabel {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '-') {
			return false
		}
	}
	return true
}

func labelTag(name string, seq uint64) string {
	return fmt.Sprintf("%s%s.%0*d", labelPrefix, name, seqDigits, seq)
}

// parseLabelTag splits a label log tag; ok is false for any other tag.
func parseLabelTag(tag string) (name string, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(tag, labelPrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 || len(rest)-i-1 != seqDigits {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil || !ValidLabel(rest[:i]) {
		return "", 0, false
	}
	return rest[:i], seq, true
}

// IsLabelTag reports whether tag is an entry of a label log.
func IsLabelTag(tag string) bool {
	_, _, ok := parseLabelTag(tag)
	return ok
}

// heads returns, per label, the tag of its newest log entry.
func heads(tags []string) map[string]struct {
	tag string
	seq uint64
} {
	out := map[string]struct {
		tag string
		seq uint64
	}{}
	for _, t := range tags {
		name, seq, ok := parseLabelTag(t)
		if !ok {
			continue
		}
		if cur, seen := out[name]; !seen || seq > cur.seq {
			out[name] = struct {
				tag string
				seq uint64
			}{t, seq}
		}
	}
	return out
}

// Labels returns the current labels of repo, read from its tags (as Tags
// lists them): label -> the manifest digest it names. Removed labels are
// left out.
func (s *Store) Labels(ctx context.Context, repo string, tags []string) (map[string]digest.Digest, error) {
	out := map[string]digest.Digest{}
	for name, h := range heads(tags) {
		d, err := s.meta.ResolveTag(ctx, repo, h.tag)
		if errors.Is(err, meta.ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		m, err := s.meta.GetManifest(ctx, repo, d)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if m.ArtifactType == TombstoneType {
			continue
		}
		out[name] = d
	}
	return out, nil
}

// SetLabel points label name of repo at manifest target (a version of
// repo) on behalf of r, appending to the label's log; setting a label to
// the version it names already changes nothing.
func (s *Store) SetLabel(ctx context.Context, r *http.Request, repo, name string, target digest.Digest) error {
	return s.appendLabel(ctx, r, repo, name, target)
}

// RemoveLabel removes label name of repo on behalf of r; removed reports
// whether it was set.
func (s *Store) RemoveLabel(ctx context.Context, r *http.Request, repo, name string) (removed bool, err error) {
	tags, err := s.Tags(ctx, repo)
	if err != nil {
		return false, err
	}
	cur, err := s.Labels(ctx, repo, tags)
	if err != nil {
		return false, err
	}
	if _, ok := cur[name]; !ok {
		return false, nil
	}
	return true, s.appendLabel(ctx, r, repo, name, "")
}

// appendLabel appends an entry to the label's log: target, or a tombstone
// when target is empty. A concurrent writer taking the same sequence makes
// it try the next one.
func (s *Store) appendLabel(ctx context.Context, r *http.Request, repo, name string, target digest.Digest) error {
	if !ValidLabel(name) {
		return fmt.Errorf("invalid label %q", name)
	}
	for range 8 {
		tags, err := s.Tags(ctx, repo)
		if err != nil {
			return err
		}
		var next uint64 = 1
		if h, ok := heads(tags)[name]; ok {
			next = h.seq + 1
			if target != "" {
				if d, err := s.meta.ResolveTag(ctx, repo, h.tag); err == nil && d == target {
					return nil
				}
			}
		}
		tag := labelTag(name, next)
		if target == "" {
			_, err = s.Seal(ctx, r, Spec{Repo: repo, Tag: tag, ArtifactType: TombstoneType})
		} else {
			err = s.Tag(ctx, r, repo, tag, target)
		}
		var exists *ExistsError
		if errors.As(err, &exists) {
			continue
		}
		return err
	}
	return fmt.Errorf("label %s of %s: too many concurrent changes", name, repo)
}

// Tag points a new tag at manifest d of repo on behalf of r, after the
// registry's tag policy allowed it, and records it in the audit log. It
// never moves a tag: one that names another manifest is *ExistsError.
func (s *Store) Tag(ctx context.Context, r *http.Request, repo, tag string, d digest.Digest) error {
	m, err := s.meta.GetManifest(ctx, repo, d)
	if err != nil {
		return err
	}
	check := func(tag string, current, next digest.Digest) error {
		if current != "" && current != next {
			return &ExistsError{Current: current}
		}
		if current == next {
			return nil
		}
		return s.policy.CheckTag(ctx, repo, tag, current, next)
	}
	if err := s.meta.PutManifestVerified(ctx, m, []string{tag}, check); err != nil {
		if errors.Is(err, registry.ErrDenied) {
			s.audit.Record(ctx, audit.Event{Action: "tag.set", Repo: repo, Digest: d, Tag: tag, Result: "denied", Reason: err.Error(), Request: r})
		}
		return err
	}
	return audit.RecordChange(ctx, s.audit,
		audit.Event{Action: "tag.set", Repo: repo, Digest: d, Tag: tag, Result: "ok", Reason: "created", Request: r})
}
