package pypi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/net/html"

	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
)

// A proxy feed (kind proxy) serves upstream's simple index (PEP 503 HTML
// or PEP 691 JSON, whichever upstream answers) with every link pointing
// at custody and, for files custody has recorded, the recorded sha256
// (trust on first use; a difference is audited as feed.upstream_changed).
// A file's first download streams it from where upstream's index says,
// checked against the index's sha256 and the archive rule while it is
// stored, and seals it like an uploaded file (annotated with
// dev.custody.feed.upstream); later downloads are local. Files upstream
// lists without a sha256 are not offered. When upstream cannot be
// reached the index is generated from the stored files.

// upstreamAccept asks for PEP 691 JSON, accepting PEP 503 HTML.
const upstreamAccept = JSONType + ", " + HTMLType + ";q=0.2, text/html;q=0.1"

// indexFile is one file of an upstream index page.
type indexFile struct {
	Name, URL, SHA256, RequiresPython string
}

// ParseIndex reads a project's index page from upstream: PEP 691 JSON
// when contentType says so (or the body is a JSON object), else PEP 503
// HTML. Links are resolved against pageURL; only http(s) links with a
// valid file name are kept, and a sha256 is kept only when it is 64 hex
// digits (lowercased).
func ParseIndex(body []byte, contentType, pageURL string, resolve func(base, ref string) (string, error)) ([]indexFile, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	var raw []indexFile
	if mt == JSONType || mt == "application/json" || bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		var doc struct {
			Files []struct {
				Filename       string            `json:"filename"`
				URL            string            `json:"url"`
				Hashes         map[string]string `json:"hashes"`
				RequiresPython string            `json:"requires-python"`
			} `json:"files"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, errors.New("upstream's index is not PEP 691 JSON")
		}
		for _, f := range doc.Files {
			raw = append(raw, indexFile{Name: f.Filename, URL: f.URL, SHA256: f.Hashes["sha256"], RequiresPython: f.RequiresPython})
		}
	} else {
		z := html.NewTokenizer(bytes.NewReader(body))
		var cur *indexFile
		var text strings.Builder
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				break
			}
			switch tt {
			case html.StartTagToken:
				name, hasAttr := z.TagName()
				if string(name) != "a" {
					continue
				}
				cur, text = &indexFile{}, strings.Builder{}
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					switch string(k) {
					case "href":
						cur.URL = string(v)
					case "data-requires-python":
						cur.RequiresPython = string(v)
					}
				}
			case html.TextToken:
				if cur != nil {
					text.Write(z.Text())
				}
			case html.EndTagToken:
				if name, _ := z.TagName(); string(name) == "a" && cur != nil {
					cur.Name = strings.TrimSpace(text.String())
					if u, frag, ok := strings.Cut(cur.URL, "#"); ok {
						cur.URL = u
						if alg, val, ok := strings.Cut(frag, "="); ok && alg == "sha256" {
							cur.SHA256 = val
						}
					}
					raw = append(raw, *cur)
					cur = nil
				}
			}
		}
	}
	var out []indexFile
	for _, f := range raw {
		if !feed.ValidFilename(f.Name) || f.URL == "" {
			continue
		}
		abs, err := resolve(pageURL, f.URL)
		if err != nil {
			continue
		}
		f.URL = abs
		f.SHA256 = strings.ToLower(f.SHA256)
		if !isHex(f.SHA256, 32) {
			f.SHA256 = ""
		}
		out = append(out, f)
	}
	return out, nil
}

// upstreamIndex fetches and parses a project's index page from upstream.
func (h *Handler) upstreamIndex(ctx context.Context, feedName, project string) ([]indexFile, error) {
	up := h.Upstream(feedName)
	page := up.URL(project + "/")
	body, hd, err := up.GetDocument(ctx, page, upstreamAccept)
	if err != nil {
		return nil, err
	}
	files, err := ParseIndex(body, hd.Get("Content-Type"), page, up.Resolve)
	if err != nil {
		return nil, &feed.UpstreamError{URL: page, Err: err}
	}
	return files, nil
}

// proxyProject serves a proxy feed's project page: upstream's files with
// the recorded hashes of recorded ones, or the stored files when upstream
// cannot answer.
func (h *Handler) proxyProject(w http.ResponseWriter, r *http.Request, repo string) {
	ctx := r.Context()
	feedName, name, _ := strings.Cut(repo, "/")
	ups, err := h.upstreamIndex(ctx, feedName, name)
	stored, lerr := h.files(ctx, repo)
	if lerr != nil && !errors.Is(lerr, meta.ErrNotFound) {
		h.fail(w, r, "read project", lerr)
		return
	}
	if err != nil {
		h.Log.WarnContext(ctx, "pypi proxy: upstream index unavailable; serving stored files", "feed", feedName, "project", name, "err", err)
		if len(stored) == 0 && !errors.Is(err, feed.ErrUpstreamNotFound) {
			writeError(w, http.StatusBadGateway, "upstream "+h.Upstream(feedName).Base()+" cannot be reached and no file of "+name+" is stored")
			return
		}
		h.project(w, r, repo)
		return
	}
	recorded := map[string]file{}
	for _, f := range stored {
		recorded[f.name] = f
	}
	var out []file
	seen := map[string]bool{}
	for _, u := range ups {
		if seen[u.Name] {
			continue
		}
		if _, _, err := fileVersion(name, u.Name); err != nil {
			continue // not a file custody can store under this project
		}
		seen[u.Name] = true
		if rec, ok := recorded[u.Name]; ok {
			tag, _ := feed.VersionTag(u.Name)
			h.Recorded(ctx, r, repo, tag, name+" "+u.Name+" index sha256", "sha256:"+rec.sha256, prefixed("sha256:", u.SHA256))
			out = append(out, rec)
			continue
		}
		if u.SHA256 == "" {
			continue // nothing to check its bytes against
		}
		out = append(out, file{name: u.Name, sha256: u.SHA256, requiresPython: u.RequiresPython})
	}
	for _, f := range stored {
		if !seen[f.name] {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		writeError(w, http.StatusNotFound, "Not Found: no project "+name+" upstream")
		return
	}
	renderProject(w, r, name, out)
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// fileVersion reads a file name of project: its filetype (sdist or
// bdist_wheel) and version, checked as an upload's are.
func fileVersion(project, file string) (filetype, version string, err error) {
	switch {
	case strings.HasSuffix(file, ".whl"):
		parts := strings.Split(strings.TrimSuffix(file, ".whl"), "-")
		if len(parts) < 2 {
			return "", "", errFilename
		}
		filetype, version = "bdist_wheel", parts[1]
	case strings.HasSuffix(file, ".tar.gz"), strings.HasSuffix(file, ".zip"):
		base := strings.TrimSuffix(strings.TrimSuffix(file, ".tar.gz"), ".zip")
		i := strings.LastIndexByte(base, '-')
		if i < 0 {
			return "", "", errFilename
		}
		filetype, version = "sdist", base[i+1:]
	default:
		return "", "", errors.New("only wheels and .tar.gz or .zip sdists are served")
	}
	if err := checkFilename(file, filetype, project, version); err != nil {
		return "", "", err
	}
	if _, err := feed.VersionTag(file); err != nil {
		return "", "", err
	}
	return filetype, version, nil
}

// proxyDownload fetches a file not stored yet from upstream, seals it,
// and serves it as stored.
func (h *Handler) proxyDownload(w http.ResponseWriter, r *http.Request, feedName, repo, name string) {
	ctx := r.Context()
	_, project, _ := strings.Cut(repo, "/")
	filetype, version, err := fileVersion(project, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "Not Found: no file "+name)
		return
	}
	if err := h.Admit(ctx, feedName, project, version); err != nil {
		h.blocked(w, r, repo, err)
		return
	}
	tag, _ := feed.VersionTag(name)
	up := h.Upstream(feedName)
	err = up.Collapse(ctx, repo+":"+tag, func(ctx context.Context) error {
		if _, err := h.Store.Resolve(ctx, repo, tag); err == nil {
			return nil
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		ups, err := h.upstreamIndex(ctx, feedName, project)
		if err != nil {
			return err
		}
		var src indexFile
		for _, f := range ups {
			if f.Name == name {
				src = f
				break
			}
		}
		if src.URL == "" {
			return fmt.Errorf("%s: %w", name, feed.ErrUpstreamNotFound)
		}
		if src.SHA256 == "" {
			return &feed.UpstreamRefused{Msg: "upstream's index gives no sha256 for " + name + "; nothing stored"}
		}
		body, _, err := up.Get(ctx, src.URL, "application/octet-stream", MaxUpload)
		if err != nil {
			return err
		}
		defer body.Close()
		x, err := newVerifier(body, &Upload{Filename: name})
		if err != nil {
			return err
		}
		defer x.Close()
		want := digest.NewDigestFromEncoded(digest.SHA256, src.SHA256)
		b, unlock, err := h.Store.PutBlob(ctx, x, -1, want)
		defer unlock()
		if err == nil && !x.done {
			_, err = io.Copy(io.Discard, x) // stored already: check the rest all the same
		}
		switch {
		case errors.Is(err, feed.ErrChecksum):
			h.UpstreamMismatch(ctx, r, repo, tag, src.URL, "sha256:"+src.SHA256, "(other bytes)")
			return fmt.Errorf("%w: %s does not match the sha256 %s upstream's index gives; nothing stored", feed.ErrUpstreamMismatch, name, src.SHA256)
		case x.reason != "":
			return &feed.UpstreamRefused{Msg: "upstream's " + name + " is refused: " + x.reason + "; nothing stored"}
		case err != nil:
			return &feed.UpstreamError{URL: src.URL, Err: err}
		}
		cfg, _ := json.Marshal(map[string]string{"name": project, "version": version, "filename": name,
			"filetype": filetype, "requires_python": src.RequiresPython, "upstream": src.URL})
		ann := map[string]string{
			feed.AnnotationPackage:   project,
			feed.AnnotationVersion:   version,
			feed.AnnotationUpstream:  src.URL,
			annotationFiletype:       filetype,
			builds.AnnotationVersion: version,
			builds.AnnotationCreated: h.Store.Now().UTC().Format(time.RFC3339),
		}
		if src.RequiresPython != "" {
			ann[annotationRequiresPython] = src.RequiresPython
		}
		mediaType := WheelMediaType
		if filetype == "sdist" {
			mediaType = SdistMediaType
			if strings.HasSuffix(name, ".zip") {
				mediaType = SdistZipMediaType
			}
		}
		_, err = h.Store.Seal(ctx, r, feed.Spec{
			Repo: repo, Tag: tag, ArtifactType: ArtifactType,
			Config: &feed.Config{MediaType: ConfigMediaType, Data: cfg},
			Files: []feed.File{{Name: name, MediaType: mediaType, Digest: b.Digest, Size: b.Size,
				Annotations: map[string]string{feed.AnnotationMD5: hex.EncodeToString(x.md5.Sum(nil)),
					feed.AnnotationBlake2b256: hex.EncodeToString(x.blake.Sum(nil))}}},
			Annotations: ann,
		})
		var exists *feed.ExistsError
		if errors.As(err, &exists) {
			return nil
		}
		return err
	})
	if err == nil {
		h.serveFile(w, r, feedName, repo, name, false)
		return
	}
	if status, msg, ok := h.PullFailure(ctx, r, feedName, repo, name, err); ok {
		writeError(w, status, msg)
		return
	}
	h.fail(w, r, "pull file from upstream", err)
}

// blocked answers a download the dependency firewall refused or could not
// judge.
func (h *Handler) blocked(w http.ResponseWriter, r *http.Request, repo string, err error) {
	h.AnswerBlocked(w, r, repo, "", err, writeError)
}
