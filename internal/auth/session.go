package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/veto"
)

// Browser sessions (docs/ui.md): a session is an authentication method
// like a password or a token, checked in Authenticate with the others. Its
// cookie carries a random 256-bit secret; the account store keeps only its
// SHA-256, with the CSRF token every unsafe request of the session must
// carry. The API that signs in and out:
//
//	POST   /api/v1/sessions            sign in: Basic (password) or {"oidc": ...}
//	DELETE /api/v1/sessions/current    sign out: ends the caller's session
//	GET    /api/v1/sessions/oidc       the issuers offering browser sign-in
//	GET    /api/v1/sessions/oidc/{id}  start one: where to send the browser

// CSRFHeader carries a session's CSRF token on unsafe requests made by
// script; forms send it as the field "csrf".
const CSRFHeader = "X-CSRF-Token"

// Session methods: how a session's caller signed in.
const (
	// MethodSession is a session signed in with a local password.
	MethodSession = "session"
	// MethodSessionOIDC is a session signed in with an OIDC issuer. Like
	// the "oidc" method it holds no API tokens.
	MethodSessionOIDC = "session/oidc"
)

// SessionCookieName is the session cookie's name: "__Host-custody_session"
// when served over TLS (the prefix makes browsers insist on Secure, Path=/
// and no Domain), else "custody_session".
func SessionCookieName(tls bool) string {
	if tls {
		return "__Host-custody_session"
	}
	return "custody_session"
}

// SessionCookie is the cookie that carries a session's secret: HttpOnly,
// SameSite=Strict, Secure under TLS, for the whole site, and a
// browser-session cookie (no Max-Age or Expires: the browser drops it
// when it closes). The server ends the session itself at its idle or
// absolute timeout, whatever the browser keeps.
func SessionCookie(secret string, tls bool) *http.Cookie {
	return &http.Cookie{Name: SessionCookieName(tls), Value: secret, Path: "/", HttpOnly: true, Secure: tls,
		SameSite: http.SameSiteStrictMode}
}

// EndedSessionCookie is the cookie that makes a browser drop its session
// cookie (sign-out).
func EndedSessionCookie(tls bool) *http.Cookie {
	c := SessionCookie("", tls)
	c.MaxAge = -1
	return c
}

// SessionInfo describes the session a whoami answer was authenticated by.
type SessionInfo struct {
	// CSRF is the token the session's unsafe requests must carry.
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	// Expires is when the session ends at the latest (the absolute
	// timeout); IdleExpires when it ends without another request.
	Expires     time.Time `json:"expires"`
	IdleExpires time.Time `json:"idleExpires"`
}

// Capabilities are the global permissions of the caller, as the web
// interface's navigation needs them.
type Capabilities struct {
	Audit bool `json:"audit"`
	Admin bool `json:"admin"`
}

// SessionRequest is the body of POST /api/v1/sessions: empty with a
// password in Basic credentials, or the OIDC authorization code the
// browser brought back.
type SessionRequest struct {
	OIDC *OIDCCode `json:"oidc,omitempty"`
	// WebAuthn is a security key's answer to a challenge
	// (POST /api/v1/mfa/webauthn/challenge): the second factor beside the
	// password.
	WebAuthn *WebAuthnAssertion `json:"webauthn,omitempty"`
}

// OIDCCode is what the browser brought back from an issuer, with what the
// sign-in started with (GET /api/v1/sessions/oidc/{id}).
type OIDCCode struct {
	Issuer   string `json:"issuer"` // the issuer's ID in the sign-in list
	Code     string `json:"code"`
	Verifier string `json:"verifier"` // the PKCE code verifier
	Nonce    string `json:"nonce"`
}

// CreatedSession is the answer of POST /api/v1/sessions: the only time
// the secret is shown (it goes into the cookie).
type CreatedSession struct {
	Secret  string    `json:"secret"`
	Subject string    `json:"subject"`
	Method  string    `json:"method"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
	// MaxAge is the absolute timeout in seconds: the session ends then at
	// the latest. (The web interface's cookie is a browser-session
	// cookie; the server enforces the timeouts.)
	MaxAge int `json:"maxAge"`
}

// csrfError refuses an unsafe request of a session that did not prove it
// came from the web interface itself.
type csrfError struct{ reason string }

func (e *csrfError) Error() string { return e.reason }
func (e *csrfError) Unwrap() error { return registry.ErrDenied }

// crossOrigin checks Sec-Fetch-Site and Origin on unsafe requests: a
// browser's request from another origin is refused.
var crossOrigin = http.NewCrossOriginProtection()

// unsafeMethod reports whether m may change something.
func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sessionHash is the stored form of a session secret.
func sessionHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionCookie returns the session secret r carries, if any.
func (s *Service) sessionCookie(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookieName(s.opts.SecureCookies))
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// session authenticates a request by its session cookie: the session must
// exist and be within its idle and absolute timeouts, and an unsafe
// request must carry its CSRF token and come from the same origin.
func (s *Service) session(ctx context.Context, st *compiled, r *http.Request, secret string) (*Principal, error) {
	hash := sessionHash(secret)
	se, err := s.opts.Store.GetSession(ctx, hash)
	if errors.Is(err, account.ErrNotFound) {
		return nil, &authError{method: MethodSession, reason: "unknown or ended session; sign in again"}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the session: %w", err)
	}
	now := s.now()
	switch {
	case !now.Before(se.Created.Add(s.opts.SessionAbsolute)):
		s.endSession(ctx, hash)
		return nil, &authError{subject: se.Subject, method: se.Method, reason: "the session expired (signed in more than " + s.opts.SessionAbsolute.String() + " ago); sign in again"}
	case !now.Before(se.LastSeen.Add(s.opts.SessionIdle)):
		s.endSession(ctx, hash)
		return nil, &authError{subject: se.Subject, method: se.Method, reason: "the session expired (idle for more than " + s.opts.SessionIdle.String() + "); sign in again"}
	}
	var p *Principal
	switch se.Method {
	case MethodSession:
		u, why := st.local(se.Subject)
		if why != "" {
			s.endSession(ctx, hash)
			return nil, &authError{subject: se.Subject, method: se.Method, reason: "the session ended: " + why}
		}
		p = st.user(u, MethodSession)
	case MethodSessionOIDC:
		p = newPrincipal(se.Subject, MethodSessionOIDC, slices.Clone(se.Groups), append(st.grantsFor(se.Subject, se.Groups, true), se.Scopes...))
		p.oidcGrants = se.Scopes
	default:
		return nil, fmt.Errorf("session of unknown method %q", se.Method)
	}
	if unsafeMethod(r.Method) {
		if err := crossOrigin.Check(r); err != nil {
			return nil, &csrfError{reason: "refused a cross-origin " + r.Method + " with a session cookie: " + err.Error()}
		}
		tok := r.Header.Get(CSRFHeader)
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(se.CSRF)) != 1 {
			return nil, &csrfError{reason: "refused a " + r.Method + " with a session cookie but without the session's CSRF token"}
		}
	}
	// Record the request, at most every touchEvery, so an active session
	// stays and a replica sees it active.
	if now.Sub(se.LastSeen) >= s.touchEvery() {
		if err := s.opts.Store.TouchSession(ctx, hash, now); err != nil && !errors.Is(err, account.ErrNotFound) {
			s.opts.Log.Warn("recording a session's request failed", "err", err)
		}
		se.LastSeen = now
	}
	p.session = &se
	p.Factor, p.FactorAt = se.Factor, se.FactorAt
	return p, nil
}

// touchEvery is how stale a session's last-seen time may get: a tenth of
// the idle timeout, at most a minute.
func (s *Service) touchEvery() time.Duration {
	return min(s.opts.SessionIdle/10, time.Minute)
}

// endSession deletes a session that timed out or lost its user.
func (s *Service) endSession(ctx context.Context, hash string) {
	if err := s.opts.Store.DeleteSession(ctx, hash); err != nil && !errors.Is(err, account.ErrNotFound) {
		s.opts.Log.Warn("ending a session failed", "err", err)
	}
}

// sessionInfo is the whoami view of p's session, nil without one.
func (s *Service) sessionInfo(p *Principal) *SessionInfo {
	if p.session == nil {
		return nil
	}
	return &SessionInfo{CSRF: p.session.CSRF, Created: p.session.Created,
		Expires: p.session.Created.Add(s.opts.SessionAbsolute), IdleExpires: p.session.LastSeen.Add(s.opts.SessionIdle)}
}

// PurgeSessions deletes the sessions that timed out; the server runs it
// now and then (a timed-out session is refused whether or not it was
// purged).
func (s *Service) PurgeSessions(ctx context.Context) (int, error) {
	now := s.now()
	return s.opts.Store.PurgeSessions(ctx, now.Add(-s.opts.SessionIdle), now.Add(-s.opts.SessionAbsolute))
}

// PurgeChallenges deletes the started sign-in ceremonies and pending
// TOTP re-enrolments that expired; the server runs it with
// PurgeSessions (an expired one is refused whether or not it was purged).
func (s *Service) PurgeChallenges(ctx context.Context) (int, error) {
	return s.opts.Store.PurgeChallenges(ctx, s.now())
}

// createSession signs a browser in: with a password (Basic) or an OIDC
// authorization code, never with a token or another session.
func (s *Service) createSession(w http.ResponseWriter, r *http.Request) {
	const action = "session.create"
	var req SessionRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, action, "", err.Error())
		return
	}
	var (
		p   *Principal
		err error
	)
	switch {
	case req.OIDC != nil:
		if r.Header.Get("Authorization") != "" {
			s.invalid(w, r, action, "", "sign in with an OIDC code or with a password, not both")
			return
		}
		p, err = s.oidcCode(r, *req.OIDC)
		if err != nil {
			s.failed(r, err)
		}
	default:
		// A password sign-in posted from another site would sign the
		// browser in as someone else. (An OIDC sign-in is bound to the
		// browser by its state, nonce and PKCE verifier instead: it
		// comes back from the issuer, another site.)
		if err := crossOrigin.Check(r); err != nil {
			s.refuse(w, r, action, "", &csrfError{reason: "refused a cross-origin sign-in: " + err.Error()})
			return
		}
		if _, _, ok := r.BasicAuth(); !ok {
			s.refuse(w, r, action, "", fmt.Errorf("%w: sign in with a user name and password", registry.ErrUnauthenticated))
			return
		}
		p, err = s.Authenticate(r)
		if err == nil && p.Method != "password" {
			err = &authError{subject: p.Subject, method: p.Method, reason: "a browser signs in with a password or OIDC, not with a token"}
			s.failed(r, err)
		}
		if err == nil && req.WebAuthn != nil {
			if err = s.verifyKey(r.Context(), r, p.Subject, *req.WebAuthn); err == nil {
				p.Factor, p.FactorAt = FactorWebAuthn, s.now()
			} else {
				s.failed(r, err)
			}
		}
		if err == nil && p.Factor == "" {
			// An account with a second factor signs in with it; one whose
			// role requires one but has none yet may sign in to enrol.
			if on, ferr := s.enrolled(r.Context(), p.Subject); ferr != nil {
				err = ferr
			} else if on {
				err = fmt.Errorf("%w: %s has a second factor: sign in with your one-time code too", veto.ErrMFARequired, p.Subject)
			}
		}
	}
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	now := s.now()
	secret := randomToken()
	se := account.Session{Hash: sessionHash(secret), Subject: p.Subject, CSRF: randomToken(), Created: now, LastSeen: now}
	if p.Method == "password" {
		se.Method, se.Factor = MethodSession, p.Factor
		if p.Factor != "" {
			se.FactorAt = p.FactorAt
		}
	} else {
		se.Method, se.Groups, se.Scopes = MethodSessionOIDC, p.Groups, p.oidcGrants
	}
	if err := s.opts.Store.PutSession(r.Context(), se); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing a session", err)
		return
	}
	// Signing in again replaces the browser's session: the one its cookie
	// held until now ends, so no earlier session ID outlives a sign-in.
	if old, ok := s.sessionCookie(r); ok {
		s.endSession(r.Context(), sessionHash(old))
	}
	r = r.WithContext(identity.With(r.Context(), identity.Identity{Subject: p.Subject, Method: p.Auth()}))
	s.ok(r, action, "", "signed in to the web interface with "+p.Method)
	problem.JSON(w, http.StatusCreated, CreatedSession{Secret: secret, Subject: p.Subject, Method: se.Method, CSRF: se.CSRF,
		Expires: now.Add(s.opts.SessionAbsolute), MaxAge: int(s.opts.SessionAbsolute / time.Second)})
}

// deleteSession signs the caller's session out.
func (s *Service) deleteSession(w http.ResponseWriter, r *http.Request) {
	const action = "session.delete"
	p, err := s.Authenticate(r)
	if err != nil {
		s.refuse(w, r, action, "", err)
		return
	}
	r = r.WithContext(WithPrincipal(identity.With(r.Context(), identityOf(p)), p))
	if p.session == nil {
		s.refuse(w, r, action, "", fmt.Errorf("%w: the request came with no session to end", registry.ErrUnauthenticated))
		return
	}
	if err := s.opts.Store.DeleteSession(r.Context(), p.session.Hash); err != nil && !errors.Is(err, account.ErrNotFound) {
		problem.Fail(w, r, s.opts.Log, "ending a session", err)
		return
	}
	s.ok(r, action, "", "signed out of the web interface")
	w.WriteHeader(http.StatusNoContent)
}
