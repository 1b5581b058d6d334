package timestamp

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/custody-dev/custody/internal/problem"
)

// Paths of the authority's HTTP API: those of sigstore's
// timestamp-authority, so `cosign sign --timestamp-server-url
// https://HOST/api/v1/timestamp` and `openssl ts` clients work unchanged.
const (
	Path      = "/api/v1/timestamp"
	ChainPath = "/api/v1/timestamp/certchain"
)

// Serve answers POST Path: an application/timestamp-query body, a
// granted application/timestamp-reply. A malformed or refused request is
// a 400 problem; no state changes either way.
func (a *Authority) Serve(log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != QueryMediaType {
			problem.Write(w, problem.Invalid, "the body must be an RFC 3161 time-stamp request, Content-Type "+QueryMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
		if err != nil {
			problem.Error(w, r, log, "reading a time-stamp request", err)
			return
		}
		resp, err := a.Respond(body)
		if errors.Is(err, ErrBadRequest) {
			problem.Write(w, problem.Invalid, err.Error())
			return
		}
		if err != nil {
			problem.Fail(w, r, log, "time-stamping", err)
			return
		}
		w.Header().Set("Content-Type", ReplyMediaType)
		_, _ = w.Write(resp)
	}
}

// ServeChain answers GET ChainPath with the TSA certificate chain (PEM,
// leaf first), as sigstore's timestamp-authority does.
func (a *Authority) ServeChain(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", ChainMediaType)
	_, _ = w.Write(a.ChainPEM())
}
