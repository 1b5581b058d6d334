package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
)

// Failed sign-ins for one account name lock out that name only; the
// address's own limit is far higher and still lets a correct password of
// another account in.
func TestLoginThrottlePerName(t *testing.T) {
	a := newAuthServer(t, func(c *config.Config) {
		c.Auth.LoginFailures = 3
		c.Auth.LoginAddressFailures = 6
		c.Auth.LoginWindow = config.Duration(time.Hour)
	})
	alice := a.user("alice", nil, auth.Grant{Subject: "user:alice", Role: auth.RoleReader, Repository: "**"})
	bob := a.user("bob", nil)
	for i := range 3 {
		if code, _, _ := a.call("GET", "/v2/", fmt.Sprintf("alice:wrong-%d", i), nil); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	// alice is locked, even with her password ...
	if code, _, h := a.call("GET", "/v2/", alice, nil); code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("alice after 3 failures: %d", code)
	}
	// ... the others behind the same address are not.
	a.must("GET", "/v2/", "admin:"+a.admin, nil, http.StatusOK)
	a.must("GET", "/auth/token?service=custody", bob, nil, http.StatusOK)
	// A spray of names from the address (unknown ones too) reaches the
	// address's limit: its further failures are 429 ...
	for _, n := range []string{"carol", "nobody", "dave"} {
		if code, _, _ := a.call("GET", "/v2/", n+":guess-1234567", nil); code != http.StatusUnauthorized {
			t.Fatalf("%s: %d", n, code)
		}
	}
	code, body, h := a.call("GET", "/v2/", "erin:guess-1234567", nil)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(body, "TOOMANYREQUESTS") {
		t.Fatalf("spray past the address limit: %d %s", code, body)
	}
	a.mustAudit("login", "denied", `"actor":"erin"`, "too many failed sign-ins from 127.0.0.1")
	// ... and a correct password of an account that is not locked still
	// signs in, while the locked one stays locked.
	a.must("GET", "/v2/", "admin:"+a.admin, nil, http.StatusOK)
	a.must("GET", "/api/v1/whoami", bob, nil, http.StatusOK)
	if code, _, _ := a.call("GET", "/v2/", alice, nil); code != http.StatusTooManyRequests {
		t.Fatalf("alice: %d", code)
	}
	// Wrong API tokens count against the address only, never against a
	// shared name such as "token".
	tok := a.token("admin:"+a.admin, auth.RoleReader, "1h", "**")
	a.must("GET", "/v2/", "token:"+tok.Secret, nil, http.StatusOK)
}

// The client address behind a trusted proxy comes from its header: the
// address limit applies per client, and the audit log names the client.
// Anyone else's header is ignored.
func TestTrustedProxyHeader(t *testing.T) {
	spray := func(a *authServer, xff string, n int) (last int) {
		for i := range n {
			req, _ := http.NewRequest("GET", a.hs.URL+"/v2/", nil)
			req.SetBasicAuth(fmt.Sprintf("user%d", i), "guess-1234567")
			req.Header.Set("X-Forwarded-For", xff)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			last = resp.StatusCode
		}
		return last
	}
	limits := func(c *config.Config) {
		c.Auth.LoginFailures, c.Auth.LoginAddressFailures, c.Auth.LoginWindow = 2, 3, config.Duration(time.Hour)
	}
	a := newAuthServer(t, func(c *config.Config) { limits(c); c.Proxy.Trusted = []string{"127.0.0.0/8", "::1"} })
	if code := spray(a, "6.6.6.6, 198.51.100.1", 4); code != http.StatusTooManyRequests {
		t.Fatalf("client 198.51.100.1 past its limit: %d", code)
	}
	if code := spray(a, "198.51.100.2", 1); code != http.StatusUnauthorized {
		t.Fatalf("another client behind the proxy: %d", code)
	}
	a.mustAudit("login", "denied", `"client":"198.51.100.1"`, "too many failed sign-ins from 198.51.100.1")
	a.mustAudit("login", "denied", `"client":"198.51.100.2"`)
	if a.audited("login", "denied", `"client":"6.6.6.6"`) {
		t.Fatal("the forgeable leftmost entry was believed")
	}
	// Not a trusted proxy: the header is ignored, the peer is the client.
	b := newAuthServer(t, limits)
	spray(b, "198.51.100.1", 3)
	if code := spray(b, "198.51.100.2", 1); code != http.StatusTooManyRequests {
		t.Fatalf("an untrusted X-Forwarded-For escaped the limit: %d", code)
	}
	if b.audited("login", "denied", `"client":"198.51.100`) {
		t.Fatal("an untrusted header reached the audit log")
	}
}
