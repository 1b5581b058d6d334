package generic

import (
	"errors"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
)

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
	names, err := h.store.Repositories(r.Context(), l.repo)
	if err != nil {
		h.internal(w, r, "list repositories", err)
		return
	}
	if len(names) == 0 {
		problem.Write(w, problem.NotFound, "no such repository")
		return
	}
	problem.JSON(w, http.StatusOK, NameList{Repo: l.repo, Names: names})
}

func (h *Handler) listVersions(w http.ResponseWriter, r *http.Request, l location) {
	tagged, err := h.store.Tagged(r.Context(), l.oci())
	if errors.Is(err, meta.ErrNotFound) {
		problem.Write(w, problem.NotFound, "no such name")
		return
	} else if err != nil {
		h.internal(w, r, "list versions", err)
		return
	}
	out := VersionList{Repo: l.repo, Name: l.name, Versions: []Version{}}
	for _, t := range tagged {
		out.Versions = append(out.Versions, Version{Version: t.Tag, Digest: t.Manifest.Digest, Created: t.Manifest.Created})
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
