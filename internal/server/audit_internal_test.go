package server

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/registry"
)

func TestAuditEntryActor(t *testing.T) {
	r := httptest.NewRequest("PUT", "/v2/a/manifests/v1", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r = r.WithContext(registry.WithRequestID(r.Context(), "req1"))
	e := audit.Event{Action: "manifest.put", Repo: "a", Tag: "v1", Result: "ok", Request: r}

	got := auditEntry(context.Background(), e)
	if got.Actor != "anonymous" || got.Auth != "none" || got.Client != "192.0.2.1:1234" || got.RequestID != "req1" || got.Repo != "a" || got.Tag != "v1" {
		t.Fatalf("anonymous entry = %+v", got)
	}
	r = r.WithContext(identity.With(r.Context(), identity.Identity{Subject: "alice", Method: "basic"}))
	e.Request = r
	got = auditEntry(context.Background(), e)
	if got.Actor != "alice" || got.Auth != "basic" {
		t.Fatalf("authenticated entry = %+v", got)
	}
}
