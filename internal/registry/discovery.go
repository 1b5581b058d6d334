package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/meta"
)

// pagination reads `n` and `last`. n is capped at the registry's page size
// so a huge n never causes a large allocation; when n is absent a full page
// is returned and a Link header points at the next one.
func (reg *Registry) pagination(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = reg.maxPage
	if s := q.Get("n"); s != "" {
		v, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || v < 0 {
			return 0, "", errorf(http.StatusBadRequest, codePaginationInvalid, "n must be a non-negative integer")
		}
		if v < int64(n) {
			n = int(v)
		}
	}
	return n, last, nil
}

// nextLink sets the Link header for the page after `last` when the page was full.
func nextLink(w http.ResponseWriter, path string, n int, got []string) {
	if n == 0 || len(got) < n {
		return
	}
	q := url.Values{}
	q.Set("n", strconv.Itoa(n))
	q.Set("last", got[len(got)-1])
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func (reg *Registry) tags(w http.ResponseWriter, r *http.Request, rt route) {
	n, last, err := reg.pagination(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	tags, err := reg.meta.Tags(r.Context(), rt.repo, last, n)
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, r, errorf(http.StatusNotFound, codeNameUnknown, "repository name not known to registry"))
			return
		}
		writeError(w, r, reg.internal(r, "list tags", err))
		return
	}
	if tags == nil {
		tags = []string{}
	}
	nextLink(w, "/v2/"+rt.repo+"/tags/list", n, tags)
	writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.repo, tags})
}

func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request, _ route) {
	n, last, err := reg.pagination(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	repos, err := reg.meta.Repositories(r.Context(), last, n)
	if err != nil {
		writeError(w, r, reg.internal(r, "list repositories", err))
		return
	}
	if repos == nil {
		repos = []string{}
	}
	nextLink(w, "/v2/_catalog", n, repos)
	writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// referrers answers the OCI 1.1 referrers API: always an image index, empty
// when nothing refers to the digest. Like tag listings it is paged, in
// digest order: at most the referrers page size (or `n`, if smaller) per
// response, with a Link header (rel="next", carrying `last` and the
// artifactType filter) when the page is full.
func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.ref)
	if err != nil {
		writeError(w, r, err)
		return
	}
	n, lastRef, err := reg.pagination(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if n > reg.maxReferrers {
		n = reg.maxReferrers
	}
	var last digest.Digest
	if lastRef != "" {
		if last, err = parseDigest(lastRef); err != nil {
			writeError(w, r, errorf(http.StatusBadRequest, codeDigestInvalid, "last must be a digest"))
			return
		}
	}
	at := r.URL.Query().Get("artifactType")
	list, err := reg.meta.Referrers(r.Context(), rt.repo, d, at, last, n)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		writeError(w, r, reg.internal(r, "list referrers", err))
		return
	}
	if n > 0 && len(list) == n {
		q := url.Values{}
		q.Set("n", strconv.Itoa(n))
		q.Set("last", list[len(list)-1].Digest.String())
		if at != "" {
			q.Set("artifactType", at)
		}
		w.Header().Set("Link", "</v2/"+rt.repo+"/referrers/"+d.String()+"?"+q.Encode()+`>; rel="next"`)
	}
	idx := v1.Index{
		MediaType: v1.MediaTypeImageIndex,
		Manifests: make([]v1.Descriptor, 0, len(list)),
	}
	idx.SchemaVersion = 2
	for _, x := range list {
		idx.Manifests = append(idx.Manifests, v1.Descriptor{
			MediaType:    x.MediaType,
			Digest:       x.Digest,
			Size:         x.Size,
			ArtifactType: x.ArtifactType,
			Annotations:  x.Annotations,
		})
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, r, v1.MediaTypeImageIndex, idx)
}
