package problem_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/reqbody"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/veto"
)

// TestKinds pins every kind's type URI, title and status: clients match on
// the types, so a change here is a change of the API.
func TestKinds(t *testing.T) {
	want := []struct {
		k      problem.Kind
		name   string
		title  string
		status int
	}{
		{problem.Internal, "internal", "Internal error", 500},
		{problem.NotFound, "not-found", "Not found", 404},
		{problem.ManifestUnknown, "manifest-unknown", "Manifest unknown", 404},
		{problem.MethodNotAllowed, "method-not-allowed", "Method not allowed", 405},
		{problem.Invalid, "invalid", "Invalid request", 400},
		{problem.InvalidBody, "invalid-body", "Invalid request body", 400},
		{problem.InvalidName, "invalid-name", "Invalid repository name", 400},
		{problem.InvalidDigest, "invalid-digest", "Invalid digest", 400},
		{problem.InvalidReference, "invalid-reference", "Invalid artifact reference", 400},
		{problem.InvalidPath, "invalid-path", "Invalid path", 400},
		{problem.InvalidClaims, "invalid-claims", "Unusable token claims", 400},
		{problem.InvalidUpload, "invalid-upload", "Invalid upload", 400},
		{problem.InvalidChecksum, "invalid-checksum", "Invalid checksum header", 400},
		{problem.InvalidMetadata, "invalid-metadata", "Invalid build metadata", 400},
		{problem.ChecksumMismatch, "checksum-mismatch", "Checksum mismatch", 400},
		{problem.IncompleteBody, "incomplete-body", "Incomplete body", 400},
		{problem.UnreadableBody, "unreadable-body", "Unreadable body", 400},
		{problem.BodyTooLarge, "body-too-large", "Body too large", 413},
		{problem.BodyNotAccepted, "body-not-accepted", "Body not accepted", 400},
		{problem.Unauthorized, "unauthorized", "Authentication required", 401},
		{problem.Denied, "denied", "Denied", 403},
		{problem.RetentionLocked, "retention-locked", "Refused by retention", 403},
		{problem.TooManyRequests, "too-many-requests", "Too many requests", 429},
		{problem.Exists, "exists", "Already exists", 409},
		{problem.AlreadyRevoked, "already-revoked", "Already revoked", 409},
		{problem.AuthOff, "auth-off", "Authentication is off", 409},
		{problem.RetentionEnabled, "retention-enabled", "Retention cannot be switched off", 409},
		{problem.RollbackRefused, "rollback-refused", "Rollback refused", 409},
		{problem.GateRefused, "gate-refused", "Promotion refused", 409},
		{problem.VersionImmutable, "version-immutable", "Version is immutable", 409},
		{problem.NoProjects, "no-projects", "No projects", 409},
		{problem.AuditInconsistent, "audit-inconsistent", "Audit log inconsistent", 409},
		{problem.NoKey, "no-key", "No signing key", 503},
		{problem.Retry, "retry", "Retry", 503},
		{problem.InsufficientStorage, "insufficient-storage", "Insufficient storage", 507},
		{problem.ContentDamaged, "content-damaged", "Stored content is damaged", 500},
		{problem.ArtifactUnreadable, "artifact-unreadable", "Reading the artifact failed", 502},
		{problem.SourceUnverified, "source-unverified", "Source not verified", 422},
		{problem.MFARequired, "mfa-required", "Second factor required", 403},
		{problem.StepUpRequired, "step-up-required", "Recent second factor required", 403},
		{problem.WebAuthnUnavailable, "webauthn-unavailable", "Security keys unavailable", 409},
	}
	if len(want) != len(problem.Kinds()) {
		t.Fatalf("%d kinds pinned, %d exist: pin the new kind here", len(want), len(problem.Kinds()))
	}
	seen := map[string]bool{}
	for i, w := range want {
		k := w.k
		if k != problem.Kinds()[i] {
			t.Errorf("kind %d is %v, want %v", i, problem.Kinds()[i], k)
		}
		if k.Name() != w.name || k.Type() != problem.TypeBase+w.name || k.Title() != w.title || k.Status() != w.status {
			t.Errorf("%v: %s %q %d, want %s %q %d", k, k.Type(), k.Title(), k.Status(), problem.TypeBase+w.name, w.title, w.status)
		}
		if seen[k.Name()] {
			t.Errorf("type %s used twice", k.Name())
		}
		seen[k.Name()] = true
		if k.When() == "" {
			t.Errorf("%v: no documentation", k)
		}
		rec := httptest.NewRecorder()
		problem.Write(rec, k, "what happened")
		var d problem.Details
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != w.status ||
			rec.Header().Get("Content-Type") != "application/problem+json" ||
			d != (problem.Details{Type: problem.TypeBase + w.name, Title: w.title, Status: w.status, Detail: "what happened"}) {
			t.Errorf("Write(%v): %d %s %q", k, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}
}

// TestFrom pins which errors are the client's (a 4xx kind) and that
// anything else is an internal failure.
func TestFrom(t *testing.T) {
	tooLarge := &http.MaxBytesError{Limit: 1}
	for _, c := range []struct {
		err  error
		want problem.Kind
		ok   bool
	}{
		{fmt.Errorf("%w: no", veto.ErrDenied), problem.Denied, true},
		{fmt.Errorf("%w: sign in first", veto.ErrUnauthenticated), problem.Unauthorized, true},
		{fmt.Errorf("%w: wait", veto.ErrTooManyRequests), problem.TooManyRequests, true},
		{fmt.Errorf("%w: %w: until 2030", veto.ErrDenied, retention.ErrLocked), problem.RetentionLocked, true},
		{fmt.Errorf("%w: off", policy.ErrConflict), problem.RetentionEnabled, true},
		{fmt.Errorf("%w: bad pattern", policy.ErrInvalid), problem.Invalid, true},
		{fmt.Errorf("%w: bad mode", retention.ErrInvalid), problem.Invalid, true},
		{fmt.Errorf("manifest: %w", meta.ErrNotFound), problem.ManifestUnknown, true},
		{policy.ErrNotFound, problem.NotFound, true},
		{retention.ErrNotFound, problem.NotFound, true},
		{account.ErrNotFound, problem.NotFound, true},
		{fmt.Errorf("reading: %w", tooLarge), problem.BodyTooLarge, true},
		{&reqbody.Error{Err: errors.New("malformed chunked encoding")}, problem.UnreadableBody, true},
		{errors.New("sql: database is closed"), problem.Internal, false},
		{nil, problem.Internal, false},
	} {
		if k, ok := problem.From(c.err); k != c.want || ok != c.ok {
			t.Errorf("From(%v) = %v, %v; want %v, %v", c.err, k, ok, c.want, c.ok)
		}
	}
}

// TestFailSendsNoInternalText: a failure is answered 500 naming the
// request ID, and only the log carries the error, under that ID.
func TestFailSendsNoInternalText(t *testing.T) {
	secret := errors.New("open /var/lib/custody/meta.db: permission denied")
	for _, id := range []string{"req-42", ""} {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		rec := httptest.NewRecorder()
		if id != "" {
			rec.Header().Set("X-Request-Id", id) // as the server's middleware does
		}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)
		problem.Error(rec, r, log, "listing things failed", secret)
		got := rec.Header().Get("X-Request-Id")
		if id != "" && got != id || got == "" {
			t.Fatalf("request ID %q, want %q (or a fresh one)", got, id)
		}
		var d problem.Details
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != 500 || d.Type != problem.Internal.Type() ||
			d.Detail != "internal error; request ID "+got {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "meta.db") || strings.Contains(rec.Body.String(), "permission") {
			t.Fatalf("internal text sent: %s", rec.Body)
		}
		if l := logs.String(); !strings.Contains(l, "request_id="+got) || !strings.Contains(l, "meta.db") || !strings.Contains(l, "listing things failed") {
			t.Fatalf("log lacks the ID or the error: %s", l)
		}
	}
}

// TestErrorSendsRefusals: a refusal is the client's business: its kind,
// with its text.
func TestErrorSendsRefusals(t *testing.T) {
	rec := httptest.NewRecorder()
	problem.Error(rec, httptest.NewRequest(http.MethodGet, "/", nil), slog.New(slog.DiscardHandler),
		"x", fmt.Errorf("%w: %w: cannot shorten", veto.ErrDenied, retention.ErrLocked))
	var d problem.Details
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != 403 || d.Type != problem.RetentionLocked.Type() ||
		!strings.Contains(d.Detail, "cannot shorten") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// TestDocsListEveryKind keeps docs/problems.md's table the table of the
// code: regenerate it with CUSTODY_UPDATE_DOCS=1 go test ./internal/problem.
func TestDocsListEveryKind(t *testing.T) {
	const path = "../../docs/problems.md"
	const begin, end = "<!-- kinds:begin (generated by TestDocsListEveryKind) -->\n", "<!-- kinds:end -->\n"
	var b strings.Builder
	b.WriteString("| status | type | title | when |\n| --- | --- | --- | --- |\n")
	for _, k := range problem.Kinds() {
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s |\n", k.Status(), k.Name(), k.Title(), k.When())
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q ... %q markers", path, begin, end)
	}
	table := s[i+len(begin) : j]
	if table == b.String() {
		return
	}
	if os.Getenv("CUSTODY_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(s[:i+len(begin)]+b.String()+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s's table of problem types is out of date; run CUSTODY_UPDATE_DOCS=1 go test ./internal/problem -run TestDocsListEveryKind", path)
}
