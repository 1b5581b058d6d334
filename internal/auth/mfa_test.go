package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/problem"
)

// auditLog keeps the events a Service records, with their auth field.
type auditLog struct {
	mu     sync.Mutex
	events []string // "action result auth"
}

func (a *auditLog) Record(ctx context.Context, e audit.Event) {
	id, _ := identity.From(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e.Action+" "+e.Result+" "+id.Method)
}

func (a *auditLog) has(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if e == s {
			return true
		}
	}
	return false
}

// mfaFixture: a fixture with the default policy (admin and promoter need
// a second factor), an audit log and the API mounted.
func mfaFixture(t *testing.T) (*fixture, *http.ServeMux, *auditLog) {
	log := &auditLog{}
	f := newFixture(t, func(o *Options) {
		o.MFARoles = []Role{RoleAdmin, RolePromoter}
		o.Auditor = log
		o.StepUpWindow = 5 * time.Minute
	})
	mux := http.NewServeMux()
	f.s.Register(mux)
	f.user("root", true, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	f.user("dev", true, nil, Grant{Subject: "user:dev", Role: RoleWriter, Repository: "team/**"})
	return f, mux, log
}

// call serves one API request with Basic credentials and an optional
// one-time code.
func call(mux *http.ServeMux, method, target, user, code, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Authorization", basic(user, testPassword))
	if code != "" {
		r.Header.Set(OTPHeader, code)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// problemType returns the problem kind's name of an answer.
func problemType(w *httptest.ResponseRecorder) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	return p.Type[strings.LastIndex(p.Type, "/")+1:]
}

// enrol runs the enrolment of user and returns its secret and recovery
// codes.
func (f *fixture) enrol(mux *http.ServeMux, user string) (string, []string) {
	f.t.Helper()
	w := call(mux, "POST", "/api/v1/mfa/totp", user, "", "")
	if w.Code != http.StatusCreated {
		f.t.Fatalf("start enrolment: %d %s", w.Code, w.Body)
	}
	var e TOTPEnrolment
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Secret == "" || !strings.HasPrefix(e.URL, "otpauth://totp/") {
		f.t.Fatalf("enrolment answer %s: %v", w.Body, err)
	}
	w = call(mux, "POST", "/api/v1/mfa/totp/confirm", user, "", `{"code":"`+f.code(e.Secret, 0)+`"}`)
	if w.Code != http.StatusOK {
		f.t.Fatalf("confirm enrolment: %d %s", w.Code, w.Body)
	}
	var rc RecoveryCodes
	if err := json.Unmarshal(w.Body.Bytes(), &rc); err != nil || len(rc.Codes) != recoveryCodes {
		f.t.Fatalf("recovery codes %s: %v", w.Body, err)
	}
	return e.Secret, rc.Codes
}

// code is the TOTP code of secret at the fixture's time plus off.
func (f *fixture) code(secret string, off time.Duration) string {
	f.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, f.now.Add(off), totpOpts)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func TestMFAPolicyBootstrapEnrolAndSignIn(t *testing.T) {
	f, mux, log := mfaFixture(t)
	// An admin without a factor may sign in, see itself and enrol, and
	// nothing else.
	if w := call(mux, "GET", "/api/v1/whoami", "root", "", ""); w.Code != http.StatusOK {
		t.Fatalf("whoami without a factor: %d %s", w.Code, w.Body)
	}
	w := call(mux, "GET", "/api/v1/users", "root", "", "")
	if w.Code != http.StatusForbidden || problemType(w) != "mfa-required" || !strings.Contains(w.Body.String(), "enrol") {
		t.Fatalf("admin without a factor listing users: %d %s, want 403 mfa-required", w.Code, w.Body)
	}
	if w := call(mux, "POST", "/api/v1/tokens", "root", "", `{"name":"x","scopes":[{"role":"admin","repositories":["**"]}]}`); w.Code != http.StatusForbidden || problemType(w) != "mfa-required" {
		t.Fatalf("admin without a factor creating a token: %d %s, want 403 mfa-required", w.Code, w.Body)
	}
	// A writer is not subject to the policy.
	if w := call(mux, "GET", "/api/v1/tokens", "dev", "", ""); w.Code != http.StatusOK {
		t.Fatalf("writer without a factor: %d %s", w.Code, w.Body)
	}
	secret, _ := f.enrol(mux, "root")
	if log.has("mfa.confirm ok password") || !log.has("mfa.confirm ok password+totp") {
		t.Fatalf("audit log %v: want mfa.confirm with auth password+totp", log.events)
	}
	// Enrolled: the password alone does not do, with a code it does.
	if w := call(mux, "GET", "/api/v1/users", "root", "", ""); w.Code != http.StatusForbidden || problemType(w) != "mfa-required" {
		t.Fatalf("enrolled admin without a code: %d %s", w.Code, w.Body)
	}
	f.now = f.now.Add(30 * time.Second)
	if w := call(mux, "GET", "/api/v1/users", "root", f.code(secret, 0), ""); w.Code != http.StatusOK {
		t.Fatalf("enrolled admin with a code: %d %s", w.Code, w.Body)
	}
	// The secret is never shown again.
	w = call(mux, "GET", "/api/v1/mfa", "root", "", "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), secret) || !strings.Contains(w.Body.String(), `"totp": true`) {
		t.Fatalf("GET /api/v1/mfa: %d %s", w.Code, w.Body)
	}
}

func TestTOTPRefusals(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	secret, _ := f.enrol(mux, "root")
	f.now = f.now.Add(time.Minute)
	ctx := context.Background()
	before, _ := f.st.AuthState(ctx)
	cases := []struct{ name, code string }{
		{"wrong", wrongCode(f.code(secret, 0))},
		{"expired", f.code(secret, -2*time.Minute)},
		{"malformed", "12345x"},
	}
	for _, c := range cases {
		w := call(mux, "POST", "/api/v1/grants", "root", c.code, `{"subject":"user:dev","role":"admin","repository":"**"}`)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("%s code: %d %s, want 401", c.name, w.Code, w.Body)
		}
	}
	good := f.code(secret, 0)
	if w := call(mux, "GET", "/api/v1/users", "root", good, ""); w.Code != http.StatusOK {
		t.Fatalf("good code: %d %s", w.Code, w.Body)
	}
	w := call(mux, "POST", "/api/v1/grants", "root", good, `{"subject":"user:dev","role":"admin","repository":"**"}`)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d %s, want 401", w.Code, w.Body)
	}
	after, _ := f.st.AuthState(ctx)
	if len(after.Grants) != len(before.Grants) {
		t.Fatalf("refused codes changed the grants: %v -> %v", before.Grants, after.Grants)
	}
}

// wrongCode returns a six-digit code other than c.
func wrongCode(c string) string {
	b := []byte(c)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestTOTPRateLimitedPerAccount(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	secret, _ := f.enrol(mux, "root")
	f.now = f.now.Add(time.Minute)
	for i := range 5 {
		if w := call(mux, "GET", "/api/v1/users", "root", wrongCode(f.code(secret, 0)), ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d %s", i, w.Code, w.Body)
		}
	}
	// Locked out: even the right code is refused, until the window ends.
	w := call(mux, "GET", "/api/v1/users", "root", f.code(secret, 0), "")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("right code after 5 wrong: %d %s, want 429", w.Code, w.Body)
	}
	f.now = f.now.Add(2 * time.Minute)
	if w := call(mux, "GET", "/api/v1/users", "root", f.code(secret, 0), ""); w.Code != http.StatusOK {
		t.Fatalf("right code after the window: %d %s", w.Code, w.Body)
	}
}

func TestRecoveryCodeWorksOnce(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	_, codes := f.enrol(mux, "root")
	f.now = f.now.Add(time.Minute)
	if w := call(mux, "GET", "/api/v1/users", "root", strings.ToUpper(codes[3]), ""); w.Code != http.StatusOK {
		t.Fatalf("recovery code: %d %s", w.Code, w.Body)
	}
	if w := call(mux, "GET", "/api/v1/users", "root", codes[3], ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("recovery code used twice: %d %s, want 401", w.Code, w.Body)
	}
	fs, err := f.st.GetFactors(context.Background(), "root")
	if err != nil || len(fs.RecoveryHashes) != recoveryCodes-1 {
		t.Fatalf("recovery codes left: %v %v, want %d", fs.RecoveryHashes, err, recoveryCodes-1)
	}
	for _, h := range fs.RecoveryHashes {
		for _, c := range codes {
			if strings.Contains(h, strings.ReplaceAll(c, "-", "")) {
				t.Fatal("a recovery code is stored in the clear")
			}
		}
	}
}

func TestStepUpForGrantChange(t *testing.T) {
	f, mux, log := mfaFixture(t)
	secret, _ := f.enrol(mux, "root")
	// A browser session signed in with a code.
	f.now = f.now.Add(time.Minute)
	r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(`{}`))
	r.Header.Set("Authorization", basic("root", testPassword))
	r.Header.Set(OTPHeader, f.code(secret, 0))
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("sign-in with a code: %d %s", w.Code, w.Body)
	}
	var se CreatedSession
	_ = json.Unmarshal(w.Body.Bytes(), &se)
	grant := func() *httptest.ResponseRecorder {
		r := withSession(httptest.NewRequest("POST", "/api/v1/grants", strings.NewReader(`{"subject":"user:dev","role":"reader","repository":"x/**"}`)), se.Secret)
		r.Header.Set(CSRFHeader, se.CSRF)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	// Ten minutes later the session still works, but a grant change
	// needs a fresh factor.
	f.now = f.now.Add(10 * time.Minute)
	before, _ := f.st.AuthState(context.Background())
	if w := grant(); w.Code != http.StatusForbidden || problemType(w) != "step-up-required" {
		t.Fatalf("grant change 10 minutes after the factor: %d %s, want 403 step-up-required", w.Code, w.Body)
	}
	if after, _ := f.st.AuthState(context.Background()); len(after.Grants) != len(before.Grants) {
		t.Fatal("a refused grant change changed the grants")
	}
	r = withSession(httptest.NewRequest("POST", "/api/v1/sessions/current/step-up", strings.NewReader(`{"code":"`+f.code(secret, 0)+`"}`)), se.Secret)
	r.Header.Set(CSRFHeader, se.CSRF)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("step-up: %d %s", w.Code, w.Body)
	}
	if w := grant(); w.Code != http.StatusCreated {
		t.Fatalf("grant change after step-up: %d %s", w.Code, w.Body)
	}
	if !log.has("grant.create ok session+totp") {
		t.Fatalf("audit log %v: want grant.create with auth session+totp", log.events)
	}
}

func TestTokensUnaffectedByMFA(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	f.enrol(mux, "root")
	secret, _ := f.token("root", time.Hour, scope(RoleAdmin, "**"))
	r := httptest.NewRequest("POST", "/api/v1/grants", strings.NewReader(`{"subject":"user:dev","role":"reader","repository":"x/**"}`))
	r.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("grant change with an admin API token: %d %s", w.Code, w.Body)
	}
}

func TestSessionSignInNeedsCodeOnceEnrolled(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	f.enrol(mux, "root")
	r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(`{}`))
	r.Header.Set("Authorization", basic("root", testPassword))
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || problemType(w) != "mfa-required" {
		t.Fatalf("sign-in without a code: %d %s, want 403 mfa-required", w.Code, w.Body)
	}
	n, _ := f.st.PurgeSessions(context.Background(), f.now.Add(time.Hour), f.now.Add(time.Hour))
	if n != 0 {
		t.Fatalf("a refused sign-in stored %d sessions", n)
	}
}

func TestMFAProblemKinds(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{(&Principal{Subject: "x", mfaMissing: "y"}).mfaDenial(), "mfa-required"},
		{(&Service{opts: Options{StepUpWindow: time.Minute}, now: time.Now}).stepUp(&Principal{Method: "password", mfaApplies: true}, "z"), "step-up-required"},
	} {
		k, ok := problem.From(c.err)
		w := httptest.NewRecorder()
		problem.Write(w, k, "")
		if !ok || w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "/"+c.want+`"`) {
			t.Fatalf("%v: answered %d %s, want 403 %s", c.err, w.Code, w.Body, c.want)
		}
	}
}

func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", " 123 456 ", "abcd-efgh-ijkl-mnop", "ABCD EFGH IJKL MNOP", "", "12345", "1234567", "abcd-efgh-ijkl-mno1", "ü", strings.Repeat("1", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, norm, err := parseCode(s)
		if err != nil {
			return
		}
		switch kind {
		case codeTOTP:
			if len(norm) != 6 {
				t.Fatalf("TOTP code %q from %q", norm, s)
			}
		case codeRecovery:
			if len(norm) != 16 || strings.ToLower(norm) != norm {
				t.Fatalf("recovery code %q from %q", norm, s)
			}
		default:
			t.Fatalf("kind %d", kind)
		}
		// Normalising is idempotent.
		if k2, n2, err := parseCode(norm); err != nil || k2 != kind || n2 != norm {
			t.Fatalf("parseCode(%q) = %v %q %v, want %v %q", norm, k2, n2, err, kind, norm)
		}
	})
}

func TestSignInTokenNeedsStepUp(t *testing.T) {
	f, mux, log := mfaFixture(t)
	secret, _ := f.enrol(mux, "root")
	f.now = f.now.Add(time.Minute)
	// custody login: a sign-in token created with a code.
	w := call(mux, "POST", "/api/v1/tokens", "root", f.code(secret, 0), `{"name":"custody login","signIn":true,"expiresIn":"12h","scopes":[{"role":"admin","repositories":["**"]}]}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("creating a sign-in token: %d %s", w.Code, w.Body)
	}
	var tok CreatedToken
	_ = json.Unmarshal(w.Body.Bytes(), &tok)
	grant := func(code string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/v1/grants", strings.NewReader(`{"subject":"user:dev","role":"reader","repository":"x/**"}`))
		r.Header.Set("Authorization", "Bearer "+tok.Secret)
		if code != "" {
			r.Header.Set(OTPHeader, code)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	// Its first minutes count as a step-up: custody login presented a
	// code when it made the token.
	f.now = f.now.Add(4 * time.Minute)
	if w := grantTo(mux, tok.Secret, "y/**"); w.Code != http.StatusCreated {
		t.Fatalf("grant change with a sign-in token just made: %d %s", w.Code, w.Body)
	}
	f.now = f.now.Add(time.Hour)
	// It signs in without a code...
	r := httptest.NewRequest("GET", "/api/v1/users", nil)
	r.Header.Set("Authorization", "Bearer "+tok.Secret)
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("sign-in token without a code: %d %s", w.Code, w.Body)
	}
	// ...but a grant change needs a fresh one.
	if w := grant(""); w.Code != http.StatusForbidden || problemType(w) != "step-up-required" {
		t.Fatalf("grant change with a sign-in token, no code: %d %s, want 403 step-up-required", w.Code, w.Body)
	}
	if w := grant(f.code(secret, 0)); w.Code != http.StatusCreated {
		t.Fatalf("grant change with a sign-in token and a code: %d %s", w.Code, w.Body)
	}
	if !log.has("grant.create ok token+totp") {
		t.Fatalf("audit log %v: want grant.create with auth token+totp", log.events)
	}
}

// grantTo gives dev the reader role on pattern with a bearer token.
func grantTo(mux *http.ServeMux, token, pattern string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/api/v1/grants", strings.NewReader(`{"subject":"user:dev","role":"reader","repository":"`+pattern+`"}`))
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// TestSignInTokenNeedsCode: a sign-in token's first minutes count as a
// step-up, so only a request with a one-time code makes one; without, it
// is refused and no token is stored.
func TestSignInTokenNeedsCode(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	f.user("plain", true, nil, Grant{Subject: "user:plain", Role: RoleWriter, Repository: "team/**"})
	before, _ := f.st.AuthState(context.Background())
	w := call(mux, "POST", "/api/v1/tokens", "plain", "", `{"name":"custody login","signIn":true,"scopes":[{"role":"writer","repositories":["team/**"]}]}`)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "one-time code") {
		t.Fatalf("sign-in token without a code: %d %s, want 400", w.Code, w.Body)
	}
	if after, _ := f.st.AuthState(context.Background()); len(after.Tokens) != len(before.Tokens) {
		t.Fatalf("a refused sign-in token was stored: %d tokens, had %d", len(after.Tokens), len(before.Tokens))
	}
}

func TestNoStepUpWithoutFactorOrPolicy(t *testing.T) {
	f := newFixture(t, nil) // no roles require a factor
	mux := http.NewServeMux()
	f.s.Register(mux)
	f.user("root", true, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	if w := call(mux, "POST", "/api/v1/grants", "root", "", `{"subject":"user:dev","role":"reader","repository":"x/**"}`); w.Code != http.StatusCreated {
		t.Fatalf("grant change by an admin without a factor, no policy: %d %s", w.Code, w.Body)
	}
}

func TestGovernanceBypassNeedsStepUp(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	f.user("gb", true, nil, Grant{Subject: "user:gb", Role: RoleGovernanceBypass, Repository: "**"})
	secret, _ := f.enrol(mux, "gb")
	f.now = f.now.Add(time.Minute)
	bypass := func(code string) bool {
		r := request("GET", "/", basic("gb", testPassword))
		if code != "" {
			r.Header.Set(OTPHeader, code)
		}
		p, err := f.s.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		ctx := WithPrincipal(r.Context(), p)
		if code != "" {
			f.now = f.now.Add(10 * time.Minute) // the factor grows stale
			stale := f.s.CanBypassGovernance(ctx)
			f.now = f.now.Add(-10 * time.Minute)
			if stale {
				t.Fatal("a second factor ten minutes old bypassed governance")
			}
		}
		return f.s.CanBypassGovernance(ctx)
	}
	if bypass("") {
		t.Fatal("the governance-bypass role bypassed governance without a second factor")
	}
	if !bypass(f.code(secret, 0)) {
		t.Fatal("the governance-bypass role with a fresh code did not bypass governance")
	}
}

// TestSecurityKeysNeedWebURL: without the external URL the server offers
// no security keys (webauthn-unavailable) and stores nothing; with it, an
// account that has a factor adds a key only with a fresh one.
func TestSecurityKeysNeedWebURL(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	for _, path := range []string{"/api/v1/mfa/webauthn", "/api/v1/mfa/webauthn/challenge"} {
		body := `{"name":"k"}`
		if strings.HasSuffix(path, "challenge") {
			body = `{}`
		}
		if w := call(mux, "POST", path, "root", "", body); w.Code != http.StatusConflict || problemType(w) != "webauthn-unavailable" {
			t.Fatalf("POST %s without web.url: %d %s, want 409 webauthn-unavailable", path, w.Code, w.Body)
		}
	}
	if keys, _ := f.st.WebAuthnKeys(context.Background(), "root"); len(keys) != 0 {
		t.Fatalf("keys stored: %+v", keys)
	}

	log := &auditLog{}
	g := newFixture(t, func(o *Options) {
		o.MFARoles, o.Auditor, o.StepUpWindow, o.WebURL = []Role{RoleAdmin}, log, 5*time.Minute, "https://registry.example"
	})
	mux = http.NewServeMux()
	g.s.Register(mux)
	g.user("root", true, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	// No factor yet: a key registration starts (the way to satisfy the
	// policy) with creation options for this relying party.
	w := call(mux, "POST", "/api/v1/mfa/webauthn", "root", "", `{"name":"YubiKey"}`)
	var start struct {
		Ceremony  string `json:"ceremony"`
		PublicKey struct {
			RP struct{ ID string } `json:"rp"`
		} `json:"publicKey"`
	}
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &start) != nil || start.Ceremony == "" || start.PublicKey.RP.ID != "registry.example" {
		t.Fatalf("starting a registration: %d %s", w.Code, w.Body)
	}
	if w := call(mux, "POST", "/api/v1/mfa/webauthn", "root", "", `{"name":""}`); w.Code != http.StatusBadRequest {
		t.Fatalf("a key without a name: %d %s, want 400", w.Code, w.Body)
	}
	// With a factor, adding a key needs a fresh code.
	secret, _ := g.enrol(mux, "root")
	g.now = g.now.Add(time.Hour)
	if w := call(mux, "POST", "/api/v1/mfa/webauthn", "root", "", `{"name":"second"}`); w.Code != http.StatusForbidden || problemType(w) != "step-up-required" {
		t.Fatalf("adding a key without a fresh factor: %d %s, want 403 step-up-required", w.Code, w.Body)
	}
	if w := call(mux, "POST", "/api/v1/mfa/webauthn", "root", g.code(secret, 0), `{"name":"second"}`); w.Code != http.StatusCreated {
		t.Fatalf("adding a key with a fresh code: %d %s", w.Code, w.Body)
	}
	// An answer to a ceremony this server did not start is refused.
	if w := call(mux, "POST", "/api/v1/mfa/webauthn/confirm", "root", g.code(secret, 30*time.Second), `{"ceremony":"forged","credential":{}}`); w.Code != http.StatusBadRequest {
		t.Fatalf("confirming a forged ceremony: %d %s, want 400", w.Code, w.Body)
	}
}

// TestTokenCreationNeedsStepUp: an API token is a machine credential that
// never steps up, and a sign-in token's first minutes count as a step-up,
// so minting either is itself a dangerous action: a session (or a sign-in
// token) whose factor grew stale must not turn into a credential that
// skips step-up. Refusals store no token.
func TestTokenCreationNeedsStepUp(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	secret, _ := f.enrol(mux, "root")
	f.now = f.now.Add(time.Minute)
	r := httptest.NewRequest("POST", "/api/v1/sessions", strings.NewReader(`{}`))
	r.Header.Set("Authorization", basic("root", testPassword))
	r.Header.Set(OTPHeader, f.code(secret, 0))
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("sign-in with a code: %d %s", w.Code, w.Body)
	}
	var se CreatedSession
	_ = json.Unmarshal(w.Body.Bytes(), &se)
	bySession := func(body string) *httptest.ResponseRecorder {
		r := withSession(httptest.NewRequest("POST", "/api/v1/tokens", strings.NewReader(body)), se.Secret)
		r.Header.Set(CSRFHeader, se.CSRF)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	const apiToken = `{"name":"ci","scopes":[{"role":"admin","repositories":["**"]}]}`
	const signIn = `{"name":"custody login","signIn":true,"expiresIn":"12h","scopes":[{"role":"admin","repositories":["**"]}]}`
	// A sign-in token made now, with a code, for the last case.
	f.now = f.now.Add(30 * time.Second)
	w = call(mux, "POST", "/api/v1/tokens", "root", f.code(secret, 0), signIn)
	if w.Code != http.StatusCreated {
		t.Fatalf("creating a sign-in token with a code: %d %s", w.Code, w.Body)
	}
	var login CreatedToken
	_ = json.Unmarshal(w.Body.Bytes(), &login)

	f.now = f.now.Add(10 * time.Minute) // every factor grows stale
	before, _ := f.st.AuthState(context.Background())
	for name, w := range map[string]*httptest.ResponseRecorder{
		"API token by a stale session":     bySession(apiToken),
		"sign-in token by a stale session": bySession(signIn),
		"API token by a stale sign-in token": func() *httptest.ResponseRecorder {
			r := httptest.NewRequest("POST", "/api/v1/tokens", strings.NewReader(apiToken))
			r.Header.Set("Authorization", "Bearer "+login.Secret)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			return w
		}(),
	} {
		if w.Code != http.StatusForbidden || problemType(w) != "step-up-required" {
			t.Errorf("%s: %d %s, want 403 step-up-required", name, w.Code, w.Body)
		}
	}
	if after, _ := f.st.AuthState(context.Background()); len(after.Tokens) != len(before.Tokens) {
		t.Fatalf("refused token creations stored tokens: %d, had %d", len(after.Tokens), len(before.Tokens))
	}
	// A fresh code makes it again.
	if w := call(mux, "POST", "/api/v1/tokens", "root", f.code(secret, 0), apiToken); w.Code != http.StatusCreated {
		t.Fatalf("API token with a fresh code: %d %s", w.Code, w.Body)
	}
}

// TestPasswordAloneCannotChangePassword: once an account enrolled, its
// password alone never suffices; changing the password with it (directly,
// or with a token the Docker token flow issued for it) would let whoever
// learned the password shut its owner out. Refusals change nothing.
func TestPasswordAloneCannotChangePassword(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	secret, _ := f.enrol(mux, "dev")
	f.now = f.now.Add(time.Minute)
	before, _ := f.st.AuthState(context.Background())
	const body = `{"password":"taken-over-by-mallory"}`
	// The Docker token flow with the password alone issues a token that
	// carries the policy's stop: it may do nothing as dev either.
	w := call(mux, "GET", TokenPath+"?scope=repository:team/app:pull", "dev", "", "")
	var tr TokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); w.Code != http.StatusOK || err != nil {
		t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	bearer := func(method, target, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+tr.Token)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct{ method, target, body string }{
		{"PUT", "/api/v1/users/dev", body},
		{"GET", "/api/v1/tokens", ""},
		{"POST", "/api/v1/tokens", `{"name":"x","scopes":[{"role":"writer","repositories":["team/**"]}]}`},
	} {
		if w := bearer(c.method, c.target, c.body); w.Code != http.StatusForbidden || problemType(w) != "mfa-required" {
			t.Errorf("%s %s with the password-only JWT: %d %s, want 403 mfa-required", c.method, c.target, w.Code, w.Body)
		}
	}
	if after, _ := f.st.AuthState(context.Background()); !reflect.DeepEqual(after.Users, before.Users) {
		t.Fatal("a refused password change changed the account")
	}
	// With the code it works.
	if w := call(mux, "PUT", "/api/v1/users/dev", "dev", f.code(secret, 0), body); w.Code != http.StatusOK {
		t.Fatalf("password change with a code: %d %s", w.Code, w.Body)
	}
}

// TestPolicyStopsSignedInOnlyEndpoints: endpoints open to any signed-in
// caller (Require with no permission: environments, projects, the
// vulnerability database) are not open to a password the MFA policy
// stops; it may only see whoami and enrol.
func TestPolicyStopsSignedInOnlyEndpoints(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	secret, _ := f.enrol(mux, "dev")
	f.now = f.now.Add(time.Minute)
	mux.HandleFunc("GET /api/v1/projects", func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := f.s.Require(w, r, "projects.read", "", 0); ok {
			w.WriteHeader(http.StatusOK)
		}
	})
	if w := call(mux, "GET", "/api/v1/projects", "dev", "", ""); w.Code != http.StatusForbidden || problemType(w) != "mfa-required" {
		t.Errorf("signed-in-only endpoint with the password alone: %d %s, want 403 mfa-required", w.Code, w.Body)
	}
	if w := call(mux, "GET", "/api/v1/whoami", "dev", "", ""); w.Code != http.StatusOK {
		t.Errorf("whoami with the password alone: %d %s", w.Code, w.Body)
	}
	if w := call(mux, "GET", "/api/v1/projects", "dev", f.code(secret, 0), ""); w.Code != http.StatusOK {
		t.Errorf("signed-in-only endpoint with a code: %d %s", w.Code, w.Body)
	}
}

// TestTOTPLockoutHoldsUnderConcurrency: wrong codes sent all at once
// must not all pass the lockout check before any of them counts; at most
// auth.mfa.otpFailures codes are ever judged per window (a six-digit
// code falls to enough parallel guesses otherwise).
func TestTOTPLockoutHoldsUnderConcurrency(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	secret, _ := f.enrol(mux, "root")
	f.now = f.now.Add(time.Minute)
	// Warm the password check so the guesses race on the code alone.
	if w := call(mux, "GET", "/api/v1/whoami", "root", "", ""); w.Code != http.StatusOK {
		t.Fatalf("whoami: %d %s", w.Code, w.Body)
	}
	wrong := wrongCode(f.code(secret, 0))
	const guesses = 64
	codes := make(chan int, guesses)
	var wg sync.WaitGroup
	for range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- call(mux, "GET", "/api/v1/users", "root", wrong, "").Code
		}()
	}
	wg.Wait()
	close(codes)
	judged := 0
	for c := range codes {
		switch c {
		case http.StatusUnauthorized:
			judged++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("a wrong code answered %d", c)
		}
	}
	if judged > 5 {
		t.Fatalf("%d concurrent wrong codes were judged, want at most 5 (auth.mfa.otpFailures)", judged)
	}
}
