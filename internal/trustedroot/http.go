package trustedroot

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/custody-dev/custody/internal/problem"
)

// Paths of the two documents: stable, served without credentials (they
// hold only public material).
const (
	TrustedRootPath   = "/api/v1/trust/trusted_root.json"
	SigningConfigPath = "/api/v1/trust/signing_config.json"
)

// Handler serves trusted_root.json and signing_config.json, made afresh
// for each request from what the server has then.
type Handler struct {
	// URL is the server's external base URL; empty: the scheme and host
	// the request came by.
	URL string
	// Input returns the documents' input, its URLs under base.
	Input func(base string) (Input, error)
	Log   *slog.Logger
}

// Register mounts the endpoints.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+TrustedRootPath, func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, TrustedRoot) })
	mux.HandleFunc("GET "+SigningConfigPath, func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, SigningConfig) })
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, doc func(Input) ([]byte, error)) {
	in, err := h.Input(h.base(r))
	if err != nil {
		problem.Fail(w, r, h.Log, "gathering the trust material", err)
		return
	}
	b, err := doc(in)
	if err != nil {
		problem.Fail(w, r, h.Log, "writing a trust document", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func (h *Handler) base(r *http.Request) string {
	if h.URL != "" {
		return strings.TrimRight(h.URL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
