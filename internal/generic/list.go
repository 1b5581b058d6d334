package generic

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
)

// pageSize is how many entries listings ask the metadata store for at once.
const pageSize = 1000

// NameList is the body of GET /generic/<repo>/.
type NameList struct {
	Repo  string   `json:"repo"`
	Names []string `json:"names"`
}

// Version is one entry of a version listing.
type Version struct {
	Version string        `json:"version"`
	Digest  digest.Digest `json:"digest"`
	Created time.Time     `json:"created"`
}

// VersionList is the body of GET /generic/<repo>/<name>/.
type VersionList struct {
	Repo     string    `json:"repo"`
	Name     string    `json:"name"`
	Versions []Version `json:"versions"`
}

// FileList is the body of GET /generic/<repo>/<name>/<version>/.
type FileList struct {
	Repo        string            `json:"repo"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Digest      digest.Digest     `json:"digest"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Files       []File            `json:"files"`
}

func (h *Handler) listNames(w http.ResponseWriter, r *http.Request, l location) {
	prefix := l.repo + "/"
	names := []string{}
	last := prefix
	for {
		page, err := h.meta.Repositories(r.Context(), last, pageSize)
		if err != nil {
			h.internal(w, r, "list repositories", err)
			return
		}
		done := len(page) < pageSize
		for _, repo := range page {
			rest, ok := strings.CutPrefix(repo, prefix)
			if !ok {
				done = true
				break
			}
			if !strings.Contains(rest, "/") {
				names = append(names, rest)
			}
			last = repo
		}
		if done {
			break
		}
	}
	if len(names) == 0 {
		problem.Write(w, problem.NotFound, "no such repository")
		return
	}
	problem.JSON(w, http.StatusOK, NameList{Repo: l.repo, Names: names})
}

func (h *Handler) listVersions(w http.ResponseWriter, r *http.Request, l location) {
	ctx := r.Context()
	out := VersionList{Repo: l.repo, Name: l.name, Versions: []Version{}}
	last := ""
	for {
		tags, err := h.meta.Tags(ctx, l.oci(), last, pageSize)
		if errors.Is(err, meta.ErrNotFound) {
			problem.Write(w, problem.NotFound, "no such name")
			return
		} else if err != nil {
			h.internal(w, r, "list versions", err)
			return
		}
		for _, t := range tags {
			d, err := h.meta.ResolveTag(ctx, l.oci(), t)
			if errors.Is(err, meta.ErrNotFound) {
				continue // deleted meanwhile
			} else if err != nil {
				h.internal(w, r, "resolve version", err)
				return
			}
			m, err := h.meta.GetManifest(ctx, l.oci(), d)
			if errors.Is(err, meta.ErrNotFound) {
				continue
			} else if err != nil {
				h.internal(w, r, "read version", err)
				return
			}
			out.Versions = append(out.Versions, Version{Version: t, Digest: d, Created: m.Created})
		}
		if len(tags) < pageSize {
			break
		}
		last = tags[len(tags)-1]
	}
	problem.JSON(w, http.StatusOK, out)
}

func (h *Handler) listFiles(w http.ResponseWriter, r *http.Request, l location) {
	m, files, ok := h.loadVersion(w, r, l)
	if !ok {
		return
	}
	problem.JSON(w, http.StatusOK, FileList{Repo: l.repo, Name: l.name, Version: l.version,
		Digest: m.Digest, Created: m.Created, Annotations: m.Annotations, Files: files})
}
