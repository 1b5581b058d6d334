// Package catalog serves the repository catalog under /api/v1/: the
// repositories a caller may read, searched by name and paginated, and a
// repository's tags with what each points at (size, build metadata,
// immutability, retention). The web interface's Repositories and
// Repository pages read it; so can any API client.
//
//	GET /api/v1/repositories?q=&prefix=&after=&n=        → List
//	GET /api/v1/repositories/<repo...>/tags?after=&n=    → Tags
//	GET /api/v1/repositories/<repo...>/tags?sort=name|pushed|size&order=asc|desc&page=&n=
//
// Errors are RFC 9457 problem details.
package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/retention"
)

// Page sizes.
const (
	// DefaultPage is n when the request names none.
	DefaultPage = 50
	// MaxRepositories and MaxTags cap n.
	MaxRepositories = 1000
	MaxTags         = 200
	// MaxSortedTags caps the repositories whose tags are sorted by other
	// than name ascending: every tag is read to sort them (name
	// ascending pages by the store's own order instead).
	MaxSortedTags = 10000
	// scanChunk is how many names one store read returns while a filter
	// looks for matches.
	scanChunk = 1000
)

// Handler serves the catalog.
type Handler struct {
	Meta  meta.Store
	Locks retention.Store
	// Immutable names the rule that keeps tag from moving in repo, or "".
	Immutable func(repo, tag string) string
	// CanRead reports whether the request's caller may read repo: only
	// those repositories are listed. The server's access control decides
	// (internal/auth), with every repository readable when it is off.
	CanRead func(ctx context.Context, repo string) bool
	Log     *slog.Logger
}

// List is the answer of GET /api/v1/repositories.
type List struct {
	Repositories []string `json:"repositories"`
	// Next is the after= of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

// Tag is one tag of a repository and the artifact it points at.
type Tag struct {
	Name      string        `json:"name"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	// Size is the manifest with its config and layers (for an index,
	// with its platforms' manifests and theirs).
	Size int64 `json:"size"`
	// Pushed is when custody recorded the manifest.
	Pushed      time.Time `json:"pushed"`
	Revision    string    `json:"revision,omitempty"`
	Source      string    `json:"source,omitempty"`
	Version     string    `json:"version,omitempty"`
	Created     string    `json:"created,omitempty"` // the annotation, as pushed
	BuildNumber string    `json:"buildNumber,omitempty"`
	// Immutable names the policy rule that keeps the tag from moving.
	Immutable string `json:"immutable,omitempty"`
	// Retention is the artifact's lock, if it has one.
	Retention *retention.Lock `json:"retention,omitempty"`
}

// Tags is the answer of GET /api/v1/repositories/<repo>/tags.
type Tags struct {
	Repository string `json:"repository"`
	Tags       []Tag  `json:"tags"`
	// Next is the after= of the next page (name ascending); empty on the
	// last page.
	Next string `json:"next,omitempty"`
	// Page and Pages number the pages of another order (sort= or
	// order=desc), which pages by ?page= instead.
	Page  int `json:"page,omitempty"`
	Pages int `json:"pages,omitempty"`
}

// tagOrders are the sort= keys of a tag listing.
var tagOrders = map[string]func(a, b Tag) int{
	"name":   func(a, b Tag) int { return strings.Compare(a.Name, b.Name) },
	"pushed": func(a, b Tag) int { return cmp.Or(a.Pushed.Compare(b.Pushed), strings.Compare(a.Name, b.Name)) },
	"size":   func(a, b Tag) int { return cmp.Or(cmp.Compare(a.Size, b.Size), strings.Compare(a.Name, b.Name)) },
}

// Register mounts the catalog on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/repositories", h.list)
	mux.HandleFunc("GET /api/v1/repositories/", h.tags)
}

// pageSize reads n: DefaultPage when absent, 1 to max.
func pageSize(r *http.Request, max int) (int, bool) {
	v := r.URL.Query().Get("n")
	if v == "" {
		return DefaultPage, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, false
	}
	return n, true
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, ok := pageSize(r, MaxRepositories)
	if !ok {
		problem.Write(w, problem.Invalid, "n must be between 1 and "+strconv.Itoa(MaxRepositories))
		return
	}
	sub, prefix, after := strings.ToLower(strings.TrimSpace(q.Get("q"))), q.Get("prefix"), q.Get("after")
	if len(sub) > 256 || len(prefix) > 256 || len(after) > 256 {
		problem.Write(w, problem.Invalid, "q, prefix and after are at most 256 bytes")
		return
	}
	if strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz0123456789._/-") != "" {
		problem.Write(w, problem.Invalid, "a prefix holds only the characters of repository names (a-z, 0-9, '.', '_', '-', '/')")
		return
	}
	list, err := h.find(r.Context(), sub, prefix, after, n)
	if err != nil {
		problem.Error(w, r, h.Log, "listing repositories", err)
		return
	}
	problem.JSON(w, http.StatusOK, list)
}

// find collects the first n readable repositories after after whose name
// starts with prefix and contains sub, reading the store's name order in
// chunks from the prefix on and stopping past it.
func (h *Handler) find(ctx context.Context, sub, prefix, after string, n int) (List, error) {
	out := List{Repositories: []string{}}
	last := after
	if prefix != "" && last < prefix {
		// Names sort bytewise and hold only ASCII name characters (the
		// prefix is checked to): every name with the prefix sorts after
		// the prefix with its last byte one lower and 0xff appended.
		last = prefix[:len(prefix)-1] + string([]byte{prefix[len(prefix)-1] - 1, 0xff})
	}
	for {
		names, err := h.Meta.Repositories(ctx, last, scanChunk)
		if err != nil {
			return List{}, err
		}
		for _, name := range names {
			if prefix != "" && !strings.HasPrefix(name, prefix) {
				if name > prefix {
					return out, nil // past every name with the prefix
				}
				continue
			}
			if (sub != "" && !strings.Contains(name, sub)) || !h.CanRead(ctx, name) {
				continue
			}
			if len(out.Repositories) == n {
				out.Next = out.Repositories[n-1]
				return out, nil
			}
			out.Repositories = append(out.Repositories, name)
		}
		if len(names) < scanChunk {
			return out, nil
		}
		last = names[len(names)-1]
	}
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request) {
	repo, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/repositories/"), "/tags")
	if !ok {
		problem.Write(w, problem.NotFound, "use /api/v1/repositories/<repository>/tags")
		return
	}
	if !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidName, "repository name "+strconv.Quote(repo)+" is not valid")
		return
	}
	n, ok := pageSize(r, MaxTags)
	if !ok {
		problem.Write(w, problem.Invalid, "n must be between 1 and "+strconv.Itoa(MaxTags))
		return
	}
	q := r.URL.Query()
	sortKey, order := cmp.Or(q.Get("sort"), "name"), cmp.Or(q.Get("order"), "asc")
	byKey, known := tagOrders[sortKey]
	if !known || (order != "asc" && order != "desc") {
		problem.Write(w, problem.Invalid, "sort must be name, pushed or size and order asc or desc")
		return
	}
	if sortKey != "name" || order != "asc" {
		h.sortedTags(w, r, repo, n, byKey, order == "desc")
		return
	}
	after := q.Get("after")
	ctx := r.Context()
	names, err := h.Meta.Tags(ctx, repo, after, n+1)
	if errors.Is(err, meta.ErrNotFound) {
		problem.Write(w, problem.NotFound, "no repository "+strconv.Quote(repo))
		return
	}
	if err != nil {
		problem.Error(w, r, h.Log, "listing tags", err)
		return
	}
	out := Tags{Repository: repo, Tags: []Tag{}}
	if len(names) > n {
		names, out.Next = names[:n], names[n-1]
	}
	if out.Tags, err = h.describe(ctx, repo, names); err != nil {
		problem.Error(w, r, h.Log, "listing tags", err)
		return
	}
	problem.JSON(w, http.StatusOK, out)
}

// sortedTags answers page ?page= (from 1) of every tag of repo in the
// order of by (reversed when desc), n a page: each tag is read to sort
// them, so a repository of more than MaxSortedTags tags is refused.
func (h *Handler) sortedTags(w http.ResponseWriter, r *http.Request, repo string, n int, by func(a, b Tag) int, desc bool) {
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 {
			problem.Write(w, problem.Invalid, "page must be a whole number from 1")
			return
		}
		page = p
	}
	if r.URL.Query().Has("after") {
		problem.Write(w, problem.Invalid, "after= pages tags by name; another order pages with page=")
		return
	}
	ctx := r.Context()
	var names []string
	for last := ""; ; {
		chunk, err := h.Meta.Tags(ctx, repo, last, scanChunk)
		if errors.Is(err, meta.ErrNotFound) {
			problem.Write(w, problem.NotFound, "no repository "+strconv.Quote(repo))
			return
		}
		if err != nil {
			problem.Error(w, r, h.Log, "listing tags", err)
			return
		}
		names = append(names, chunk...)
		if len(names) > MaxSortedTags {
			problem.Write(w, problem.Invalid, fmt.Sprintf("%s has more than %d tags: list them by name (without sort= and order=)", repo, MaxSortedTags))
			return
		}
		if len(chunk) < scanChunk {
			break
		}
		last = chunk[len(chunk)-1]
	}
	all, err := h.describe(ctx, repo, names)
	if err != nil {
		problem.Error(w, r, h.Log, "listing tags", err)
		return
	}
	slices.SortStableFunc(all, func(a, b Tag) int {
		if desc {
			return by(b, a)
		}
		return by(a, b)
	})
	out := Tags{Repository: repo, Tags: []Tag{}, Page: page, Pages: max(1, (len(all)+n-1)/n)}
	if lo := (page - 1) * n; lo < len(all) {
		out.Tags = all[lo:min(lo+n, len(all))]
	}
	problem.JSON(w, http.StatusOK, out)
}

// describe reads each tag of names (skipping those deleted since they
// were listed) with its artifact's retention lock.
func (h *Handler) describe(ctx context.Context, repo string, names []string) ([]Tag, error) {
	locks, err := h.Locks.ListLocks(ctx, repo)
	if err != nil {
		return nil, err
	}
	byDigest := make(map[digest.Digest]retention.Lock, len(locks))
	for _, l := range locks {
		byDigest[l.Digest] = l
	}
	out := []Tag{}
	for _, name := range names {
		t, err := h.tag(ctx, repo, name)
		if errors.Is(err, meta.ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		if l, ok := byDigest[t.Digest]; ok && (l.Mode != "" || l.LegalHold) {
			t.Retention = &l
		}
		out = append(out, t)
	}
	return out, nil
}

// tag describes one tag.
func (h *Handler) tag(ctx context.Context, repo, name string) (Tag, error) {
	d, err := h.Meta.ResolveTag(ctx, repo, name)
	if err != nil {
		return Tag{}, err
	}
	m, err := h.Meta.GetManifest(ctx, repo, d)
	if err != nil {
		return Tag{}, err
	}
	size, err := h.size(ctx, m, 1)
	if err != nil {
		return Tag{}, err
	}
	a := m.Annotations
	return Tag{Name: name, Digest: d, MediaType: m.MediaType, Size: size, Pushed: m.Created,
		Revision: a[builds.AnnotationRevision], Source: a[builds.AnnotationSource], Version: a[builds.AnnotationVersion],
		Created: a[builds.AnnotationCreated], BuildNumber: a[builds.AnnotationBuildNumber],
		Immutable: h.Immutable(repo, name)}, nil
}

// size adds up a manifest, its blobs and (depth levels of) its child
// manifests.
func (h *Handler) size(ctx context.Context, m meta.Manifest, depth int) (int64, error) {
	total := m.Size
	for _, b := range m.Blobs {
		n, err := h.Meta.BlobSize(ctx, m.Repo, b)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		total += n
	}
	if depth == 0 {
		return total, nil
	}
	for _, c := range m.Manifests {
		cm, err := h.Meta.GetManifest(ctx, m.Repo, c)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		n, err := h.size(ctx, cm, depth-1)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
