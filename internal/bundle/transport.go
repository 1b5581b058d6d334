package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/registry"
)

// Host is the registry host name to use in references served by
// Transport (any host works; this one cannot collide with a real one).
const Host = "bundle.invalid"

// Transport serves the bundle as a read-only registry (the /v2/ API:
// manifests, blobs, tags list, referrers) in process, for
// go-containerregistry's remote.WithTransport: evidence.Collect and copies
// run unchanged against it, with no network. Requests for any host are
// answered; writes are refused with 405.
func (b *Bundle) Transport() http.RoundTripper { return &transport{b: b} }

type transport struct {
	b    *Bundle
	once sync.Once
	repo map[string]*repoView
}

// repoView is what one repository of the bundle holds.
type repoView struct {
	manifests map[digest.Digest]string // digest -> media type
	tags      map[string]digest.Digest
	referrers map[digest.Digest][]digest.Digest // subject -> referrer manifests
}

func (t *transport) build() {
	t.repo = map[string]*repoView{}
	for _, d := range t.b.index.Manifests {
		name := d.Annotations[AnnotationRepository]
		if name == "" {
			continue
		}
		rv := t.repo[name]
		if rv == nil {
			rv = &repoView{manifests: map[digest.Digest]string{}, tags: map[string]digest.Digest{}, referrers: map[digest.Digest][]digest.Digest{}}
			t.repo[name] = rv
		}
		dg := digest.Digest(d.Digest.String())
		t.addManifest(rv, dg, string(d.MediaType), 0)
		for _, tag := range tagsOf(d) {
			rv.tags[tag] = dg
		}
		if d.Annotations[AnnotationRole] == RoleReferrer {
			s := digest.Digest(d.Annotations[AnnotationSubject])
			if !slices.Contains(rv.referrers[s], dg) {
				rv.referrers[s] = append(rv.referrers[s], dg)
			}
		}
	}
}

// tagsOf returns the tags an index descriptor carries.
func tagsOf(d v1.Descriptor) []string {
	var out []string
	if t := d.Annotations[AnnotationTag]; t != "" {
		out = append(out, t)
	}
	if ts := d.Annotations[AnnotationTags]; ts != "" {
		out = append(out, strings.Split(ts, ",")...)
	}
	return out
}

// addManifest records a manifest and, for an index, its children.
func (t *transport) addManifest(rv *repoView, d digest.Digest, mediaType string, depth int) {
	if _, ok := rv.manifests[d]; ok || depth > 4 {
		return
	}
	rv.manifests[d] = mediaType
	if !types.MediaType(mediaType).IsIndex() {
		return
	}
	body, err := t.b.readBlob(d, MaxManifestBlobSize)
	if err != nil {
		return
	}
	var idx v1.IndexManifest
	if json.Unmarshal(body, &idx) != nil {
		return
	}
	for _, c := range idx.Manifests {
		t.addManifest(rv, digest.Digest(c.Digest.String()), string(c.MediaType), depth+1)
	}
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	t.once.Do(t.build)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return t.ociError(r, http.StatusMethodNotAllowed, "UNSUPPORTED", "the bundle is read-only"), nil
	}
	kind, name, arg, ok := registry.ParseRoute(r.URL.Path)
	if !ok {
		return t.ociError(r, http.StatusNotFound, "NOT_FOUND", "unknown path"), nil
	}
	if kind == "base" {
		return t.respond(r, http.StatusOK, "application/json", nil, io.NopCloser(strings.NewReader("{}")), 2), nil
	}
	rv := t.repo[name]
	switch kind {
	case "manifest", "blob", "referrers", "tags":
		if rv == nil {
			return t.ociError(r, http.StatusNotFound, "NAME_UNKNOWN", "repository "+name+" is not in the bundle"), nil
		}
	default:
		return t.ociError(r, http.StatusNotFound, "NOT_FOUND", "unknown path"), nil
	}
	switch kind {
	case "manifest":
		return t.manifest(r, rv, arg), nil
	case "blob":
		return t.blob(r, arg), nil
	case "referrers":
		return t.referrers(r, rv, arg), nil
	default:
		return t.tagList(r, name, rv), nil
	}
}

func (t *transport) manifest(r *http.Request, rv *repoView, ref string) *http.Response {
	d, err := digest.Parse(ref)
	if err != nil {
		var ok bool
		if d, ok = rv.tags[ref]; !ok {
			return t.ociError(r, http.StatusNotFound, "MANIFEST_UNKNOWN", "tag "+ref+" is not in the bundle")
		}
	}
	mt, ok := rv.manifests[d]
	if !ok {
		return t.ociError(r, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest "+d.String()+" is not in the bundle")
	}
	body, err := t.b.readBlob(d, MaxManifestBlobSize)
	if err != nil {
		return t.ociError(r, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
	}
	resp := t.respond(r, http.StatusOK, mt, nil, io.NopCloser(bytes.NewReader(body)), int64(len(body)))
	resp.Header.Set("Docker-Content-Digest", d.String())
	return resp
}

func (t *transport) blob(r *http.Request, ref string) *http.Response {
	d, err := digest.Parse(ref)
	if err != nil {
		return t.ociError(r, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
	}
	rc, size, err := t.b.Blob(d)
	if err != nil {
		return t.ociError(r, http.StatusNotFound, "BLOB_UNKNOWN", err.Error())
	}
	resp := t.respond(r, http.StatusOK, "application/octet-stream", nil, rc, size)
	resp.Header.Set("Docker-Content-Digest", d.String())
	return resp
}

func (t *transport) referrers(r *http.Request, rv *repoView, ref string) *http.Response {
	d, err := digest.Parse(ref)
	if err != nil {
		return t.ociError(r, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
	}
	want := r.URL.Query().Get("artifactType")
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: indexMediaType, Manifests: []v1.Descriptor{}}
	list := slices.Clone(rv.referrers[d])
	sort.Slice(list, func(i, j int) bool { return list[i] < list[j] })
	for _, rd := range list {
		body, err := t.b.readBlob(rd, MaxManifestBlobSize)
		if err != nil {
			continue
		}
		var m struct {
			MediaType    string            `json:"mediaType"`
			ArtifactType string            `json:"artifactType"`
			Config       v1.Descriptor     `json:"config"`
			Annotations  map[string]string `json:"annotations"`
		}
		if json.Unmarshal(body, &m) != nil {
			continue
		}
		at := m.ArtifactType
		if at == "" {
			at = string(m.Config.MediaType)
		}
		if want != "" && at != want {
			continue
		}
		h, _ := v1.NewHash(rd.String())
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: types.MediaType(m.MediaType), Digest: h, Size: int64(len(body)), ArtifactType: at, Annotations: m.Annotations})
	}
	body, _ := json.Marshal(idx)
	return t.respond(r, http.StatusOK, indexMediaType, nil, io.NopCloser(bytes.NewReader(body)), int64(len(body)))
}

func (t *transport) tagList(r *http.Request, name string, rv *repoView) *http.Response {
	tags := make([]string, 0, len(rv.tags))
	for tag := range rv.tags {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	body, _ := json.Marshal(map[string]any{"name": name, "tags": tags})
	return t.respond(r, http.StatusOK, "application/json", nil, io.NopCloser(bytes.NewReader(body)), int64(len(body)))
}

func (t *transport) respond(r *http.Request, status int, contentType string, h http.Header, body io.ReadCloser, size int64) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	if r.Method == http.MethodHead {
		body.Close()
		body = http.NoBody
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: size,
		Request:       r,
	}
}

func (t *transport) ociError(r *http.Request, status int, code, msg string) *http.Response {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	return t.respond(r, status, "application/json", nil, io.NopCloser(bytes.NewReader(body)), int64(len(body)))
}
