package gomod

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
)

// A proxy feed (kind proxy) serves a GOPROXY upstream's modules. @v/list
// and @latest are upstream's (merged with the stored versions); the first
// request for a version's .info, .mod or .zip fetches all three, checks
// the zip as the go command checks a download (CheckModule), checks that
// the .mod is the zip's go.mod, and seals the version like a published
// one, with the go.sum hashes (h1:) recorded in layer annotations and the
// source in dev.custody.feed.upstream; later requests are local. No
// checksum database is consulted: the h1: hash is recorded on first use,
// and the go command checks it against its own go.sum and GOSUMDB. When
// upstream cannot be reached, @v/list and @latest come from the stored
// versions.

// upstreamPath is the module's case-encoded path on upstream.
func upstreamPath(path string) (string, error) { return module.EscapePath(path) }

// proxyList serves @v/list and @latest of a proxy feed.
func (h *Handler) proxyList(w http.ResponseWriter, r *http.Request, q request) {
	ctx := r.Context()
	up := h.Upstream(q.feed)
	esc, err := upstreamPath(q.path)
	if err != nil {
		writeText(w, http.StatusNotFound, "not found: "+err.Error())
		return
	}
	local, lerr := h.versions(r, q)
	if lerr != nil && !errors.Is(lerr, meta.ErrNotFound) {
		h.fail(w, r, "list versions", lerr)
		return
	}
	if q.file == "latest" {
		b, _, err := up.GetDocument(ctx, up.URL(esc+"/@latest"), "application/json")
		var info Info
		if err == nil {
			if jerr := json.Unmarshal(b, &info); jerr != nil || module.Check(q.path, info.Version) != nil || module.CanonicalVersion(info.Version) != info.Version {
				err = &feed.UpstreamError{URL: up.URL(esc + "/@latest"), Err: errors.New("not a valid .info")}
			}
		}
		if err != nil {
			h.fallBack(w, r, q, local, err)
			return
		}
		if _, ok := local[info.Version]; ok {
			h.serveFile(w, r, q, info.Version, "info") // the recorded .info
			return
		}
		out, _ := json.Marshal(Info{Version: info.Version, Time: info.Time})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	b, _, err := up.GetDocument(ctx, up.URL(esc+"/@v/list"), "text/plain")
	if err != nil {
		h.fallBack(w, r, q, local, err)
		return
	}
	set := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		v := strings.TrimSpace(line)
		if v != "" && module.Check(q.path, v) == nil && module.CanonicalVersion(v) == v && !module.IsPseudoVersion(v) {
			set[v] = true
		}
	}
	for v := range local {
		if !module.IsPseudoVersion(v) {
			set[v] = true
		}
	}
	sorted := make([]string, 0, len(set))
	for v := range set {
		sorted = append(sorted, v)
	}
	sort.Slice(sorted, func(i, j int) bool { return semver.Compare(sorted[i], sorted[j]) < 0 })
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(sorted) > 0 {
		_, _ = io.WriteString(w, strings.Join(sorted, "\n")+"\n")
	}
}

// fallBack answers @v/list or @latest from the stored versions when
// upstream did not answer; with none stored, 404 when upstream said so,
// else 502.
func (h *Handler) fallBack(w http.ResponseWriter, r *http.Request, q request, local map[string]feed.Tagged, err error) {
	if len(local) == 0 {
		if errors.Is(err, feed.ErrUpstreamNotFound) {
			writeText(w, http.StatusNotFound, "not found: module "+q.path+" (not found upstream)")
			return
		}
		h.Log.WarnContext(r.Context(), "go proxy: upstream unavailable", "feed", q.feed, "module", q.path, "err", err)
		writeText(w, http.StatusBadGateway, "upstream "+h.Upstream(q.feed).Base()+" cannot be reached and no version of "+q.path+" is stored")
		return
	}
	h.Log.WarnContext(r.Context(), "go proxy: upstream unavailable; serving stored versions", "feed", q.feed, "module", q.path, "err", err)
	h.list(w, r, q)
}

// pull fetches version's .info, .mod and .zip from upstream and seals
// them, once for any number of concurrent requests; a no-op when the
// version is stored.
func (h *Handler) pull(ctx context.Context, r *http.Request, q request, version, tag string) error {
	up := h.Upstream(q.feed)
	return up.Collapse(ctx, q.repo+":"+tag, func(ctx context.Context) error {
		if _, err := h.Store.Resolve(ctx, q.repo, tag); err == nil {
			return nil
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		esc, err := upstreamPath(q.path)
		if err != nil {
			return err
		}
		ev, err := module.EscapeVersion(version)
		if err != nil {
			return err
		}
		base := up.URL(esc + "/@v/" + ev)
		ib, _, err := up.GetDocument(ctx, base+".info", "application/json")
		if err != nil {
			return err
		}
		var info Info
		if json.Unmarshal(ib, &info) != nil || info.Version != version {
			return &feed.UpstreamRefused{Msg: "upstream's " + version + ".info of " + q.path + " does not name that version; nothing stored"}
		}
		mod, _, err := up.GetDocument(ctx, base+".mod", "text/plain")
		if err != nil {
			return err
		}
		if len(mod) > modzip.MaxGoMod {
			return &feed.UpstreamRefused{Msg: "upstream's go.mod of " + q.path + "@" + version + " is too large; nothing stored"}
		}
		if mf, err := modfile.ParseLax("go.mod", mod, nil); err != nil || mf.Module == nil || mf.Module.Mod.Path != q.path {
			return &feed.UpstreamRefused{Msg: "upstream's go.mod of " + q.path + "@" + version + " does not parse or declares another module; nothing stored"}
		}
		body, _, err := up.Get(ctx, base+".zip", "application/zip", MaxZip)
		if err != nil {
			return err
		}
		defer body.Close()
		tmp, err := os.CreateTemp("", "custody-goproxy-*.zip")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		hs := sha256.New()
		n, err := io.Copy(io.MultiWriter(tmp, hs), body)
		if err != nil {
			if errors.Is(err, feed.ErrUpstreamTooLarge) {
				return &feed.UpstreamRefused{Msg: "upstream's zip of " + q.path + "@" + version + " is larger than 500 MiB; nothing stored"}
			}
			return &feed.UpstreamError{URL: base + ".zip", Err: err}
		}
		m, err := CheckModule(q.path, version, tmp.Name())
		if err != nil {
			return &feed.UpstreamRefused{Msg: "upstream's zip of " + q.path + "@" + version + " is refused: " + err.Error() + "; nothing stored"}
		}
		synthesized := "module " + modfile.AutoQuote(q.path) + "\n"
		if string(m.Mod) != synthesized && !bytes.Equal(m.Mod, mod) {
			return &feed.UpstreamRefused{Msg: "upstream's .mod of " + q.path + "@" + version + " is not the go.mod in its zip; nothing stored"}
		}
		modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(mod)), nil })
		if err != nil {
			return err
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		zb, unlockZip, err := h.Store.PutBlob(ctx, tmp, n, digest.NewDigest(digest.SHA256, hs))
		defer unlockZip()
		if err != nil {
			return err
		}
		mb, unlockMod, err := h.Store.PutBlob(ctx, bytes.NewReader(mod), int64(len(mod)), digest.FromBytes(mod))
		defer unlockMod()
		if err != nil {
			return err
		}
		if info.Time.IsZero() {
			info.Time = h.Store.Now().UTC()
		}
		cfg, _ := json.Marshal(Info{Version: version, Time: info.Time})
		_, err = h.Store.Seal(ctx, r, feed.Spec{
			Repo:         q.repo,
			Tag:          tag,
			ArtifactType: ArtifactType,
			Config:       &feed.Config{MediaType: InfoMediaType, Data: cfg},
			Files: []feed.File{
				{Name: version + ".mod", MediaType: ModMediaType, Digest: mb.Digest, Size: mb.Size, Annotations: map[string]string{AnnotationH1: modHash}},
				{Name: version + ".zip", MediaType: ZipMediaType, Digest: zb.Digest, Size: zb.Size, Annotations: map[string]string{AnnotationH1: m.ZipHash}},
			},
			Annotations: map[string]string{
				feed.AnnotationPackage:   q.path,
				feed.AnnotationVersion:   version,
				feed.AnnotationUpstream:  base + ".zip",
				builds.AnnotationVersion: version,
				builds.AnnotationCreated: h.Store.Now().UTC().Format(time.RFC3339),
			},
		})
		var exists *feed.ExistsError
		if errors.As(err, &exists) {
			return nil
		}
		return err
	})
}

// pullError answers a failed pull-through: not found upstream is 404, so
// the go command falls back along GOPROXY; refusals are 502 (no
// fallback: the go command reports them).
func (h *Handler) pullError(w http.ResponseWriter, r *http.Request, q request, version string, err error) {
	if status, msg, ok := h.PullFailure(r.Context(), r, q.feed, q.repo, q.path+"@"+version, err); ok {
		writeText(w, status, msg)
		return
	}
	h.fail(w, r, "pull version from upstream", err)
}
