package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/server"
)

// Bypassing governance retention is a permission of its own role: admin
// does not hold it, a grant of governance-bypass gives it.
func TestGovernanceBypassPermission(t *testing.T) {
	a := newAuthServer(t, nil)
	ops := a.user("ops", nil, auth.Grant{Subject: "user:ops", Role: auth.RoleMaintainer, Repository: "**"})
	if _, err := a.push("gov/app", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	d := a.digestOf("gov/app", "v1")
	until := time.Now().Add(time.Hour).UTC()
	lock := func(cred string, until time.Time, reason string) (int, string) {
		req, _ := http.NewRequest("PUT", a.hs.URL+"/api/v1/retention/gov/app/@"+d,
			strings.NewReader(fmt.Sprintf(`{"mode":"governance","retainUntil":%q}`, until.Format(time.RFC3339))))
		u, p, _ := strings.Cut(cred, ":")
		req.SetBasicAuth(u, p)
		if reason != "" {
			req.Header.Set(retention.BypassHeader, reason)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := lock("admin:"+a.admin, until, ""); code != http.StatusOK {
		t.Fatalf("lock: %d %s", code, body)
	}
	del := func(cred string) (int, string) {
		req, _ := http.NewRequest("DELETE", a.hs.URL+"/v2/gov/app/manifests/"+d, nil)
		u, p, _ := strings.Cut(cred, ":")
		req.SetBasicAuth(u, p)
		req.Header.Set(retention.BypassHeader, "INC-42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Neither the admin nor a maintainer may bypass, with a reason or not.
	for _, cred := range []string{"admin:" + a.admin, ops} {
		if code, body := del(cred); code != http.StatusForbidden || !strings.Contains(body, "lacks the bypass permission") {
			t.Fatalf("%s bypass delete: %d %s", cred, code, body)
		}
		if code, body := lock(cred, until.Add(-time.Minute), "INC-42"); code != http.StatusForbidden || !strings.Contains(body, "lacks the bypass permission") {
			t.Fatalf("%s bypass shorten: %d %s", cred, code, body)
		}
		if a.digestOf("gov/app", "v1") != d {
			t.Fatal("the refused bypass deleted the manifest")
		}
	}
	// An API token of a holder carries the permission only if its scope
	// does; the grant itself is audited.
	a.must("POST", "/api/v1/grants", "admin:"+a.admin, auth.Grant{Subject: "user:ops", Role: auth.RoleGovernanceBypass, Repository: "**"}, http.StatusCreated)
	a.mustAudit("grant.create", "ok", "user:ops governance-bypass on **")
	tok := a.token(ops, auth.RoleMaintainer, "1h", "**")
	if code, body := del("token:" + tok.Secret); code != http.StatusForbidden {
		t.Fatalf("bypass with a token without the role: %d %s", code, body)
	}
	if code, body := lock(ops, until.Add(-time.Minute), "INC-42"); code != http.StatusOK {
		t.Fatalf("ops shortens with the bypass: %d %s", code, body)
	}
	if code, body := del(ops); code != http.StatusAccepted {
		t.Fatalf("ops bypass delete: %d %s", code, body)
	}
	a.mustAudit("retention.bypass", "ok", "INC-42")
	if a.digestOf("gov/app", "v1") != "" {
		t.Fatal("not deleted")
	}
}

// retention.allowGovernanceBypass grants every client the bypass; with
// accounts that would undo the role, so the server refuses to start.
func TestAllowGovernanceBypassNeedsAuthNone(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.MFA.Roles = nil // passwords alone in these tests
	cfg.Data = t.TempDir()
	cfg.Retention.AllowGovernanceBypass = true
	_, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "governance-bypass role") {
		t.Fatalf("auth on with allowGovernanceBypass: %v", err)
	}
	cfg.Auth.Mode = "none"
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
