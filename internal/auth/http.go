package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
)

// The account API, under /api/v1/ (JSON; errors are RFC 9457 problems):
//
//	GET    /api/v1/whoami                    the caller, its groups and grants
//	GET    /api/v1/tokens[?all=true]         the caller's API tokens (all: admins)
//	POST   /api/v1/tokens                    create one; the secret is in the answer only
//	DELETE /api/v1/tokens/{id}               revoke
//	GET    /api/v1/users                     (admin)
//	POST   /api/v1/users                     (admin) {"name", "password", "groups"}
//	PUT    /api/v1/users/{name}              (admin; a user may change its own password)
//	DELETE /api/v1/users/{name}              (admin)
//	POST   /api/v1/users/{name}/disable      (admin) sign-ins refused, sessions end
//	POST   /api/v1/users/{name}/enable       (admin)
//	GET    /api/v1/grants                    (admin)
//	POST   /api/v1/grants                    (admin) {"subject", "role", "repository"}
//	DELETE /api/v1/grants?subject=&role=&repository=   (admin)
//	GET|POST /auth/token                     the Docker token flow's endpoint
//	/api/v1/sessions...                      browser sessions (session.go)

// Register mounts the account API and the token endpoint on mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+TokenPath, s.ServeToken)
	mux.HandleFunc("POST "+TokenPath, s.ServeToken)
	mux.HandleFunc("GET /api/v1/whoami", s.whoami)
	mux.HandleFunc("GET /api/v1/tokens", s.listTokens)
	mux.HandleFunc("POST /api/v1/tokens", s.createToken)
	mux.HandleFunc("DELETE /api/v1/tokens/{id}", s.revokeToken)
	mux.HandleFunc("GET /api/v1/users", s.listUsers)
	mux.HandleFunc("POST /api/v1/users", s.createUser)
	mux.HandleFunc("PUT /api/v1/users/{name}", s.updateUser)
	mux.HandleFunc("DELETE /api/v1/users/{name}", s.deleteUser)
	mux.HandleFunc("POST /api/v1/users/{name}/disable", s.disableUser)
	mux.HandleFunc("POST /api/v1/users/{name}/enable", s.disableUser)
	mux.HandleFunc("GET /api/v1/grants", s.listGrants)
	mux.HandleFunc("POST /api/v1/grants", s.createGrant)
	mux.HandleFunc("DELETE /api/v1/grants", s.deleteGrant)
	mux.HandleFunc("POST /api/v1/sessions", s.createSession)
	mux.HandleFunc("DELETE /api/v1/sessions/current", s.deleteSession)
	mux.HandleFunc("GET /api/v1/sessions/oidc", s.oidcIssuers)
	mux.HandleFunc("GET /api/v1/sessions/oidc/{id}", s.oidcStart)
	mux.HandleFunc("POST /api/v1/sessions/current/step-up", s.stepUpSession)
	mux.HandleFunc("GET /api/v1/mfa", s.getFactors)
	mux.HandleFunc("POST /api/v1/mfa/totp", s.startTOTP)
	mux.HandleFunc("POST /api/v1/mfa/totp/confirm", s.confirmTOTP)
	mux.HandleFunc("DELETE /api/v1/mfa", s.deleteFactors)
	mux.HandleFunc("POST /api/v1/mfa/webauthn", s.startKey)
	mux.HandleFunc("POST /api/v1/mfa/webauthn/confirm", s.confirmKey)
	mux.HandleFunc("POST /api/v1/mfa/webauthn/challenge", s.keyChallenge)
	mux.HandleFunc("DELETE /api/v1/mfa/webauthn/{id}", s.deleteKey)
}

// Require authenticates r and checks perm on repo ("" for global
// permissions); perm 0 asks only for a signed-in caller. On refusal it answers the problem (401, 403 or 429),
// audits it as action, and returns false.
func (s *Service) Require(w http.ResponseWriter, r *http.Request, action, repo string, perm Perm) (*http.Request, *Principal, bool) {
	p, err := s.Authenticate(r)
	if err != nil {
		s.refuse(w, r, action, repo, err)
		return r, nil, false
	}
	r = r.WithContext(WithPrincipal(identity.With(r.Context(), identityOf(p)), p))
	if p.Anonymous() && (perm == 0 || !p.Can(repo, perm)) {
		err := fmt.Errorf("%w: sign in first", registry.ErrUnauthenticated)
		s.refuse(w, r, action, repo, err)
		return r, nil, false
	}
	if perm == 0 { // any signed-in caller the MFA policy lets act
		if p.mfaMissing != "" {
			s.refuse(w, r, action, repo, p.mfaDenial())
			return r, nil, false
		}
		return r, p, true
	}
	if sf := p.check(repo, perm); sf != allowed {
		what := repo
		if repo == "" || perm.Global() {
			what = "this registry"
		}
		s.refuse(w, r, action, repo, p.denial(sf, fmt.Sprintf("use the %s permission on %s", perm, what)))
		return r, nil, false
	}
	return r, p, true
}

// refuse answers and audits a refused API request. An error that is no
// refusal (reading the accounts failed) is the server's: 500, logged.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, action, repo string, err error) {
	k, refused := problem.From(err)
	if !refused {
		s.opts.Auditor.Record(r.Context(), audit.Event{Action: action, Repo: repo, Result: "error", Reason: err.Error(), Request: r})
		problem.Fail(w, r, s.opts.Log, action+": authentication failed", err)
		return
	}
	s.opts.Auditor.Record(r.Context(), audit.Event{Action: action, Repo: repo, Result: "denied", Reason: err.Error(), Request: r})
	detail := err.Error()
	var ae *authError
	switch k {
	case problem.TooManyRequests:
		if errors.As(err, &ae) {
			w.Header().Set("Retry-After", fmt.Sprint(int(ae.limited.Seconds())+1))
		}
	case problem.Unauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="`+s.opts.Service+`"`)
		detail += " (custody login, or an API token in CUSTODY_TOKEN)"
	}
	problem.Write(w, k, detail)
}

func (s *Service) invalid(w http.ResponseWriter, r *http.Request, action, repo, detail string) {
	s.opts.Auditor.Record(r.Context(), audit.Event{Action: action, Repo: repo, Result: "invalid", Reason: detail, Request: r})
	problem.Write(w, problem.Invalid, detail)
}

func (s *Service) ok(r *http.Request, action, repo, reason string) {
	s.opts.Auditor.Record(r.Context(), audit.Event{Action: action, Repo: repo, Result: "ok", Reason: reason, Request: r})
}

func decode(r *http.Request, w http.ResponseWriter, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	return nil
}

// Whoami is the answer of GET /api/v1/whoami. The caller may do what its
// grants allow, narrowed by TokenScopes when it signed in with an API token
// and by Access when it presented a token of the Docker token flow.
type Whoami struct {
	Subject string   `json:"subject"`
	Method  string   `json:"method"`
	Groups  []string `json:"groups"`
	// Grants are the subject's own grants (its groups', authenticated's
	// and anonymous' included).
	Grants  []Scope `json:"grants"`
	TokenID string  `json:"tokenId,omitempty"`
	// TokenScopes is the API token's scope, which limits Grants.
	TokenScopes []Scope `json:"tokenScopes,omitempty"`
	// Access is what the Docker token flow's token carries.
	Access []Access `json:"access,omitempty"`
	// Can says which global permissions the caller holds (grants and
	// token scope taken together).
	Can Capabilities `json:"can"`
	// Session describes the browser session the request came with.
	Session *SessionInfo `json:"session,omitempty"`
}

func (s *Service) whoami(w http.ResponseWriter, r *http.Request) {
	p, err := s.Authenticate(r)
	if err != nil {
		s.refuse(w, r, "whoami", "", err)
		return
	}
	if p.Anonymous() {
		s.refuse(w, r, "whoami", "", fmt.Errorf("%w: not signed in", registry.ErrUnauthenticated))
		return
	}
	who := Whoami{Subject: p.Subject, Method: p.Method, Groups: nonNilStrings(p.Groups), Grants: nonNilScopes(p.Scopes()), TokenID: p.TokenID, TokenScopes: p.TokenScopes()}
	if p.jwt {
		who.Access = nonNilAccess(p.access)
	}
	who.Can = Capabilities{Audit: p.Can("", PermAudit), Admin: p.Can("", PermAdmin)}
	who.Session = s.sessionInfo(p)
	problem.JSON(w, http.StatusOK, who)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilAccess(a []Access) []Access {
	if a == nil {
		return []Access{}
	}
	return a
}

func nonNilScopes(s []Scope) []Scope {
	if s == nil {
		return []Scope{}
	}
	return s
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name   string  `json:"name"`
	Scopes []Scope `json:"scopes"`
	// ExpiresIn is a Go duration ("720h"); default 30 days, at most a year.
	ExpiresIn string `json:"expiresIn,omitempty"`
	// SignIn makes a sign-in token (custody login): created with a
	// one-time code, it stands for the password and that code; dangerous
	// actions with it need a fresh code once auth.mfa.stepUp has passed
	// since it was made.
	SignIn bool `json:"signIn,omitempty"`
}

// CreatedToken is the answer of POST /api/v1/tokens: the only time the
// secret is shown.
type CreatedToken struct {
	Token
	Secret string `json:"secret"`
}

// maxTokenLife caps API token lifetimes.
const maxTokenLife = 366 * 24 * time.Hour

func (s *Service) localUser(w http.ResponseWriter, r *http.Request, action string) (*http.Request, *Principal, bool) {
	p, err := s.Authenticate(r)
	if err != nil {
		s.refuse(w, r, action, "", err)
		return r, nil, false
	}
	r = r.WithContext(WithPrincipal(identity.With(r.Context(), identityOf(p)), p))
	if p.Anonymous() {
		s.refuse(w, r, action, "", fmt.Errorf("%w: sign in first", registry.ErrUnauthenticated))
		return r, nil, false
	}
	if strings.HasSuffix(p.Method, "oidc") {
		s.refuse(w, r, action, "", fmt.Errorf("%w: OIDC identities cannot hold API tokens; use the OIDC token itself", registry.ErrDenied))
		return r, nil, false
	}
	if p.mfaMissing != "" {
		// A token would be a way around the second factor.
		s.refuse(w, r, action, "", p.mfaDenial())
		return r, nil, false
	}
	return r, p, true
}

func (s *Service) createToken(w http.ResponseWriter, r *http.Request) {
	r, p, ok := s.localUser(w, r, "token.create")
	if !ok {
		return
	}
	var req TokenRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, "token.create", "", err.Error())
		return
	}
	if req.Name == "" || len(req.Name) > 100 {
		s.invalid(w, r, "token.create", "", "a token needs a name of at most 100 characters (what it is for)")
		return
	}
	if len(req.Scopes) == 0 || len(req.Scopes) > 32 {
		s.invalid(w, r, "token.create", "", "a token needs between 1 and 32 scopes (role and repository patterns)")
		return
	}
	// An API token never steps up and a sign-in token's first minutes
	// count as a step-up: minting either from a caller whose factor grew
	// stale would be a way around step-up, so it is a dangerous action.
	if !s.RequireStepUp(w, r, "token.create", "", "creating an API token") {
		return
	}
	if req.SignIn && p.Factor == "" {
		// Its first minutes count as a step-up: only a code makes one.
		s.invalid(w, r, "token.create", "", "a sign-in token is created with a one-time code ("+OTPHeader+")")
		return
	}
	life := 30 * 24 * time.Hour
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 || d > maxTokenLife {
			s.invalid(w, r, "token.create", "", fmt.Sprintf("expiresIn %q must be a positive duration of at most %s", req.ExpiresIn, maxTokenLife))
			return
		}
		life = d
	}
	for _, sc := range req.Scopes {
		if _, err := ParseRole(string(sc.Role)); err != nil {
			s.invalid(w, r, "token.create", "", err.Error())
			return
		}
		if len(sc.Repositories) == 0 {
			s.invalid(w, r, "token.create", "", "every scope needs repository patterns")
			return
		}
		for _, rl := range rules(sc) {
			if err := (Grant{Subject: "user:x", Role: sc.Role, Repository: rl.pattern}).Validate(); err != nil {
				s.invalid(w, r, "token.create", "", err.Error())
				return
			}
			// A token never holds more than its owner: refuse scopes beyond
			// the owner's rights (and every use intersects them again).
			if sf := p.check(rl.pattern, rl.perm); sf != allowed {
				s.refuse(w, r, "token.create", rl.pattern, p.denial(sf, fmt.Sprintf("give a token the %s role on %s (a token never holds more than what creates it)", sc.Role, rl.pattern)))
				return
			}
		}
	}
	secret, id := newSecret()
	sum := sha256.Sum256([]byte(secret))
	// The times as the store keeps them, so the answer and the audit entry
	// state exactly what is stored.
	now, err := meta.Instant(s.now())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the token failed", err)
		return
	}
	expires, err := meta.Instant(now.Add(life))
	if err != nil {
		s.invalid(w, r, "token.create", "", fmt.Sprintf("expiresIn %q: %v", req.ExpiresIn, err))
		return
	}
	t := Token{ID: id, Hash: hex.EncodeToString(sum[:]), Owner: p.Subject, Name: req.Name, Scopes: req.Scopes, Created: now, Expires: expires, SignIn: req.SignIn}
	if err := s.opts.Store.PutToken(r.Context(), t); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the token failed", err)
		return
	}
	s.ok(r, "token.create", "", fmt.Sprintf("token %s (%s) for %s until %s", id, req.Name, p.Subject, t.Expires.Format(time.RFC3339Nano)))
	problem.JSON(w, http.StatusCreated, CreatedToken{Token: t, Secret: secret})
}

func (s *Service) listTokens(w http.ResponseWriter, r *http.Request) {
	r, p, ok := s.localUser(w, r, "token.list")
	if !ok {
		return
	}
	all := r.URL.Query().Get("all") == "true"
	if all && !p.Can("", PermAdmin) {
		s.refuse(w, r, "token.list", "", fmt.Errorf("%w: listing every user's tokens needs the admin role", registry.ErrDenied))
		return
	}
	st, err := s.load(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading tokens failed", err)
		return
	}
	out := []Token{}
	for _, t := range st.tokenIDs {
		if all || t.Owner == p.Subject {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Token) int { return a.Created.Compare(b.Created) })
	problem.JSON(w, http.StatusOK, out)
}

func (s *Service) revokeToken(w http.ResponseWriter, r *http.Request) {
	r, p, ok := s.localUser(w, r, "token.revoke")
	if !ok {
		return
	}
	id := r.PathValue("id")
	st, err := s.load(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading tokens failed", err)
		return
	}
	t, found := st.tokenIDs[id]
	if !found || (t.Owner != p.Subject && !p.Can("", PermAdmin)) {
		s.opts.Auditor.Record(r.Context(), audit.Event{Action: "token.revoke", Result: "invalid", Reason: "no such token " + id, Request: r})
		problem.Write(w, problem.NotFound, "no token "+id+" of yours (list them with custody token list)")
		return
	}
	if err := s.opts.Store.RevokeToken(r.Context(), id, s.now().UTC()); err != nil {
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, problem.AlreadyRevoked, "token "+id+" is already revoked")
			return
		}
		problem.Fail(w, r, s.opts.Log, "revoking the token failed", err)
		return
	}
	s.ok(r, "token.revoke", "", fmt.Sprintf("token %s (%s) of %s", id, t.Name, t.Owner))
	w.WriteHeader(http.StatusNoContent)
}

// UserRequest is the body of POST /api/v1/users and PUT /api/v1/users/{name}.
type UserRequest struct {
	Name     string    `json:"name,omitempty"`
	Password string    `json:"password,omitempty"`
	Groups   *[]string `json:"groups,omitempty"`
}

func validUserName(n string) error {
	if n == "" || len(n) > 64 || strings.ContainsAny(n, ": \t\r\n/@") || n == SubjectAnonymous || n == SubjectAuthenticated {
		return fmt.Errorf("invalid user name %q (up to 64 characters, no ':', '/', '@' or spaces)", n)
	}
	return nil
}

func validGroups(gs []string) error {
	for _, g := range gs {
		if g == "" || len(g) > 64 || strings.ContainsAny(g, ": \t\r\n") {
			return fmt.Errorf("invalid group name %q", g)
		}
	}
	return nil
}

// UserEntry is a user in the answer of GET /api/v1/users: the account and
// the second factors it enrolled ("totp", "webauthn"; empty: none).
type UserEntry struct {
	User
	MFA []string `json:"mfa"`
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) {
	r, _, ok := s.Require(w, r, "user.list", "", PermAdmin)
	if !ok {
		return
	}
	st, err := s.load(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading users failed", err)
		return
	}
	out := []UserEntry{}
	for _, u := range st.users {
		u.Groups = nonNilStrings(u.Groups)
		e := UserEntry{User: u, MFA: []string{}}
		switch f, err := s.opts.Store.GetFactors(r.Context(), u.Name); {
		case err == nil && f.TOTPConfirmed:
			e.MFA = append(e.MFA, FactorTOTP)
		case err != nil && !errors.Is(err, account.ErrNotFound):
			problem.Fail(w, r, s.opts.Log, "reading second factors failed", err)
			return
		}
		keys, err := s.opts.Store.WebAuthnKeys(r.Context(), u.Name)
		if err != nil {
			problem.Fail(w, r, s.opts.Log, "reading security keys failed", err)
			return
		}
		if len(keys) > 0 {
			e.MFA = append(e.MFA, FactorWebAuthn)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b UserEntry) int { return strings.Compare(a.Name, b.Name) })
	problem.JSON(w, http.StatusOK, out)
}

func (s *Service) createUser(w http.ResponseWriter, r *http.Request) {
	r, _, ok := s.Require(w, r, "user.create", "", PermAdmin)
	if !ok {
		return
	}
	if !s.RequireStepUp(w, r, "user.create", "", "creating a user") {
		return
	}
	var req UserRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, "user.create", "", err.Error())
		return
	}
	if err := validUserName(req.Name); err != nil {
		s.invalid(w, r, "user.create", "", err.Error())
		return
	}
	u := User{Name: req.Name, Groups: []string{}, Created: s.now().UTC()}
	if req.Groups != nil {
		if err := validGroups(*req.Groups); err != nil {
			s.invalid(w, r, "user.create", "", err.Error())
			return
		}
		u.Groups = *req.Groups
	}
	if req.Password != "" {
		h, err := HashPassword(req.Password)
		if err != nil {
			s.invalid(w, r, "user.create", "", err.Error())
			return
		}
		u.PasswordHash = h
	}
	st, err := s.load(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading users failed", err)
		return
	}
	if _, exists := st.users[u.Name]; exists {
		s.opts.Auditor.Record(r.Context(), audit.Event{Action: "user.create", Result: "invalid", Reason: "user " + u.Name + " exists", Request: r})
		problem.Write(w, problem.Exists, "user "+u.Name+" already exists (change it with PUT /api/v1/users/"+u.Name+")")
		return
	}
	if err := s.opts.Store.PutUser(r.Context(), u); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the user failed", err)
		return
	}
	s.ok(r, "user.create", "", fmt.Sprintf("user %s, groups %v", u.Name, u.Groups))
	problem.JSON(w, http.StatusCreated, u)
}

func (s *Service) updateUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, err := s.Authenticate(r)
	if err != nil {
		s.refuse(w, r, "user.update", "", err)
		return
	}
	r = r.WithContext(WithPrincipal(identity.With(r.Context(), identityOf(p)), p))
	var req UserRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, "user.update", "", err.Error())
		return
	}
	admin := p.Can("", PermAdmin)
	self := !p.Anonymous() && p.Subject == name && (p.Method == "password" || p.Method == "jwt/password")
	switch {
	case p.Anonymous():
		s.refuse(w, r, "user.update", "", fmt.Errorf("%w: sign in first", registry.ErrUnauthenticated))
		return
	case p.mfaMissing != "":
		// The password alone must not replace itself: whoever learned it
		// would shut the account's owner out.
		s.refuse(w, r, "user.update", "", p.mfaDenial())
		return
	case !admin && !(self && req.Groups == nil):
		s.refuse(w, r, "user.update", "", fmt.Errorf("%w: %s may only change its own password (group changes need the admin role)", registry.ErrDenied, p.Subject))
		return
	case !self || req.Groups != nil:
		// Changing another account, or groups, is an administrator's
		// dangerous action.
		if !s.RequireStepUp(w, r, "user.update", "", "changing a user") {
			return
		}
	}
	st, err := s.load(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading users failed", err)
		return
	}
	u, found := st.users[name]
	if !found {
		problem.Write(w, problem.NotFound, "no user "+name)
		return
	}
	var changed []string
	if req.Password != "" {
		h, err := HashPassword(req.Password)
		if err != nil {
			s.invalid(w, r, "user.update", "", err.Error())
			return
		}
		u.PasswordHash = h
		changed = append(changed, "password")
	}
	if req.Groups != nil {
		if err := validGroups(*req.Groups); err != nil {
			s.invalid(w, r, "user.update", "", err.Error())
			return
		}
		u.Groups = *req.Groups
		changed = append(changed, fmt.Sprintf("groups %v", u.Groups))
	}
	if len(changed) == 0 {
		s.invalid(w, r, "user.update", "", "nothing to change: give a password or groups")
		return
	}
	if err := s.opts.Store.PutUser(r.Context(), u); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the user failed", err)
		return
	}
	s.ok(r, "user.update", "", "user "+name+": "+strings.Join(changed, ", "))
	if name == bootstrapAdmin && req.Password != "" {
		s.adminPasswordChanged()
	}
	u.Groups = nonNilStrings(u.Groups)
	problem.JSON(w, http.StatusOK, u)
}

func (s *Service) deleteUser(w http.ResponseWriter, r *http.Request) {
	r, p, ok := s.Require(w, r, "user.delete", "", PermAdmin)
	if !ok {
		return
	}
	if !s.RequireStepUp(w, r, "user.delete", "", "deleting a user") {
		return
	}
	name := r.PathValue("name")
	if name == p.Subject {
		s.invalid(w, r, "user.delete", "", "you cannot delete your own account")
		return
	}
	if err := s.opts.Store.DeleteUser(r.Context(), name); err != nil {
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, problem.NotFound, "no user "+name)
			return
		}
		problem.Fail(w, r, s.opts.Log, "deleting the user failed", err)
		return
	}
	s.ok(r, "user.delete", "", "user "+name)
	w.WriteHeader(http.StatusNoContent)
}

// disableUser disables or enables an account (POST .../disable,
// .../enable): a disabled account cannot sign in with its password, its
// API tokens or a browser session, and its sessions end now. The grants
// rule is deleteUser's: admins only, and not their own account.
func (s *Service) disableUser(w http.ResponseWriter, r *http.Request) {
	disable := strings.HasSuffix(r.URL.Path, "/disable")
	action := "user.enable"
	if disable {
		action = "user.disable"
	}
	r, p, ok := s.Require(w, r, action, "", PermAdmin)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if disable && name == p.Subject {
		s.invalid(w, r, action, "", "you cannot disable your own account")
		return
	}
	var at time.Time
	if disable {
		at = s.now().UTC()
	}
	if err := s.opts.Store.SetUserDisabled(r.Context(), name, at); err != nil {
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, problem.NotFound, "no user "+name)
			return
		}
		problem.Fail(w, r, s.opts.Log, "changing the user failed", err)
		return
	}
	st, err := s.load(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading users failed", err)
		return
	}
	u := st.users[name]
	if disable {
		s.ok(r, action, "", "user "+name+": sign-ins refused, sessions ended")
	} else {
		s.ok(r, action, "", "user "+name)
	}
	u.Groups = nonNilStrings(u.Groups)
	problem.JSON(w, http.StatusOK, u)
}

func (s *Service) listGrants(w http.ResponseWriter, r *http.Request) {
	r, _, ok := s.Require(w, r, "grant.list", "", PermAdmin)
	if !ok {
		return
	}
	st, err := s.opts.Store.AuthState(r.Context())
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading grants failed", err)
		return
	}
	out := []Grant{}
	for _, g := range s.opts.Grants {
		g.Source = "config"
		out = append(out, g)
	}
	out = append(out, st.Grants...)
	problem.JSON(w, http.StatusOK, out)
}

func (s *Service) createGrant(w http.ResponseWriter, r *http.Request) {
	r, _, ok := s.Require(w, r, "grant.create", "", PermAdmin)
	if !ok {
		return
	}
	if !s.RequireStepUp(w, r, "grant.create", "", "granting a role") {
		return
	}
	var g Grant
	if err := decode(r, w, &g); err != nil {
		s.invalid(w, r, "grant.create", "", err.Error())
		return
	}
	g.Source = ""
	if err := g.Validate(); err != nil {
		s.invalid(w, r, "grant.create", g.Repository, err.Error())
		return
	}
	if err := s.opts.Store.PutGrant(r.Context(), g); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the grant failed", err)
		return
	}
	s.ok(r, "grant.create", g.Repository, fmt.Sprintf("%s %s on %s", g.Subject, g.Role, g.Repository))
	g.Source = "api"
	problem.JSON(w, http.StatusCreated, g)
}

func (s *Service) deleteGrant(w http.ResponseWriter, r *http.Request) {
	r, _, ok := s.Require(w, r, "grant.delete", "", PermAdmin)
	if !ok {
		return
	}
	if !s.RequireStepUp(w, r, "grant.delete", "", "removing a grant") {
		return
	}
	q := r.URL.Query()
	g := Grant{Subject: q.Get("subject"), Role: Role(q.Get("role")), Repository: q.Get("repository")}
	if err := g.Validate(); err != nil {
		s.invalid(w, r, "grant.delete", g.Repository, err.Error())
		return
	}
	if err := s.opts.Store.DeleteGrant(r.Context(), g); err != nil {
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, problem.NotFound, "no stored grant "+g.Subject+" "+string(g.Role)+" on "+g.Repository+" (grants from the config file change only there)")
			return
		}
		problem.Fail(w, r, s.opts.Log, "deleting the grant failed", err)
		return
	}
	s.ok(r, "grant.delete", g.Repository, fmt.Sprintf("%s %s on %s", g.Subject, g.Role, g.Repository))
	w.WriteHeader(http.StatusNoContent)
}
