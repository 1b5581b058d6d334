package pypi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"sort"
	"strings"

	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
)

// Content types of the simple repository API (PEP 691).
const (
	JSONType = "application/vnd.pypi.simple.v1+json"
	HTMLType = "application/vnd.pypi.simple.v1+html"
)

// wantsJSON reports whether the client prefers PEP 691's JSON: it names
// the JSON type with a q-value at least that of every HTML type it names.
func wantsJSON(r *http.Request) bool {
	jsonQ, htmlQ := -1.0, -1.0
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
					if _, err := fmt.Sscanf(strings.TrimSpace(val), "%g", &q); err != nil {
						q = 0
					}
				}
			}
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case JSONType:
				jsonQ = max(jsonQ, q)
			case HTMLType, "text/html":
				htmlQ = max(htmlQ, q)
			}
		}
	}
	return jsonQ > 0 && jsonQ >= htmlQ
}

// file is one file of a project's index.
type file struct {
	name, sha256, requiresPython string
}

// files lists a project's files from its repository: the tags that are
// PyPI files, each with its sha256 (the layer's digest) and
// requires_python; meta.ErrNotFound when there are none.
func (h *Handler) files(ctx context.Context, repo string) ([]file, error) {
	tagged, err := h.Store.Tagged(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []file
	for _, t := range tagged {
		name, ok := feed.TagVersion(t.Tag)
		if !ok || t.Manifest.ArtifactType != ArtifactType || !feed.ValidFilename(name) {
			continue
		}
		v, err := h.Store.VersionAt(ctx, repo, t.Manifest.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f, ok := v.File(name)
		if !ok || f.Digest.Algorithm() != "sha256" {
			continue
		}
		out = append(out, file{name: name, sha256: f.Digest.Encoded(), requiresPython: t.Manifest.Annotations[annotationRequiresPython]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("project %s: %w", repo, meta.ErrNotFound)
	}
	return out, nil
}

// project serves /simple/<project>/.
func (h *Handler) project(w http.ResponseWriter, r *http.Request, repo string) {
	segs, _ := feed.Segments(repo[:strings.IndexByte(repo, '/')], repo)
	name := segs[0]
	files, err := h.files(r.Context(), repo)
	if errors.Is(err, meta.ErrNotFound) {
		writeError(w, http.StatusNotFound, "Not Found: no project "+name+" in this feed")
		return
	} else if err != nil {
		h.fail(w, r, "read project", err)
		return
	}
	renderProject(w, r, name, files)
}

// renderProject answers a project's index page listing files: PEP 691
// JSON when the client prefers it, else PEP 503 HTML.
func renderProject(w http.ResponseWriter, r *http.Request, name string, files []file) {
	w.Header().Add("Vary", "Accept")
	if wantsJSON(r) {
		type jsonFile struct {
			Filename       string            `json:"filename"`
			URL            string            `json:"url"`
			Hashes         map[string]string `json:"hashes"`
			RequiresPython string            `json:"requires-python,omitempty"`
		}
		doc := struct {
			Meta  map[string]string `json:"meta"`
			Name  string            `json:"name"`
			Files []jsonFile        `json:"files"`
		}{Meta: map[string]string{"api-version": "1.0"}, Name: name, Files: []jsonFile{}}
		for _, f := range files {
			doc.Files = append(doc.Files, jsonFile{Filename: f.name, URL: fileURL(name, f.name),
				Hashes: map[string]string{"sha256": f.sha256}, RequiresPython: f.requiresPython})
		}
		writeJSON(w, doc)
		return
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n")
	fmt.Fprintf(&b, "<title>Links for %s</title>\n</head>\n<body>\n<h1>Links for %s</h1>\n", html.EscapeString(name), html.EscapeString(name))
	for _, f := range files {
		fmt.Fprintf(&b, "<a href=\"%s#sha256=%s\"", html.EscapeString(fileURL(name, f.name)), f.sha256)
		if f.requiresPython != "" {
			fmt.Fprintf(&b, " data-requires-python=\"%s\"", html.EscapeString(f.requiresPython))
		}
		fmt.Fprintf(&b, ">%s</a><br/>\n", html.EscapeString(f.name))
	}
	b.WriteString("</body>\n</html>\n")
	writeHTML(w, r, b.String())
}

// projects serves /simple/: the projects of the feed the caller may read.
func (h *Handler) projects(w http.ResponseWriter, r *http.Request, feedName string) {
	ar, err := h.Authz.Authorize(w, r, nil)
	if err != nil {
		if ar != nil {
			r = ar
		}
		h.AuthError(w, r, "", err, writeError)
		return
	}
	// A virtual feed lists the projects its members hold.
	members := []string{feedName}
	if f := h.Feeds[feedName]; f.Kind == feed.KindVirtual {
		members = f.Members
	}
	seen := map[string]bool{}
	var readable []string
	for _, m := range members {
		names, err := h.Store.Repositories(ar.Context(), m)
		if err != nil {
			h.fail(w, ar, "list projects", err)
			return
		}
		for _, n := range names {
			if seen[n] || !ValidName(n) || Normalize(n) != n {
				continue
			}
			seen[n] = true // an earlier member's project shadows a later one's
			if h.canRead(ar.Context(), m+"/"+n) {
				readable = append(readable, n)
			}
		}
	}
	sort.Strings(readable)
	w.Header().Add("Vary", "Accept")
	if wantsJSON(r) {
		type project struct {
			Name string `json:"name"`
		}
		doc := struct {
			Meta     map[string]string `json:"meta"`
			Projects []project         `json:"projects"`
		}{Meta: map[string]string{"api-version": "1.0"}, Projects: []project{}}
		for _, n := range readable {
			doc.Projects = append(doc.Projects, project{Name: n})
		}
		writeJSON(w, doc)
		return
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n<title>Simple index</title>\n</head>\n<body>\n")
	for _, n := range readable {
		fmt.Fprintf(&b, "<a href=\"%s/\">%s</a><br/>\n", n, n)
	}
	b.WriteString("</body>\n</html>\n")
	writeHTML(w, r, b.String())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", JSONType)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// writeHTML answers with PEP 691's HTML type when the client named it,
// else as text/html (PEP 503).
func writeHTML(w http.ResponseWriter, r *http.Request, s string) {
	ct := "text/html; charset=utf-8"
	if strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Accept"), ",")), HTMLType) {
		ct = HTMLType
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(s))
}
