// Package problem writes RFC 9457 problem details (application/problem+json),
// the error format of custody's /api/v1/ management API and /generic/.
//
// Every problem a handler answers is one of the Kind constants below; a
// Kind fixes its type URI, title and HTTP status, so statuses are decided
// here and nowhere else. Errors become problems in one place (From, Error),
// and a failure of the server itself answers 500 with a detail that names
// the request ID the log line carries and never the internal error's text
// (Fail, FailAs).
package problem

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/reqbody"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/veto"
)

// Details is an RFC 9457 problem details object.
type Details struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// TypeBase prefixes custody's problem types.
const TypeBase = "https://custody.dev/problems/"

// Kind is one type of problem custody answers.
type Kind int

// The kinds of problem. docs/problems.md lists them (TestDocsListEveryKind
// keeps it in step); the type URIs are stable: clients match on them.
const (
	Internal Kind = iota
	NotFound
	ManifestUnknown
	MethodNotAllowed
	Invalid
	InvalidBody
	InvalidName
	InvalidDigest
	InvalidReference
	InvalidPath
	InvalidClaims
	InvalidUpload
	InvalidChecksum
	InvalidMetadata
	ChecksumMismatch
	IncompleteBody
	UnreadableBody
	BodyTooLarge
	BodyNotAccepted
	Unauthorized
	Denied
	RetentionLocked
	TooManyRequests
	Exists
	AlreadyRevoked
	AuthOff
	RetentionEnabled
	RollbackRefused
	GateRefused
	VersionImmutable
	NoProjects
	AuditInconsistent
	NoKey
	Retry
	InsufficientStorage
	ContentDamaged
	ArtifactUnreadable
	SourceUnverified
	MFARequired
	StepUpRequired
	WebAuthnUnavailable
	numKinds
)

type spec struct {
	name   string // the type URI's suffix
	title  string
	status int
	when   string // for the documentation
}

var specs = [numKinds]spec{
	Internal:            {"internal", "Internal error", 500, "the server failed; the detail names the request ID its log line carries"},
	NotFound:            {"not-found", "Not found", 404, "no such endpoint, repository, version, file, user, token, grant, key, policy, environment or checkpoint"},
	ManifestUnknown:     {"manifest-unknown", "Manifest unknown", 404, "no such manifest in the repository"},
	MethodNotAllowed:    {"method-not-allowed", "Method not allowed", 405, "the method is not allowed on this path (see Allow)"},
	Invalid:             {"invalid", "Invalid request", 400, "a malformed request: parameters, policy, retention, query"},
	InvalidBody:         {"invalid-body", "Invalid request body", 400, "the JSON body is malformed or has unknown fields"},
	InvalidName:         {"invalid-name", "Invalid repository name", 400, "a repository name or tag that is not valid"},
	InvalidDigest:       {"invalid-digest", "Invalid digest", 400, "a malformed or unsupported digest"},
	InvalidReference:    {"invalid-reference", "Invalid artifact reference", 400, "the artifact is not named as REPOSITORY/@DIGEST"},
	InvalidPath:         {"invalid-path", "Invalid path", 400, "a /generic/ path that is not valid (percent-escapes, empty segments)"},
	InvalidClaims:       {"invalid-claims", "Unusable token claims", 400, "the OIDC token's claims do not describe a build"},
	InvalidUpload:       {"invalid-upload", "Invalid upload", 400, "the uploaded vulnerability data is not an OSV export or advisory"},
	InvalidChecksum:     {"invalid-checksum", "Invalid checksum header", 400, "a malformed X-Checksum-* header"},
	InvalidMetadata:     {"invalid-metadata", "Invalid build metadata", 400, "malformed build metadata headers"},
	ChecksumMismatch:    {"checksum-mismatch", "Checksum mismatch", 400, "the body does not match the checksum the client sent"},
	IncompleteBody:      {"incomplete-body", "Incomplete body", 400, "the body ended before Content-Length bytes"},
	UnreadableBody:      {"unreadable-body", "Unreadable body", 400, "the client failed to deliver the body (malformed chunked encoding, a cut connection)"},
	BodyTooLarge:        {"body-too-large", "Body too large", 413, "the body exceeds the endpoint's limit"},
	BodyNotAccepted:     {"body-not-accepted", "Body not accepted", 400, "a body on a request that takes none"},
	Unauthorized:        {"unauthorized", "Authentication required", 401, "no acceptable credentials"},
	Denied:              {"denied", "Denied", 403, "the identity lacks the permission, or a policy refuses the change"},
	RetentionLocked:     {"retention-locked", "Refused by retention", 403, "retention forbids the change"},
	TooManyRequests:     {"too-many-requests", "Too many requests", 429, "rate-limited after failed sign-ins (see Retry-After)"},
	Exists:              {"exists", "Already exists", 409, "the user already exists"},
	AlreadyRevoked:      {"already-revoked", "Already revoked", 409, "the token is already revoked"},
	AuthOff:             {"auth-off", "Authentication is off", 409, "the request needs authentication turned on"},
	RetentionEnabled:    {"retention-enabled", "Retention cannot be switched off", 409, "a policy change would switch retention off"},
	RollbackRefused:     {"rollback-refused", "Rollback refused", 409, "no earlier digest, or the earlier digest is revoked"},
	GateRefused:         {"gate-refused", "Promotion refused", 409, "the promotion gate refused the artifact, or it is revoked"},
	VersionImmutable:    {"version-immutable", "Version is immutable", 409, "a /generic/ version's file exists with other bytes"},
	NoProjects:          {"no-projects", "No projects", 409, "scanning needs the signing key and projects configured"},
	AuditInconsistent:   {"audit-inconsistent", "Audit log inconsistent", 409, "the audit log does not extend its last signed checkpoint"},
	NoKey:               {"no-key", "No signing key", 503, "the server has no unlocked signing key"},
	Retry:               {"retry", "Retry", 503, "a concurrent change; retry the request"},
	InsufficientStorage: {"insufficient-storage", "Insufficient storage", 507, "the disk reserve is reached; writes are refused"},
	ContentDamaged:      {"content-damaged", "Stored content is damaged", 500, "stored bytes do not match their digest (run custody scrub)"},
	ArtifactUnreadable:  {"artifact-unreadable", "Reading the artifact failed", 502, "the artifact or its evidence could not be read; the detail names the request ID"},
	SourceUnverified:    {"source-unverified", "Source not verified", 422, "the git commit object is malformed, is not the commit the artifact's provenance names, or is not signed by an allowed signer"},
	MFARequired:         {"mfa-required", "Second factor required", 403, "the account or its roles need a second factor: present a one-time code (X-Custody-OTP), or enrol one first"},
	StepUpRequired:      {"step-up-required", "Recent second factor required", 403, "a dangerous action needs a second factor presented within the last minutes: send a fresh code or use a security key"},
	WebAuthnUnavailable: {"webauthn-unavailable", "Security keys unavailable", 409, "security keys and passkeys need the web interface's external URL (web.url, CUSTODY_WEB_URL)"},
}

// Kinds returns every kind, in order.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

func (k Kind) spec() spec {
	if k < 0 || k >= numKinds {
		return specs[Internal]
	}
	return specs[k]
}

// Name is the kind's type URI suffix, e.g. "retention-locked".
func (k Kind) Name() string { return k.spec().name }

// Type is the kind's type URI.
func (k Kind) Type() string { return TypeBase + k.spec().name }

// Title is the kind's short human-readable summary.
func (k Kind) Title() string { return k.spec().title }

// Status is the kind's HTTP status.
func (k Kind) Status() int { return k.spec().status }

// When says when custody answers the kind (for the documentation).
func (k Kind) When() string { return k.spec().when }

func (k Kind) String() string { return k.Name() }

// Details returns the problem object of k with detail.
func (k Kind) Details(detail string) Details {
	return Details{Type: k.Type(), Title: k.Title(), Status: k.Status(), Detail: detail}
}

// Write answers with a problem of kind k; detail says what happened. The
// detail must not carry the text of an internal failure: use Fail or
// FailAs for those.
func Write(w http.ResponseWriter, k Kind, detail string) {
	WriteBody(w, k.Status(), k.Details(detail))
}

// WriteBody answers with body, a problem object (or a struct embedding
// Details), as application/problem+json and the given status.
func WriteBody(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// From returns the kind of problem err is a refusal of, and false for an
// error that is no client's fault (an internal failure).
func From(err error) (Kind, bool) {
	var be *reqbody.Error
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return Internal, false
	case errors.As(err, &tooLarge):
		return BodyTooLarge, true
	case errors.As(err, &be):
		return UnreadableBody, true
	case errors.Is(err, veto.ErrTooManyRequests):
		return TooManyRequests, true
	case errors.Is(err, veto.ErrUnauthenticated):
		return Unauthorized, true
	case errors.Is(err, veto.ErrMFARequired):
		return MFARequired, true
	case errors.Is(err, veto.ErrStepUpRequired):
		return StepUpRequired, true
	case errors.Is(err, retention.ErrLocked):
		return RetentionLocked, true
	case errors.Is(err, veto.ErrDenied):
		return Denied, true
	case errors.Is(err, policy.ErrConflict):
		return RetentionEnabled, true
	case errors.Is(err, policy.ErrInvalid), errors.Is(err, retention.ErrInvalid):
		return Invalid, true
	case errors.Is(err, meta.ErrNotFound):
		return ManifestUnknown, true
	case errors.Is(err, key.ErrNotActive):
		return NoKey, true
	case errors.Is(err, policy.ErrNotFound), errors.Is(err, retention.ErrNotFound), errors.Is(err, account.ErrNotFound):
		return NotFound, true
	}
	return Internal, false
}

// Error answers err: a refusal (see From) as its kind with the error's
// text as the detail, anything else as Fail does (logged, no text sent).
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, what string, err error) {
	if k, ok := From(err); ok {
		detail := err.Error()
		if k == ManifestUnknown { // the metadata store's "not found" names nothing
			detail = "no such manifest in the repository"
		}
		Write(w, k, detail)
		return
	}
	Fail(w, r, log, what, err)
}

// Fail answers 500 Internal for a failure of the server: it logs what and
// err with the request ID and sends only "internal error; request ID <id>".
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, what string, err error) {
	FailAs(w, r, log, Internal, what, err)
}

// FailAs is Fail answered with kind k (a 5xx kind such as
// ArtifactUnreadable): err is logged with the request ID, never sent.
func FailAs(w http.ResponseWriter, r *http.Request, log *slog.Logger, k Kind, what string, err error) {
	id := RequestID(w)
	if log == nil {
		log = slog.Default()
	}
	log.ErrorContext(r.Context(), what, "err", err, "request_id", id)
	Write(w, k, InternalDetail(id))
}

// InternalDetail is the detail of a 500: it names the request ID and
// nothing else.
func InternalDetail(id string) string { return "internal error; request ID " + id }

// RequestIDHeader names the request ID on requests and responses.
const RequestIDHeader = "X-Request-Id"

// RequestID returns the request's ID: the one the server's request-ID
// middleware set on the response (the ID its logs and audit events carry).
// A handler served without that middleware gets a fresh ID, set on the
// response, so the answer and the log still agree.
func RequestID(w http.ResponseWriter) string {
	if id := w.Header().Get(RequestIDHeader); id != "" {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	w.Header().Set(RequestIDHeader, id)
	return id
}

// JSON answers with v as JSON and the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
