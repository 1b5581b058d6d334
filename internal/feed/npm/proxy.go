package npm

import (
	"context"
	"crypto/sha1" //nolint:gosec // npm's shasum is SHA-1; it is checked, never trusted alone
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/semver"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/ecosystem"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
)

// A proxy feed (kind proxy) fetches from its upstream registry: the
// packument is upstream's with every tarball URL pointing at custody and,
// for versions custody has recorded, the recorded integrity (trust on
// first use; a difference is audited as feed.upstream_changed). A
// tarball's first GET fetches upstream's version document and tarball,
// checks the tarball against the document's dist.integrity (sha512) and
// dist.shasum while storing it, and seals it as a version like a
// published one (annotated with dev.custody.feed.upstream); later GETs
// are local. When upstream cannot be reached the packument is generated
// from the stored versions, as a hosted feed's is.

// upstreamPath is the package's path on an npm registry: "name" or
// "@scope%2fname".
func upstreamPath(n Name) string {
	if n.Scope == "" {
		return n.Base
	}
	return "@" + n.Scope + "%2f" + n.Base
}

// proxyPackument serves a proxy feed's packument: upstream's, rewritten,
// or the stored versions' when upstream cannot answer.
func (h *Handler) proxyPackument(w http.ResponseWriter, r *http.Request, q request) {
	ctx := r.Context()
	up := h.Upstream(q.feed)
	accept := "application/json"
	if wantsAbbreviated(r) {
		accept = AbbreviatedType + "; q=1.0, application/json; q=0.8"
	}
	raw, _, err := up.GetDocument(ctx, up.URL(upstreamPath(q.name)), accept)
	var doc map[string]json.RawMessage
	if err == nil {
		if jerr := json.Unmarshal(raw, &doc); jerr != nil || doc == nil {
			err = &feed.UpstreamError{URL: up.URL(upstreamPath(q.name)), Err: errors.New("the packument is not a JSON object")}
		}
	}
	if err != nil {
		h.Log.WarnContext(ctx, "npm proxy: upstream packument unavailable; serving stored versions", "feed", q.feed, "package", q.name.String(), "err", err)
		if _, lerr := h.load(ctx, q); errors.Is(lerr, meta.ErrNotFound) && !errors.Is(err, feed.ErrUpstreamNotFound) {
			writeError(w, http.StatusBadGateway, "upstream "+up.Base()+" cannot be reached and no version of "+q.name.String()+" is stored")
			return
		}
		h.packument(w, r, q)
		return
	}
	recorded, err := h.recorded(ctx, q)
	if err != nil {
		h.fail(w, r, "read package", err)
		return
	}
	var versions map[string]json.RawMessage
	_ = json.Unmarshal(doc["versions"], &versions)
	out := map[string]json.RawMessage{}
	for v, vraw := range versions {
		if !ValidVersion(v) {
			continue // not servable as a tarball name; npm publishes none
		}
		rewritten, err := h.rewriteVersion(ctx, r, q, v, vraw, recorded)
		if err != nil {
			continue // a version document that is not an object
		}
		out[v] = rewritten
	}
	// Versions recorded here that upstream no longer lists stay served.
	for v, pv := range recorded {
		if _, ok := out[v]; !ok {
			if b, err := versionJSON(r, q, pv, wantsAbbreviated(r)); err == nil {
				out[v] = b
			}
		}
	}
	doc["versions"], _ = json.Marshal(out)
	delete(doc, "_attachments")
	delete(doc, "_rev")
	ctype := "application/json"
	if wantsAbbreviated(r) {
		ctype = AbbreviatedType
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(doc)
}

// recorded returns the package's stored versions by version (none when
// the package has no stored version).
func (h *Handler) recorded(ctx context.Context, q request) (map[string]pkgVersion, error) {
	out := map[string]pkgVersion{}
	p, err := h.load(ctx, q)
	if errors.Is(err, meta.ErrNotFound) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	for _, v := range p.versions {
		out[v.version] = v
	}
	return out, nil
}

// rewriteVersion is upstream's document of version v as custody serves
// it: dist.tarball pointing at custody, dist's integrity and shasum
// upstream's for a version not recorded yet, and the record's for a
// recorded one (a difference is audited: upstream changed a version
// custody recorded). The rest of dist (signatures of upstream's keys,
// attestations) is upstream's word about upstream's URLs, not served.
func (h *Handler) rewriteVersion(ctx context.Context, r *http.Request, q request, v string, raw json.RawMessage, recorded map[string]pkgVersion) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("not an object")
	}
	var sent map[string]json.RawMessage
	_ = json.Unmarshal(m["dist"], &sent)
	d := map[string]json.RawMessage{}
	for _, k := range append([]string{"integrity", "shasum"}, publisherDist...) {
		if val, ok := sent[k]; ok {
			d[k] = val
		}
	}
	if pv, ok := recorded[v]; ok {
		var integrity, shasum string
		_ = json.Unmarshal(sent["integrity"], &integrity)
		_ = json.Unmarshal(sent["shasum"], &shasum)
		tag, _ := feed.VersionTag(v)
		from := q.name.String() + "@" + v
		if off := ecosystem.ParseSRI(integrity)["sha512"]; off != "" {
			h.Recorded(ctx, r, q.repo, tag, from+" dist.integrity", "sha512:"+pv.file.Annotations[feed.AnnotationSHA512], "sha512:"+off)
		}
		if len(shasum) == 40 {
			h.Recorded(ctx, r, q.repo, tag, from+" dist.shasum", "sha1:"+pv.file.Annotations[feed.AnnotationSHA1], "sha1:"+strings.ToLower(shasum))
		}
		rec, err := dist(r, q, pv)
		if err != nil {
			return nil, err
		}
		var recm map[string]json.RawMessage
		_ = json.Unmarshal(rec, &recm)
		for k, val := range recm {
			d[k] = val
		}
	}
	d["tarball"], _ = json.Marshal(tarballURL(r, q, q.name.Base+"-"+v+".tgz"))
	m["dist"], _ = json.Marshal(d)
	return json.Marshal(m)
}

// pull fetches version of the package from upstream and seals it, once
// for any number of concurrent requests; a no-op when it is stored.
func (h *Handler) pull(ctx context.Context, r *http.Request, q request, version, tag string) error {
	up := h.Upstream(q.feed)
	if up == nil {
		return errors.New("proxy feed " + q.feed + " has no upstream client")
	}
	return up.Collapse(ctx, q.repo+":"+tag, func(ctx context.Context) error {
		if _, err := h.Store.Resolve(ctx, q.repo, tag); err == nil {
			return nil // stored by a fetch that just ended
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		docURL := up.URL(upstreamPath(q.name) + "/" + version)
		raw, _, err := up.GetDocument(ctx, docURL, "application/json")
		if err != nil {
			return err
		}
		var vd struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Dist    struct {
				Integrity string `json:"integrity"`
				Shasum    string `json:"shasum"`
				Tarball   string `json:"tarball"`
			} `json:"dist"`
		}
		if err := json.Unmarshal(raw, &vd); err != nil {
			return &feed.UpstreamRefused{Msg: "upstream's version document of " + q.name.String() + "@" + version + " is not JSON; nothing stored"}
		}
		if vd.Name != q.name.String() || vd.Version != version {
			return &feed.UpstreamRefused{Msg: fmt.Sprintf("upstream's version document names %s@%s, not %s@%s; nothing stored", vd.Name, vd.Version, q.name, version)}
		}
		wantSHA512 := ecosystem.ParseSRI(vd.Dist.Integrity)["sha512"]
		wantSHA1 := strings.ToLower(vd.Dist.Shasum)
		if wantSHA512 == "" && len(wantSHA1) != 40 {
			return &feed.UpstreamRefused{Msg: "upstream states no hash (dist.integrity sha512 or dist.shasum) for " + q.name.String() + "@" + version + "; nothing stored"}
		}
		cfg, err := stripTarballURL(raw)
		if err != nil || len(cfg) > feed.MaxManifest {
			return &feed.UpstreamRefused{Msg: "upstream's version document of " + q.name.String() + "@" + version + " has no dist object or is too large; nothing stored"}
		}
		src := up.URL(upstreamPath(q.name) + "/-/" + q.name.Base + "-" + version + ".tgz")
		if vd.Dist.Tarball != "" {
			if src, err = up.Resolve(docURL, vd.Dist.Tarball); err != nil {
				return &feed.UpstreamRefused{Msg: err.Error() + "; nothing stored"}
			}
		}
		body, _, err := up.Get(ctx, src, "application/octet-stream", MaxPublish)
		if err != nil {
			return err
		}
		defer body.Close()
		h512, h1 := sha512.New(), sha1.New() //nolint:gosec // npm's shasum
		// The archive check reads what is stored; its verdict and both
		// hashes decide, at EOF, whether the store keeps the bytes.
		archive := newArchiveCheck()
		defer archive.Abort()
		var refused error
		checked := feed.CheckAtEOF(body, func() error {
			if err := archive.Verdict(); err != nil {
				refused = &feed.UpstreamRefused{Msg: "upstream's tarball of " + q.name.String() + "@" + version + " is refused: " + err.Error() + "; nothing stored"}
				return refused
			}
			got512, got1 := hex.EncodeToString(h512.Sum(nil)), hex.EncodeToString(h1.Sum(nil))
			switch {
			case wantSHA512 != "" && got512 != wantSHA512:
				h.UpstreamMismatch(ctx, r, q.repo, tag, src, "sha512:"+wantSHA512, "sha512:"+got512)
				refused = fmt.Errorf("%w: %s@%s: dist.integrity says sha512 %s, the tarball's is %s; nothing stored",
					feed.ErrUpstreamMismatch, q.name, version, b64(wantSHA512), b64(got512))
				return refused
			case len(wantSHA1) == 40 && got1 != wantSHA1:
				h.UpstreamMismatch(ctx, r, q.repo, tag, src, "sha1:"+wantSHA1, "sha1:"+got1)
				refused = fmt.Errorf("%w: %s@%s: dist.shasum says %s, the tarball's is %s; nothing stored",
					feed.ErrUpstreamMismatch, q.name, version, wantSHA1, got1)
				return refused
			}
			return nil
		})
		b, unlock, err := h.Store.PutBlob(ctx, checked, -1, "", h512, h1, archive)
		defer unlock()
		if err != nil {
			if refused != nil {
				return refused
			}
			if errors.Is(err, feed.ErrUpstreamTooLarge) {
				return &feed.UpstreamRefused{Msg: "upstream's tarball of " + q.name.String() + "@" + version + " is larger than 128 MiB; nothing stored"}
			}
			return &feed.UpstreamError{URL: src, Err: err}
		}
		now := h.Store.Now().UTC().Format(time.RFC3339)
		_, err = h.Store.Seal(ctx, r, feed.Spec{
			Repo:         q.repo,
			Tag:          tag,
			ArtifactType: ArtifactType,
			Config:       &feed.Config{MediaType: ConfigMediaType, Data: cfg},
			Files: []feed.File{{Name: q.name.Base + "-" + version + ".tgz", MediaType: TarballMediaType, Digest: b.Digest, Size: b.Size,
				Annotations: map[string]string{feed.AnnotationSHA512: hex.EncodeToString(h512.Sum(nil)), feed.AnnotationSHA1: hex.EncodeToString(h1.Sum(nil))}}},
			Annotations: map[string]string{
				feed.AnnotationPackage:   q.name.String(),
				feed.AnnotationVersion:   version,
				feed.AnnotationUpstream:  src,
				builds.AnnotationVersion: version,
				builds.AnnotationCreated: now,
			},
		})
		var exists *feed.ExistsError
		if errors.As(err, &exists) {
			return nil // another server sealed it first; that record stands
		}
		return err
	})
}

// archiveCheck runs checkTarballFrom on the bytes written to it, in a
// goroutine reading a pipe, so that a tarball is checked as it streams
// to the store. Write never fails (the check may stop reading once it has
// judged; the rest is drained). Verdict ends the input and returns the
// check's result; Abort, after an error, ends it without one.
type archiveCheck struct {
	pw      *io.PipeWriter
	verdict chan error
	err     error
	done    bool
}

func newArchiveCheck() *archiveCheck {
	pr, pw := io.Pipe()
	a := &archiveCheck{pw: pw, verdict: make(chan error, 1)}
	go func() {
		err := checkTarballFrom(pr)
		_, _ = io.Copy(io.Discard, pr)
		a.verdict <- err
	}()
	return a
}

func (a *archiveCheck) Write(b []byte) (int, error) {
	_, _ = a.pw.Write(b)
	return len(b), nil
}

// Verdict closes the input and waits for the check's result.
func (a *archiveCheck) Verdict() error {
	if !a.done {
		a.done = true
		_ = a.pw.Close()
		a.err = <-a.verdict
	}
	return a.err
}

// Abort ends the input (a no-op after Verdict) and lets the check end.
func (a *archiveCheck) Abort() {
	if !a.done {
		a.done = true
		_ = a.pw.CloseWithError(errors.New("npm: tarball stream aborted"))
	}
}

func b64(hexs string) string {
	raw, _ := hex.DecodeString(hexs)
	return "sha512-" + base64.StdEncoding.EncodeToString(raw)
}

// pullError answers a failed pull-through.
func (h *Handler) pullError(w http.ResponseWriter, r *http.Request, q request, version string, err error) {
	if status, msg, ok := h.PullFailure(r.Context(), r, q.feed, q.repo, q.name.String()+"@"+version, err); ok {
		writeError(w, status, msg)
		return
	}
	h.refusedOrFail(w, r, "pull version from upstream", err)
}

// latestOf is the highest stored version, releases before prereleases:
// the latest dist-tag of a proxy feed's stored versions (upstream's
// dist-tags are not recorded).
func latestOf(versions []pkgVersion) string {
	best, bestPre := "", ""
	for _, v := range versions {
		sv := "v" + v.version
		if semver.Prerelease(sv) == "" {
			if best == "" || semver.Compare(sv, "v"+best) > 0 {
				best = v.version
			}
		} else if bestPre == "" || semver.Compare(sv, "v"+bestPre) > 0 {
			bestPre = v.version
		}
	}
	if best != "" {
		return best
	}
	return bestPre
}

// proxyVersionDoc serves GET /<package>/<version> of a version not stored
// in a proxy feed: upstream's document, rewritten as in the packument.
func (h *Handler) proxyVersionDoc(w http.ResponseWriter, r *http.Request, q request, version string) {
	up := h.Upstream(q.feed)
	raw, _, err := up.GetDocument(r.Context(), up.URL(upstreamPath(q.name)+"/"+version), "application/json")
	if err != nil {
		if errors.Is(err, feed.ErrUpstreamNotFound) {
			writeError(w, http.StatusNotFound, "no such version or dist-tag: "+q.name.String()+"@"+version)
			return
		}
		writeError(w, http.StatusBadGateway, "upstream "+up.Base()+" cannot be reached and "+q.name.String()+"@"+version+" is not stored")
		return
	}
	doc, err := h.rewriteVersion(r.Context(), r, q, version, raw, nil)
	if err != nil {
		writeError(w, http.StatusBadGateway, "upstream's document of "+q.name.String()+"@"+version+" is not a JSON object")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(doc, '\n'))
}
