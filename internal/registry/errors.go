package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/veto"
)

// OCI distribution-spec error codes.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	// CodeDenied is DENIED, for refusals made in front of the registry.
	CodeDenied          = codeDenied
	codeUnsupported     = "UNSUPPORTED"
	codeTooManyRequests = "TOOMANYREQUESTS"
	// Not in the spec's table, but what the reference registry answers for a
	// malformed `n`; clients treat unknown codes as generic errors.
	codePaginationInvalid = "PAGINATION_NUMBER_INVALID"
)

// Error is a registry error as the distribution spec describes it: an HTTP
// status and one entry of the `errors` array.
type Error struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrDenied is returned by policy and authorization seams to refuse a
// request; the registry answers 403 DENIED with the error's text. It is
// veto.ErrDenied, so packages the registry depends on can refuse too.
var ErrDenied = veto.ErrDenied

// ErrUnauthenticated is returned by an Authorizer when the request carries
// no acceptable credentials; the registry answers 401 UNAUTHORIZED.
var ErrUnauthenticated = veto.ErrUnauthenticated

// ErrTooManyRequests is returned by an Authorizer that rate-limits a client
// (for example after repeated failed sign-ins); the registry answers 429
// TOOMANYREQUESTS.
var ErrTooManyRequests = veto.ErrTooManyRequests

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// WriteError answers like the registry does: with the spec's JSON error
// body, for refusals made in front of the registry.
func WriteError(w http.ResponseWriter, r *http.Request, err *Error) { writeError(w, r, err) }

// writeError answers with the spec's JSON error body. Errors that are not
// *Error (nor a refusal) become 500 UNKNOWN without internal detail: the
// message names the request ID that the log line (reg.internal) carries.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		switch {
		case errors.Is(err, ErrTooManyRequests):
			e = errorf(http.StatusTooManyRequests, "TOOMANYREQUESTS", "%v", err)
		case errors.Is(err, ErrUnauthenticated):
			e = errorf(http.StatusUnauthorized, codeUnauthorized, "%v", err)
		case errors.Is(err, ErrDenied):
			e = errorf(http.StatusForbidden, codeDenied, "%v", err)
		default:
			e = &Error{Status: http.StatusInternalServerError, Code: "UNKNOWN", Message: problem.InternalDetail(RequestID(r.Context()))}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
}
