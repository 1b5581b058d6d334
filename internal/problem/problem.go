// Package problem writes RFC 9457 problem details (application/problem+json),
// the error format of custody's /api/v1/ management API.
package problem

import (
	"encoding/json"
	"net/http"
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

// Write answers with a problem of the given status; kind names the type
// (e.g. "retention-locked") and detail says what happened.
func Write(w http.ResponseWriter, status int, kind, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Details{Type: TypeBase + kind, Title: title, Status: status, Detail: detail})
}

// JSON answers with v as JSON and the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
