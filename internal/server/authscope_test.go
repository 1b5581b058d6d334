package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/custody-dev/custody/internal/auth"
)

// registryToken asks the token endpoint, as cred, for a token of the
// Docker token flow carrying scopes (none: a token with no access, as
// docker login and podman search get).
func (a *authServer) registryToken(cred string, scopes ...string) string {
	a.t.Helper()
	q := url.Values{"service": {"custody"}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	var tr auth.TokenResponse
	if err := json.Unmarshal([]byte(a.must("GET", "/auth/token?"+q.Encode(), cred, nil, http.StatusOK)), &tr); err != nil {
		a.t.Fatal(err)
	}
	return tr.Token
}

// challengeOf returns the WWW-Authenticate a 401 answer carries; any
// other status fails the test.
func (a *authServer) challengeOf(method, path, cred string) string {
	a.t.Helper()
	code, body, h := a.call(method, path, cred, nil)
	if code != http.StatusUnauthorized || !strings.Contains(body, "UNAUTHORIZED") {
		a.t.Fatalf("%s %s: %d, want 401: %s", method, path, code, body)
	}
	return h.Get("WWW-Authenticate")
}

func (a *authServer) wantChallenge(method, path, cred, scope string) {
	a.t.Helper()
	want := fmt.Sprintf(`Bearer realm="http://%s/auth/token",service="custody",scope=%q,error="insufficient_scope"`, a.host, scope)
	if got := a.challengeOf(method, path, cred); got != want {
		a.t.Fatalf("%s %s:\n got %s\nwant %s", method, path, got, want)
	}
}

// A token of the Docker token flow that lacks an access its holder has
// gets 401 with the scope the request needs, so the client fetches a
// wider token (docker, crane and the OCI conformance suite cache tokens
// per scope); a holder that lacks the access itself gets 403.
func TestInsufficientScopeChallenge(t *testing.T) {
	a := newAuthServer(t, nil)
	alice := a.user("alice", nil, auth.Grant{Subject: "user:alice", Role: auth.RoleWriter, Repository: "team/**"})
	bob := a.user("bob", nil, auth.Grant{Subject: "user:bob", Role: auth.RoleWriter, Repository: "team/one"})
	img, err := a.push("team/two", "v1", basic("admin:"+a.admin))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.push("team/one", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	blobIn := func(repo string) int {
		code, _, _ := a.call("HEAD", "/v2/"+repo+"/blobs/"+ld.String(), "admin:"+a.admin, nil)
		return code
	}

	// curl-style: a token for team/one:pull on team/two.
	one := a.registryToken(alice, "repository:team/one:pull")
	a.must("GET", "/v2/team/one/tags/list", one, nil, http.StatusOK)
	a.wantChallenge("GET", "/v2/team/two/tags/list", one, "repository:team/two:pull")
	a.mustAudit("authorize", "denied", `"actor":"alice"`, "does not cover pull team/two")
	two := a.registryToken(alice, "repository:team/two:pull")
	a.must("GET", "/v2/team/two/tags/list", two, nil, http.StatusOK)

	// A cross-repository mount needs push on the target and pull on the
	// source: the challenge names both, and nothing is mounted.
	push := a.registryToken(alice, "repository:team/one:pull,push")
	mount := "/v2/team/one/blobs/uploads/?mount=" + ld.String() + "&from=team/two"
	a.wantChallenge("POST", mount, push, "repository:team/one:pull,push repository:team/two:pull")
	if blobIn("team/one") != http.StatusNotFound {
		t.Fatal("the refused mount mounted the blob")
	}
	both := a.registryToken(alice, "repository:team/one:pull,push", "repository:team/two:pull")
	a.must("POST", mount, both, nil, http.StatusCreated)
	if blobIn("team/one") != http.StatusOK {
		t.Fatal("the mount did not mount")
	}

	// An upload session's status and cancel need push: a pull-only token
	// is challenged, the session stays.
	_, _, h := a.call("POST", "/v2/team/one/blobs/uploads/", push, nil)
	loc := h.Get("Location")
	if loc == "" {
		t.Fatal("no upload session")
	}
	u, _ := url.Parse(loc)
	pull := a.registryToken(alice, "repository:team/one:pull")
	a.wantChallenge("GET", u.RequestURI(), pull, "repository:team/one:pull,push")
	a.wantChallenge("DELETE", u.RequestURI(), pull, "repository:team/one:pull,push")
	a.must("GET", u.RequestURI(), push, nil, http.StatusNoContent)
	a.must("DELETE", u.RequestURI(), push, nil, http.StatusNoContent)

	// go-containerregistry's transport, holding a token for team/one:pull,
	// follows the challenge to a wider token by itself.
	ref, _ := name.ParseReference(a.host+"/team/one:v1", name.Insecure)
	rt, err := transport.NewWithContext(context.Background(), ref.Context().Registry, basic(alice), http.DefaultTransport, []string{ref.Scope(transport.PullScope)})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Get(a.hs.URL + "/v2/team/two/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ggcr with a team/one token on team/two: %d", resp.StatusCode)
	}

	// Bob may not pull team/two at all: 403 naming him, whatever token
	// he asks for.
	for _, tok := range []string{a.registryToken(bob, "repository:team/one:pull"), a.registryToken(bob, "repository:team/two:pull")} {
		code, body, _ := a.call("GET", "/v2/team/two/tags/list", tok, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "DENIED") || !strings.Contains(body, "bob may not pull team/two") {
			t.Fatalf("bob on team/two: %d %s", code, body)
		}
	}
	code, body, _ := a.call("POST", mount, a.registryToken(bob, "repository:team/one:pull,push", "repository:team/two:pull"), nil)
	if code != http.StatusForbidden || !strings.Contains(body, "bob may not pull team/two") {
		t.Fatalf("bob mounting from team/two: %d %s", code, body)
	}
}

// API tokens: their scope is fixed, so what it lacks is 403 naming the
// token (asking again cannot widen it); a registry token minted for an API
// token follows the challenge rule within the API token's scope.
func TestAPITokenScopeRefusals(t *testing.T) {
	a := newAuthServer(t, nil)
	alice := a.user("alice", nil, auth.Grant{Subject: "user:alice", Role: auth.RoleWriter, Repository: "team/**"})
	for _, r := range []string{"team/one", "team/two"} {
		if _, err := a.push(r, "v1", basic("admin:"+a.admin)); err != nil {
			t.Fatal(err)
		}
	}
	narrow := a.token(alice, auth.RoleReader, "1h", "team/one")
	wide := a.token(alice, auth.RoleReader, "1h", "team/**")
	blame := "API token " + narrow.ID + " is limited to reader on team/one and may not pull team/two (alice itself may"
	// Directly, as a bearer token and as a password.
	for _, cred := range []string{narrow.Secret, "token:" + narrow.Secret} {
		code, body, _ := a.call("GET", "/v2/team/two/tags/list", cred, nil)
		if code != http.StatusForbidden || !strings.Contains(body, blame) {
			t.Fatalf("narrow API token on team/two: %d %s", code, body)
		}
	}
	a.mustAudit("authorize", "denied", `"actor":"alice"`, "API token "+narrow.ID+" is limited")
	// Through the token flow: the minted token cannot be widened past the
	// API token's scope: 403 again, not a challenge the client would loop on.
	for _, scope := range []string{"repository:team/one:pull", "repository:team/two:pull"} {
		tok := a.registryToken("token:"+narrow.Secret, scope)
		code, body, _ := a.call("GET", "/v2/team/two/tags/list", tok, nil)
		if code != http.StatusForbidden || !strings.Contains(body, blame) {
			t.Fatalf("registry token of the narrow API token (%s) on team/two: %d %s", scope, code, body)
		}
	}
	// The wide API token's registry token for team/one is challenged on
	// team/two, and the wider registry token works.
	one := a.registryToken("token:"+wide.Secret, "repository:team/one:pull")
	a.wantChallenge("GET", "/v2/team/two/tags/list", one, "repository:team/two:pull")
	a.must("GET", "/v2/team/two/tags/list", a.registryToken("token:"+wide.Secret, "repository:team/two:pull"), nil, http.StatusOK)
	// Pushing is beyond the reader token, though alice may: 403 naming
	// the token; nothing is written.
	if _, err := a.push("team/one", "v2", basic("token:"+wide.Secret)); statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "API token "+wide.ID) {
		t.Fatalf("push with a reader API token: %v", err)
	}
	if a.digestOf("team/one", "v2") != "" {
		t.Fatal("team/one:v2 exists")
	}
	// The management API blames the token too.
	code, body, _ := a.call("GET", "/api/v1/policies/team/two", narrow.Secret, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "API token "+narrow.ID+" is limited to reader on team/one") {
		t.Fatalf("policy read with the narrow token: %d %s", code, body)
	}
	// A promoter's writer token may create tags, not move them: the
	// refusal names the token, and the tag stays.
	pat := a.user("pat", nil, auth.Grant{Subject: "user:pat", Role: auth.RolePromoter, Repository: "team/**"})
	wtok := a.token(pat, auth.RoleWriter, "1h", "team/**")
	before := a.digestOf("team/one", "v1")
	if _, err := a.push("team/one", "v1", basic("token:"+wtok.Secret)); statusOf(err) != http.StatusForbidden ||
		!strings.Contains(err.Error(), "API token "+wtok.ID+" is limited to writer on team/**") || !strings.Contains(err.Error(), "promoter") {
		t.Fatalf("tag move with a writer token of a promoter: %v", err)
	}
	if a.digestOf("team/one", "v1") != before {
		t.Fatal("the refused move moved the tag")
	}
	// A token cannot create a token beyond its own scope, even where its
	// owner could; the refusal says so.
	code, body, _ = a.call("POST", "/api/v1/tokens", wtok.Secret, auth.TokenRequest{Name: "x", Scopes: []auth.Scope{{Role: auth.RolePromoter, Repositories: []string{"team/**"}}}})
	if code != http.StatusForbidden || !strings.Contains(body, "API token "+wtok.ID+" is limited to writer on team/**") {
		t.Fatalf("token beyond the creating token: %d %s", code, body)
	}
	// whoami with a token shows the token's scope beside the owner's grants.
	var who auth.Whoami
	if err := json.Unmarshal([]byte(a.must("GET", "/api/v1/whoami", narrow.Secret, nil, http.StatusOK)), &who); err != nil {
		t.Fatal(err)
	}
	if who.Subject != "alice" || who.TokenID != narrow.ID || len(who.TokenScopes) != 1 || who.TokenScopes[0].Role != auth.RoleReader ||
		strings.Join(who.TokenScopes[0].Repositories, ",") != "team/one" || len(who.Grants) != 1 || who.Grants[0].Role != auth.RoleWriter {
		t.Fatalf("whoami with a token: %+v", who)
	}
	var pw auth.Whoami
	if err := json.Unmarshal([]byte(a.must("GET", "/api/v1/whoami", alice, nil, http.StatusOK)), &pw); err != nil || pw.TokenScopes != nil || pw.TokenID != "" {
		t.Fatalf("whoami with a password: %v %+v", err, pw)
	}
}

// podman search signs in with a token of no scope, then lists the catalog:
// the catalog challenges for registry:catalog:*, and the token endpoint
// grants it to whoever may list it.
func TestCatalogChallenge(t *testing.T) {
	a := newAuthServer(t, nil)
	reader := a.user("reader1", nil, auth.Grant{Subject: "user:reader1", Role: auth.RoleReader, Repository: "team/*"})
	if _, err := a.push("team/one", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	none := a.registryToken("admin:" + a.admin)
	a.wantChallenge("GET", "/v2/_catalog", none, "registry:catalog:*")
	cat := a.registryToken("admin:"+a.admin, "registry:catalog:*")
	if b := a.must("GET", "/v2/_catalog", cat, nil, http.StatusOK); !strings.Contains(b, "team/one") {
		t.Fatalf("catalog: %s", b)
	}
	// A catalog token lists names; it does not read repositories.
	a.wantChallenge("GET", "/v2/team/one/tags/list", cat, "repository:team/one:pull")
	// A reader of team/* may not list every repository: 403, whatever
	// token it holds, and the token endpoint does not grant the catalog.
	for _, tok := range []string{a.registryToken(reader), a.registryToken(reader, "registry:catalog:*")} {
		code, body, _ := a.call("GET", "/v2/_catalog", tok, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "reader1 may not list the repository catalog") {
			t.Fatalf("reader's catalog: %d %s", code, body)
		}
	}
}

// Anonymous requests to management endpoints that are not served here
// (their feature is off) get 401 like every other, not a 404 telling what
// is configured; signed-in callers learn it is not there.
func TestAnonymousUnconfiguredAPI(t *testing.T) {
	a := newAuthServer(t, nil)
	for _, p := range []string{"/api/v1/promotions", "/api/v1/environments", "/api/v1/whoami"} {
		method := "GET"
		if p == "/api/v1/promotions" {
			method = "POST"
		}
		if p == "/api/v1/whoami" {
			method = "DELETE" // served, but not with this method
		}
		code, body, h := a.call(method, p, "", nil)
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("anonymous %s %s: %d %s", method, p, code, body)
		}
		if code, body, _ := a.call(method, p, "admin:"+a.admin, nil); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Fatalf("admin %s %s: %d %s", method, p, code, body)
		}
	}
	// The vulnerability database is served without projects too (the
	// feeds' dependency firewall reads it): signed-in callers only.
	for _, p := range []string{"/api/v1/vulndb", "/api/v1/violations"} {
		a.must("GET", p, "", nil, http.StatusUnauthorized)
		a.must("GET", p, "admin:"+a.admin, nil, http.StatusOK)
	}
	// Public endpoints stay public.
	a.must("GET", "/api/v1/audit/key", "", nil, http.StatusOK)
	a.must("GET", "/api/v1/keys", "", nil, http.StatusOK)
}
