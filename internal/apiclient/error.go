package apiclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Error is an answer of status 300 or more. The server's /api/v1/ answers
// RFC 9457 problem details (Type, Title, Detail); its /v2/ answers OCI
// error JSON (OCI).
type Error struct {
	// Status is the HTTP status code, StatusText its reason phrase.
	Status     int
	StatusText string
	// Type, Title and Detail are the problem's fields; empty when the
	// answer was no problem+json.
	Type, Title, Detail string
	// OCI holds the errors of an OCI error answer.
	OCI []OCIError
	// Body is the answer as read, for callers that decode more of it (a
	// refused promotion carries its gate's outcome).
	Body []byte
}

// OCIError is one entry of an OCI distribution error answer.
type OCIError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// problem holds the RFC 9457 members the client reads.
type problem struct {
	Type   string     `json:"type"`
	Title  string     `json:"title"`
	Status int        `json:"status"`
	Detail string     `json:"detail"`
	Errors []OCIError `json:"errors"`
}

// decodeError reads an error answer; a body that is neither a problem nor
// OCI error JSON leaves only the status.
func decodeError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, StatusText: http.StatusText(resp.StatusCode), Body: body}
	var p problem
	if json.Unmarshal(body, &p) != nil {
		return e
	}
	e.Type, e.Title, e.Detail = p.Type, p.Title, p.Detail
	for _, o := range p.Errors {
		if o.Code != "" || o.Message != "" {
			e.OCI = append(e.OCI, o)
		}
	}
	return e
}

// Error reads "Title (status): Detail" for a problem, "Status text
// (status): CODE: message" for OCI errors, else "server answered <status>".
func (e *Error) Error() string {
	switch {
	case e.Title != "" && e.Detail != "":
		return fmt.Sprintf("%s (%d): %s", e.Title, e.Status, e.Detail)
	case e.Title != "":
		return fmt.Sprintf("%s (%d)", e.Title, e.Status)
	case len(e.OCI) > 0:
		var parts []string
		for _, o := range e.OCI {
			parts = append(parts, strings.TrimSpace(o.Code+": "+o.Message))
		}
		return fmt.Sprintf("%s (%d): %s", e.StatusText, e.Status, strings.Join(parts, "; "))
	}
	return strings.TrimSpace(fmt.Sprintf("server answered %d %s", e.Status, e.StatusText))
}
