package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/go-webauthn/webauthn/webauthn"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/registry"
)

// Options configure a Service.
type Options struct {
	Store Store
	// Auditor records sign-ins, refusals and changes to users, grants and
	// tokens.
	Auditor audit.Auditor
	Log     *slog.Logger
	// Service names this registry in the Docker token flow; it is the
	// issuer and audience of the tokens the Service issues.
	Service string
	// Realm is the token endpoint URL announced to clients; empty: the
	// request's scheme and host + TokenPath.
	Realm string
	// TokenTTL is the lifetime of issued tokens.
	TokenTTL time.Duration
	// SigningKey signs the tokens the token endpoint issues.
	SigningKey ed25519.PrivateKey
	// Grants are the configuration file's grants (Source "config").
	Grants []Grant
	// OIDC are the trusted issuers.
	OIDC []OIDCIssuer
	// LoginFailures within LoginWindow lock an account name out for the
	// rest of the window; LoginAddressFailures (much more) from one client
	// address throttle that address's further failures (see limiter).
	LoginFailures        int
	LoginAddressFailures int
	LoginWindow          time.Duration
	// SessionIdle and SessionAbsolute end a browser session after so long
	// without a request, and so long after signing in (defaults 30m and
	// 12h).
	SessionIdle, SessionAbsolute time.Duration
	// SecureCookies names the session cookie for a server served over TLS
	// (SessionCookieName).
	SecureCookies bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// AdminPasswordFile is where Bootstrap writes the first admin's
	// random password (the server uses <data>/admin-password); it is
	// removed once that password is changed. Empty: Bootstrap creates no
	// account.
	AdminPasswordFile string
	// MFARoles are the roles whose holders must sign in with a second
	// factor (the configuration's default: admin and promoter; none when
	// empty). StepUpWindow is how recent a second factor dangerous
	// actions need (default 5m). OTPFailures wrong one-time codes within
	// LoginWindow lock an account's codes out for the rest of it
	// (default 5).
	MFARoles     []Role
	StepUpWindow time.Duration
	// WebURL is the web interface's external URL (web.url): WebAuthn's
	// relying party ID and origin. Empty: no security keys.
	WebURL      string
	OTPFailures int
}

// TokenPath is where the Docker token flow's endpoint is served.
const TokenPath = "/auth/token"

// tokenPrefix starts every API token secret, so leaked tokens are easy to
// recognise (and to scan for).
const tokenPrefix = "cst_"

// Service authenticates requests and decides what they may do. It is the
// registry's and the generic files' Authorizer.
type Service struct {
	opts    Options
	now     func() time.Time
	oidc    []*oidcIssuer
	limiter *limiter

	mu    sync.Mutex
	state *compiled
	// pwCache remembers recent successful password checks (bcrypt is
	// slow by design; clients that send Basic on every request would pay
	// it every time). Keyed by SHA-256 of name, hash and password.
	pwCache map[[32]byte]time.Time
	// otpLimiter counts wrong one-time codes per account.
	otpLimiter *limiter
	// rp verifies security keys (nil without Options.WebURL).
	rp *webauthn.WebAuthn
}

var _ registry.Authorizer = (*Service)(nil)

// compiled is a State indexed for lookups.
type compiled struct {
	gen      int64
	users    map[string]User
	tokens   map[string]Token // by hash
	tokenIDs map[string]Token
	grants   map[string][]Scope // by subject
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("auth: a store and an Ed25519 signing key are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Auditor == nil {
		opts.Auditor = registry.LogAuditor{Log: opts.Log}
	}
	if opts.Service == "" {
		opts.Service = "custody"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 5 * time.Minute
	}
	if opts.LoginFailures <= 0 {
		opts.LoginFailures = 10
	}
	if opts.LoginAddressFailures <= 0 {
		opts.LoginAddressFailures = 10 * opts.LoginFailures
	}
	if opts.LoginWindow <= 0 {
		opts.LoginWindow = time.Minute
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = 30 * time.Minute
	}
	if opts.SessionAbsolute <= 0 {
		opts.SessionAbsolute = 12 * time.Hour
	}
	if opts.StepUpWindow <= 0 {
		opts.StepUpWindow = 5 * time.Minute
	}
	if opts.OTPFailures <= 0 {
		opts.OTPFailures = 5
	}
	for _, g := range opts.Grants {
		if err := g.Validate(); err != nil {
			return nil, fmt.Errorf("auth grant: %w", err)
		}
	}
	s := &Service{
		opts:    opts,
		now:     opts.Now,
		limiter: newLimiter(opts.LoginFailures, opts.LoginAddressFailures, opts.LoginWindow, opts.Now),
		pwCache: map[[32]byte]time.Time{},
		// Addresses are throttled by the password limiter; this one
		// counts per account only.
		otpLimiter: newLimiter(opts.OTPFailures, 1<<30, opts.LoginWindow, opts.Now),
	}
	for _, o := range opts.OIDC {
		iss, err := newOIDCIssuer(o, opts.Service)
		if err != nil {
			return nil, err
		}
		s.oidc = append(s.oidc, iss)
	}
	name := opts.Service
	if name == "" {
		name = "custody"
	}
	rp, err := newRelyingParty(opts.WebURL, name)
	if err != nil {
		return nil, err
	}
	s.rp = rp
	return s, nil
}

// load returns the current state, re-reading it when the store's
// generation moved (a change here or on another replica).
func (s *Service) load(ctx context.Context) (*compiled, error) {
	gen, err := s.opts.Store.AuthGeneration(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st != nil && st.gen == gen {
		return st, nil
	}
	raw, err := s.opts.Store.AuthState(ctx)
	if err != nil {
		return nil, err
	}
	c := &compiled{
		gen:      raw.Generation,
		users:    map[string]User{},
		tokens:   map[string]Token{},
		tokenIDs: map[string]Token{},
		grants:   map[string][]Scope{},
	}
	for _, u := range raw.Users {
		c.users[u.Name] = u
	}
	for _, t := range raw.Tokens {
		c.tokens[t.Hash] = t
		c.tokenIDs[t.ID] = t
	}
	for _, g := range slices.Concat(s.opts.Grants, raw.Grants) {
		c.grants[g.Subject] = append(c.grants[g.Subject], Scope{Role: g.Role, Repositories: []string{g.Repository}})
	}
	s.mu.Lock()
	if s.state == nil || s.state.gen <= c.gen {
		s.state = c
	}
	s.mu.Unlock()
	return c, nil
}

// grantsFor collects the grants of a subject (a user name or an OIDC
// identity), its groups, and everyone.
func (c *compiled) grantsFor(name string, groups []string, authenticated bool) []Scope {
	out := slices.Clone(c.grants[SubjectAnonymous])
	if !authenticated {
		return out
	}
	out = append(out, c.grants[SubjectAuthenticated]...)
	out = append(out, c.grants["user:"+name]...)
	for _, g := range groups {
		out = append(out, c.grants["group:"+g]...)
	}
	return out
}

func (c *compiled) anonymous() *Principal {
	return newPrincipal(SubjectAnonymous, "none", nil, c.grantsFor("", nil, false))
}

// local returns the local account name and whether it may sign in; when
// not, why: it does not exist, or it is disabled. Every way of signing
// in as a local account (password, API token, a token this service
// issued for either, a browser session) asks here, on every request, so
// disabling an account stops all of them at once.
func (c *compiled) local(name string) (User, string) {
	u, ok := c.users[name]
	switch {
	case !ok:
		return u, "user " + name + " no longer exists"
	case !u.Disabled.IsZero():
		return u, "user " + name + " is disabled (since " + u.Disabled.UTC().Format(time.RFC3339) + ")"
	}
	return u, ""
}

func (c *compiled) user(u User, method string) *Principal {
	return newPrincipal(u.Name, method, slices.Clone(u.Groups), c.grantsFor(u.Name, u.Groups, true))
}

func newPrincipal(subject, method string, groups []string, scopes []Scope) *Principal {
	return &Principal{Subject: subject, Method: method, Groups: groups, scopes: scopes, grants: scopeRules(scopes)}
}

// authError is a failed sign-in: the reason is for the audit log and the
// operator; clients see a generic message.
type authError struct {
	subject string // who the request claimed to be, if anyone
	method  string
	reason  string
	limited time.Duration // > 0: rate limited, retry after
}

func (e *authError) Error() string { return e.reason }

func (e *authError) Unwrap() error {
	if e.limited > 0 {
		return registry.ErrTooManyRequests
	}
	return registry.ErrUnauthenticated
}

// Authenticate returns the principal of r: anonymous when r carries no
// credentials (an Authorization header, or else a session cookie), or an
// error (wrapping registry.ErrUnauthenticated or
// registry.ErrTooManyRequests) when its credentials are wrong. Failed
// sign-ins are audited and counted by the rate limiter.
func (s *Service) Authenticate(r *http.Request) (*Principal, error) {
	ctx := r.Context()
	st, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading accounts: %w", err)
	}
	h := r.Header.Get("Authorization")
	var p *Principal
	switch {
	case h == "":
		secret, ok := s.sessionCookie(r)
		if !ok {
			return st.anonymous(), nil
		}
		p, err = s.session(ctx, st, r, secret)
	case strings.HasPrefix(h, "Basic "):
		user, pass, ok := r.BasicAuth()
		if !ok {
			err = &authError{method: "basic", reason: "malformed Basic credentials"}
			break
		}
		p, err = s.basic(ctx, st, r, user, pass)
	case strings.HasPrefix(h, "Bearer "):
		p, err = s.bearer(ctx, st, strings.TrimSpace(strings.TrimPrefix(h, "Bearer ")))
	default:
		err = &authError{reason: "unsupported Authorization scheme (use Basic or Bearer)"}
	}
	if code := r.Header.Get(OTPHeader); err == nil && code != "" && p.interactive() && p.session == nil {
		// A one-time code beside a password or a sign-in token: counted
		// by its own limiter, not as a wrong password.
		var factor string
		if factor, err = s.verifyCode(ctx, r, p.Subject, code); err == nil {
			p.Factor, p.FactorAt = factor, s.now()
		}
	}
	if err == nil {
		err = s.applyPolicy(ctx, p)
	}
	if err != nil {
		s.failed(r, err)
		return nil, err
	}
	return p, nil
}

// failed audits a failed sign-in.
func (s *Service) failed(r *http.Request, err error) {
	var ae *authError
	reason, subject, method := err.Error(), "", ""
	if errors.As(err, &ae) {
		subject, method = ae.subject, ae.method
	}
	ctx := r.Context()
	if subject != "" {
		ctx = identity.With(ctx, identity.Identity{Subject: subject, Method: method})
	}
	s.opts.Auditor.Record(ctx, audit.Event{Action: "login", Result: "denied", Reason: reason, Request: r.WithContext(ctx)})
}

// basic checks a user name and a password, API token or OIDC token.
func (s *Service) basic(ctx context.Context, st *compiled, r *http.Request, user, pass string) (*Principal, error) {
	addr := clientHost(r)
	var (
		p   *Principal
		err error
		// name is what failures count against besides the address: the
		// account name for passwords; none for tokens, which cannot be
		// guessed and come with shared names such as "token".
		name, method = user, "password"
	)
	switch {
	case strings.HasPrefix(pass, tokenPrefix):
		name, method = "", "token"
		p, err = s.apiToken(st, pass)
		if err == nil && user != p.Subject && user != "token" && user != "oauth2accesstoken" && user != "__token__" {
			err = &authError{subject: user, method: "token", reason: fmt.Sprintf("token belongs to %s, not %s", p.Subject, user)}
		}
	case looksLikeJWT(pass) && len(s.oidc) > 0:
		name, method = "", "oidc"
		p, err = s.oidcToken(ctx, pass)
	default:
		if wait := s.limiter.attempt(user); wait > 0 {
			return nil, &authError{subject: user, method: method, reason: "too many failed sign-ins for " + user + "; try again later", limited: wait}
		}
		p, err = s.password(st, user, pass)
	}
	if err != nil {
		wait := s.limiter.addrBlocked(addr)
		s.limiter.fail(addr, "") // a password's attempt counted against its name already
		if wait > 0 {
			return nil, &authError{subject: user, method: method, reason: err.Error() + "; too many failed sign-ins from " + addr + ", try again later", limited: wait}
		}
		return nil, err
	}
	if name != "" {
		s.limiter.succeed(name)
	}
	return p, nil
}

// password checks a local account's password.
func (s *Service) password(st *compiled, name, pass string) (*Principal, error) {
	u, ok := st.users[name]
	if !ok || u.PasswordHash == "" {
		// Spend the same time as a wrong password, so probing for
		// account names learns nothing from timing.
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(pass))
		return nil, &authError{subject: name, method: "password", reason: "unknown user or wrong password"}
	}
	key := sha256.Sum256([]byte(u.Name + "\x00" + u.PasswordHash + "\x00" + pass))
	now := s.now()
	s.mu.Lock()
	exp, cached := s.pwCache[key]
	s.mu.Unlock()
	if !cached || now.After(exp) {
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pass)) != nil {
			return nil, &authError{subject: name, method: "password", reason: "unknown user or wrong password"}
		}
		s.mu.Lock()
		if len(s.pwCache) > 10000 {
			clear(s.pwCache)
		}
		s.pwCache[key] = now.Add(5 * time.Minute)
		s.mu.Unlock()
	}
	// Checked after the password, so the reason (audited; the client sees
	// the same refusal either way) tells a disabled account's owner from
	// someone guessing.
	if _, why := st.local(name); why != "" {
		return nil, &authError{subject: name, method: "password", reason: why}
	}
	return st.user(u, "password"), nil
}

// dummyHash is a bcrypt hash at bcrypt.DefaultCost (the cost HashPassword
// uses) of a password nobody has, written out rather than computed: hashing
// it at package initialisation cost every custody command, server or
// client, some 60-130 ms of start-up.
var dummyHash = []byte("$2a$10$At1y433ezH8YbDhD36C9WuT9z.5NN7dZaMkONuNrygWZEKA3DDfx.")

// HashPassword returns the bcrypt hash stored for a password.
func HashPassword(pass string) (string, error) {
	if len(pass) < 12 {
		return "", errors.New("password too short: use at least 12 characters")
	}
	if len(pass) > 72 {
		return "", errors.New("password too long: use at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	return string(h), err
}

// apiToken checks an API token secret.
func (s *Service) apiToken(st *compiled, secret string) (*Principal, error) {
	sum := sha256.Sum256([]byte(secret))
	t, ok := st.tokens[hex.EncodeToString(sum[:])]
	if !ok {
		return nil, &authError{method: "token", reason: "unknown API token"}
	}
	return s.tokenPrincipal(st, t)
}

func (s *Service) tokenPrincipal(st *compiled, t Token) (*Principal, error) {
	switch {
	case !t.Revoked.IsZero():
		return nil, &authError{subject: t.Owner, method: "token", reason: fmt.Sprintf("API token %s was revoked", t.ID)}
	case !s.now().Before(t.Expires):
		return nil, &authError{subject: t.Owner, method: "token", reason: fmt.Sprintf("API token %s expired at %s", t.ID, t.Expires.Format(time.RFC3339))}
	}
	u, why := st.local(t.Owner)
	if why != "" {
		return nil, &authError{subject: t.Owner, method: "token", reason: fmt.Sprintf("API token %s belongs to %s: %s", t.ID, t.Owner, why)}
	}
	p := st.user(u, "token")
	p.TokenID = t.ID
	p.tokenScopes = t.Scopes
	p.tokenRules = scopeRules(t.Scopes)
	p.signInToken, p.signedInAt = t.SignIn, t.Created
	return p, nil
}

func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 && !strings.ContainsAny(s, " \t") }

// bearer checks a Bearer token: an API token, a token this Service
// issued, or an OIDC token of a trusted issuer.
func (s *Service) bearer(ctx context.Context, st *compiled, tok string) (*Principal, error) {
	if strings.HasPrefix(tok, tokenPrefix) {
		return s.apiToken(st, tok)
	}
	if !looksLikeJWT(tok) {
		return nil, &authError{method: "bearer", reason: "malformed bearer token"}
	}
	iss, err := unverifiedIssuer(tok)
	if err != nil {
		return nil, &authError{method: "bearer", reason: err.Error()}
	}
	if iss == s.opts.Service {
		return s.ownToken(st, tok)
	}
	for _, o := range s.oidc {
		if o.cfg.Issuer == iss {
			return s.oidcToken(ctx, tok)
		}
	}
	return nil, &authError{method: "bearer", reason: fmt.Sprintf("token issuer %q is not trusted", iss)}
}

func unverifiedIssuer(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(b) > 64<<10 {
		return "", errors.New("malformed token payload")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := jsonUnmarshal(b, &c); err != nil {
		return "", errors.New("malformed token payload")
	}
	return c.Iss, nil
}

// clientHost is the client's address without the port.
func clientHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// newSecret returns a random token secret and its ID.
func newSecret() (secret, id string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	var i [6]byte
	_, _ = rand.Read(i[:])
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), hex.EncodeToString(i[:])
}

// bootstrapAdmin is the account Bootstrap creates.
const bootstrapAdmin = "admin"

// Bootstrap creates the account "admin" with a random password and the
// admin role on every repository when the store has no user yet, writes
// the password to Options.AdminPasswordFile (mode 0600) and says so in
// the log. It does nothing when any account exists.
func (s *Service) Bootstrap(ctx context.Context) error {
	if s.opts.AdminPasswordFile == "" {
		return nil
	}
	st, err := s.opts.Store.AuthState(ctx)
	if err != nil {
		return err
	}
	if len(st.Users) > 0 {
		return nil
	}
	var b [18]byte
	_, _ = rand.Read(b[:])
	pass := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := HashPassword(pass)
	if err != nil {
		return err
	}
	path := s.opts.AdminPasswordFile
	if err := writeSecretFile(path, []byte(pass+"\n")); err != nil {
		return fmt.Errorf("writing the admin password: %w", err)
	}
	if err := s.opts.Store.PutUser(ctx, User{Name: bootstrapAdmin, PasswordHash: hash, Groups: []string{}, Created: s.now().UTC()}); err != nil {
		return err
	}
	if err := s.opts.Store.PutGrant(ctx, Grant{Subject: "user:admin", Role: RoleAdmin, Repository: "**"}); err != nil {
		return err
	}
	s.opts.Auditor.Record(identity.With(ctx, identity.Identity{Subject: "custody", Method: "bootstrap"}),
		audit.Event{Action: "user.create", Repo: "", Result: "ok", Reason: "first start: account admin with the admin role"})
	s.opts.Log.Warn("created the account admin with a random password; sign in with 'custody login -u admin' and change it",
		"password_file", path)
	return nil
}

// adminPasswordChanged removes the file Bootstrap wrote the first admin
// password to, now that the password it holds no longer signs in, and
// says so in the log. A missing file is fine (removed already, or never
// written).
func (s *Service) adminPasswordChanged() {
	path := s.opts.AdminPasswordFile
	if path == "" {
		return
	}
	switch err := os.Remove(path); {
	case err == nil:
		s.opts.Log.Info("the admin password was changed: removed the file that held the first one", "password_file", path)
	case !errors.Is(err, fs.ErrNotExist):
		s.opts.Log.Error("the admin password was changed, but removing the file that held the first one failed; remove it by hand",
			"password_file", path, "err", err)
	}
}

func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
