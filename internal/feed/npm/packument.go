package npm

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
)

// pkgVersion is one stored version, read back.
type pkgVersion struct {
	version string
	digest  digest.Digest
	created time.Time
	// doc is the version document as published (without dist.tarball).
	doc  map[string]json.RawMessage
	file feed.File
}

// pkg is a package as its repository holds it: the one source of every
// metadata document.
type pkg struct {
	versions []pkgVersion
	distTags map[string]string
}

// load reads a package's versions and dist-tags. Tags that are not npm
// versions (labels, or content pushed by other means) are left out. A
// package without versions is meta.ErrNotFound.
func (h *Handler) load(ctx context.Context, q request) (*pkg, error) {
	tagged, err := h.Store.Tagged(ctx, q.repo)
	if err != nil {
		return nil, err
	}
	p := &pkg{distTags: map[string]string{}}
	byDigest := map[digest.Digest]string{}
	var tags []string
	for _, t := range tagged {
		tags = append(tags, t.Tag)
		version, ok := feed.TagVersion(t.Tag)
		if !ok || !ValidVersion(version) || t.Manifest.ArtifactType != ArtifactType {
			continue
		}
		v, err := h.Store.VersionAt(ctx, q.repo, t.Manifest.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", q.name, version, err)
		}
		if v.Config.MediaType != ConfigMediaType || len(v.Files) != 1 {
			continue
		}
		b, err := h.Store.ReadConfig(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", q.name, version, err)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s@%s: version document: %w", q.name, version, err)
		}
		p.versions = append(p.versions, pkgVersion{version: version, digest: t.Manifest.Digest,
			created: t.Manifest.Created, doc: doc, file: v.Files[0]})
		byDigest[t.Manifest.Digest] = version
	}
	if len(p.versions) == 0 {
		return nil, fmt.Errorf("package %s: %w", q.name, meta.ErrNotFound)
	}
	labels, err := h.Store.Labels(ctx, q.repo, tags)
	if err != nil {
		return nil, err
	}
	for name, d := range labels {
		// A writer can push any label log tag over /v2/; one npm could
		// not have set ("1.0.0") would pass for a version.
		if v, ok := byDigest[d]; ok && ValidDistTag(name) {
			p.distTags[name] = v
		}
	}
	if _, ok := p.distTags["latest"]; !ok && h.IsProxy(q.feed) {
		p.distTags["latest"] = latestOf(p.versions)
	}
	return p, nil
}

// baseURL is the scheme and host the client reached the server at.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// tarballURL is where a version's tarball is served: under the feed the
// client addressed (a virtual feed, when it came through one).
func tarballURL(r *http.Request, q request, file string) string {
	return baseURL(r) + Prefix + feed.Addressed(r.Context(), q.feed) + "/" + q.name.String() + "/-/" + url.PathEscape(file)
}

// publisherDist are the fields of dist a publisher's word is kept for:
// descriptive, not a registry's claim. Everything else in dist is the
// registry's to state (signatures, attestations, npm-signature: npm
// audit signatures fetches and trusts them), so it is not served from
// the publisher.
var publisherDist = []string{"fileCount", "unpackedSize"}

// dist is a version's dist object, generated from the stored file and the
// hashes computed when it was stored, with the publisher's publisherDist.
func dist(r *http.Request, q request, v pkgVersion) (json.RawMessage, error) {
	sent := map[string]json.RawMessage{}
	if raw, ok := v.doc["dist"]; ok {
		_ = json.Unmarshal(raw, &sent)
	}
	d := map[string]json.RawMessage{}
	for _, k := range publisherDist {
		if val, ok := sent[k]; ok {
			d[k] = val
		}
	}
	set := func(k, val string) { d[k], _ = json.Marshal(val) }
	set("tarball", tarballURL(r, q, v.file.Name))
	if s, err := hex.DecodeString(v.file.Annotations[feed.AnnotationSHA512]); err == nil && len(s) == 64 {
		set("integrity", "sha512-"+base64.StdEncoding.EncodeToString(s))
	} else {
		return nil, errors.New("the tarball's sha512 annotation is missing")
	}
	if s := v.file.Annotations[feed.AnnotationSHA1]; len(s) == 40 {
		set("shasum", s)
	}
	return json.Marshal(d)
}

// abbreviatedFields are the fields of a version npm's abbreviated
// metadata keeps (npm's registry documentation, "Abbreviated version
// object").
var abbreviatedFields = []string{"name", "version", "deprecated", "dependencies", "optionalDependencies",
	"devDependencies", "bundleDependencies", "bundledDependencies", "peerDependencies", "peerDependenciesMeta",
	"bin", "directories", "engines", "os", "cpu", "_hasShrinkwrap", "hasInstallScript", "funding", "license"}

// wantsAbbreviated reports whether the client asked for abbreviated
// metadata.
func wantsAbbreviated(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), AbbreviatedType) {
				return true
			}
		}
	}
	return false
}

func (h *Handler) packument(w http.ResponseWriter, r *http.Request, q request) {
	p, err := h.load(r.Context(), q)
	if err != nil {
		h.loadError(w, r, q, err)
		return
	}
	abbreviated := wantsAbbreviated(r)
	versions := map[string]json.RawMessage{}
	times := map[string]string{}
	var created, modified time.Time
	for _, v := range p.versions {
		doc, err := versionJSON(r, q, v, abbreviated)
		if err != nil {
			h.fail(w, r, "generate version document", err)
			return
		}
		versions[v.version] = doc
		times[v.version] = v.created.UTC().Format(time.RFC3339Nano)
		if created.IsZero() || v.created.Before(created) {
			created = v.created
		}
		if v.created.After(modified) {
			modified = v.created
		}
	}
	if abbreviated {
		w.Header().Set("Content-Type", AbbreviatedType)
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"name":      q.name.String(),
			"modified":  modified.UTC().Format(time.RFC3339Nano),
			"dist-tags": p.distTags,
			"versions":  versions,
		})
		return
	}
	times["created"] = created.UTC().Format(time.RFC3339Nano)
	times["modified"] = modified.UTC().Format(time.RFC3339Nano)
	doc := map[string]any{
		"_id":       q.name.String(),
		"name":      q.name.String(),
		"dist-tags": p.distTags,
		"versions":  versions,
		"time":      times,
	}
	// The package-level fields npm view shows, from the latest version.
	if latest, ok := p.distTags["latest"]; ok {
		for _, v := range p.versions {
			if v.version != latest {
				continue
			}
			for _, k := range []string{"description", "license", "homepage", "repository", "keywords", "author", "readme"} {
				if val, ok := v.doc[k]; ok {
					doc[k] = val
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

// versionJSON is a version's document as served: as published, with the
// dist the server generates; abbreviated keeps npm's install fields.
func versionJSON(r *http.Request, q request, v pkgVersion, abbreviated bool) (json.RawMessage, error) {
	d, err := dist(r, q, v)
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if abbreviated {
		for _, k := range abbreviatedFields {
			if val, ok := v.doc[k]; ok {
				out[k] = val
			}
		}
	} else {
		for k, val := range v.doc {
			out[k] = val
		}
	}
	out["dist"] = d
	return json.Marshal(out)
}

// versionDoc serves GET /<package>/<version or dist-tag>.
func (h *Handler) versionDoc(w http.ResponseWriter, r *http.Request, q request, ref string) {
	p, err := h.load(r.Context(), q)
	if errors.Is(err, meta.ErrNotFound) && h.IsProxy(q.feed) {
		p, err = &pkg{distTags: map[string]string{}}, nil
	}
	if err != nil {
		h.loadError(w, r, q, err)
		return
	}
	version := ref
	if v, ok := p.distTags[ref]; ok {
		version = v
	}
	for _, v := range p.versions {
		if v.version == version {
			doc, err := versionJSON(r, q, v, false)
			if err != nil {
				h.fail(w, r, "generate version document", err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(append(doc, '\n'))
			return
		}
	}
	if h.IsProxy(q.feed) && ValidVersion(version) {
		h.proxyVersionDoc(w, r, q, version)
		return
	}
	writeError(w, http.StatusNotFound, "no such version or dist-tag: "+q.name.String()+"@"+ref)
}
