package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
)

// WebAuthn second factors (security keys, passkeys; go-webauthn) for local
// accounts, in the web interface (docs/security.md). The relying party ID
// and origin are the server's external URL (Options.WebURL, web.url). A
// ceremony starts with a challenge the server keeps for a few minutes and
// ends with the browser's answer to it:
//
//	POST   /api/v1/mfa/webauthn            {"name"}: start registering a key (answers the creation options)
//	POST   /api/v1/mfa/webauthn/confirm    {"ceremony","credential"}: finish it
//	DELETE /api/v1/mfa/webauthn/{id}       remove a key (needs a step-up)
//	POST   /api/v1/mfa/webauthn/challenge  a challenge for the caller's keys (sign-in: with the password; step-up: with the session)
//
// The answer to a challenge goes with the password to POST
// /api/v1/sessions, or to POST /api/v1/sessions/current/step-up, as
// {"webauthn": {"ceremony","credential"}}. Each use must raise the key's
// signature counter (account.FactorStore.UseWebAuthnKey).

// FactorWebAuthn is the factor a security key or passkey presents, as it
// appears in the audit log's auth field ("session+webauthn").
const FactorWebAuthn = "webauthn"

// ceremonyLife is how long a started registration or sign-in waits for
// the browser's answer.
const ceremonyLife = 5 * time.Minute

// WebAuthnAssertion is a browser's answer to a challenge: the ceremony it
// answers and the PublicKeyCredential as JSON (its toJSON()).
type WebAuthnAssertion struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

// WebAuthnStart is the answer that starts a ceremony: its ID and the
// options for navigator.credentials.create or .get (the publicKey member,
// as PublicKeyCredential.parseCreationOptionsFromJSON and
// parseRequestOptionsFromJSON read it).
type WebAuthnStart struct {
	Ceremony  string `json:"ceremony"`
	PublicKey any    `json:"publicKey"`
}

// WebAuthnKeyRequest is the body of POST /api/v1/mfa/webauthn.
type WebAuthnKeyRequest struct {
	Name string `json:"name"`
}

// WebAuthnKeyView is a registered key as the API shows it.
type WebAuthnKeyView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
}

// Ceremony kinds in the store (account.Challenge.Kind).
const (
	kindKeyRegister = "webauthn.register"
	kindKeySignIn   = "webauthn.login"
)

// ceremony is a started registration or sign-in awaiting its answer, as
// the store keeps it (account.Challenge.Data, JSON): in the shared
// metadata store, so a replica other than the one that started it can
// finish it, once.
type ceremony struct {
	Name string               `json:"name,omitempty"`
	Data webauthn.SessionData `json:"data"`
}

// putCeremony stores a started ceremony of user and returns its ID.
func (s *Service) putCeremony(ctx context.Context, user string, register bool, cer ceremony) (string, error) {
	data, err := json.Marshal(cer)
	if err != nil {
		return "", err
	}
	id := randomToken()
	err = s.opts.Store.PutChallenge(ctx, account.Challenge{Kind: ceremonyKind(register), Key: id, User: user, Data: data, Expires: s.now().Add(ceremonyLife)})
	return id, err
}

// takeCeremony removes and returns the ceremony id of user, if it is
// still on; found is false for an unknown, expired, finished or another
// user's ceremony.
func (s *Service) takeCeremony(ctx context.Context, id, user string, register bool) (cer ceremony, found bool, err error) {
	c, err := s.opts.Store.TakeChallenge(ctx, ceremonyKind(register), id, user, s.now())
	if errors.Is(err, account.ErrNotFound) {
		return ceremony{}, false, nil
	}
	if err != nil {
		return ceremony{}, false, fmt.Errorf("reading the started ceremony: %w", err)
	}
	if err := json.Unmarshal(c.Data, &cer); err != nil {
		return ceremony{}, false, fmt.Errorf("the started ceremony: %w", err)
	}
	return cer, true, nil
}

func ceremonyKind(register bool) string {
	if register {
		return kindKeyRegister
	}
	return kindKeySignIn
}

// newRelyingParty returns the WebAuthn verifier for the external URL
// webURL, or nil when there is none.
func newRelyingParty(webURL, name string) (*webauthn.WebAuthn, error) {
	if webURL == "" {
		return nil, nil
	}
	u, err := url.Parse(webURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("web URL %q: not an origin", webURL)
	}
	origin := u.Scheme + "://" + u.Host
	return webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: name,
		RPOrigins:     []string{origin},
	})
}

// keyUser is a local account as the WebAuthn verifier sees it.
type keyUser struct {
	name  string
	creds []webauthn.Credential
}

// WebAuthnID is the user handle: a hash of the account name (custody
// offers keys as a second factor, never discoverable sign-in, so the
// handle only binds a credential to its account).
func (u keyUser) WebAuthnID() []byte {
	sum := sha256.Sum256([]byte("custody-webauthn-user\x00" + u.name))
	return sum[:]
}
func (u keyUser) WebAuthnName() string                       { return u.name }
func (u keyUser) WebAuthnDisplayName() string                { return u.name }
func (u keyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// keysOf returns user's stored keys and the verifier's view of them.
func (s *Service) keysOf(ctx context.Context, user string) ([]account.WebAuthnKey, keyUser, error) {
	keys, err := s.opts.Store.WebAuthnKeys(ctx, user)
	if err != nil {
		return nil, keyUser{}, fmt.Errorf("reading the security keys: %w", err)
	}
	ku := keyUser{name: user}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Record, &c); err != nil {
			return nil, keyUser{}, fmt.Errorf("security key %s of %s: %w", k.ID, user, err)
		}
		c.Authenticator.SignCount = k.SignCount
		ku.creds = append(ku.creds, c)
	}
	return keys, ku, nil
}

// relyingParty answers webauthn-unavailable when the server has no
// external URL, and returns false.
func (s *Service) relyingParty(w http.ResponseWriter, r *http.Request, action string) bool {
	if s.rp != nil {
		return true
	}
	s.opts.Auditor.Record(r.Context(), audit.Event{Action: action, Result: "invalid", Reason: "no web.url", Request: r})
	problem.Write(w, problem.WebAuthnUnavailable, "security keys need the web interface's external URL: set web.url (CUSTODY_WEB_URL)")
	return false
}

// startKey starts registering a security key or passkey of the caller.
// Adding one to an account with a factor needs a step-up, as replacing
// the TOTP secret does.
func (s *Service) startKey(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.webauthn.register"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok || !s.relyingParty(w, r, action) {
		return
	}
	var req WebAuthnKeyRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, action, "", err.Error())
		return
	}
	if req.Name = strings.TrimSpace(req.Name); req.Name == "" || len(req.Name) > 64 || strings.ContainsFunc(req.Name, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		s.invalid(w, r, action, "", "a security key needs a name of at most 64 printable characters")
		return
	}
	on, err := s.enrolled(r.Context(), p.Subject)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the second factors", err)
		return
	}
	if on && !s.RequireStepUp(w, r, action, "", "adding a security key") {
		return
	}
	_, ku, err := s.keysOf(r.Context(), p.Subject)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the security keys", err)
		return
	}
	creation, data, err := s.rp.BeginRegistration(ku,
		webauthn.WithExclusions(webauthn.Credentials(ku.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementDiscouraged),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementDiscouraged, UserVerification: protocol.VerificationDiscouraged}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "starting a security key registration", err)
		return
	}
	id, err := s.putCeremony(r.Context(), p.Subject, true, ceremony{Name: req.Name, Data: *data})
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "storing a started security key registration", err)
		return
	}
	problem.JSON(w, http.StatusCreated, WebAuthnStart{Ceremony: id, PublicKey: creation.Response})
}

// confirmKey finishes a registration with the browser's new credential.
func (s *Service) confirmKey(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.webauthn.register"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok || !s.relyingParty(w, r, action) {
		return
	}
	var req WebAuthnAssertion
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, action, "", err.Error())
		return
	}
	cer, found, err := s.takeCeremony(r.Context(), req.Ceremony, p.Subject, true)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading a started security key registration", err)
		return
	}
	if !found {
		s.invalid(w, r, action, "", "no security key registration was started, or it expired: start again")
		return
	}
	_, ku, err := s.keysOf(r.Context(), p.Subject)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the security keys", err)
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	var cred *webauthn.Credential
	if err == nil {
		cred, err = s.rp.CreateCredential(ku, cer.Data, parsed)
	}
	if err != nil {
		s.invalid(w, r, action, "", "the security key's answer did not verify: "+webauthnReason(err))
		return
	}
	record, err := json.Marshal(cred)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "encoding a security key", err)
		return
	}
	now := s.now().UTC()
	k := account.WebAuthnKey{User: p.Subject, ID: base64.RawURLEncoding.EncodeToString(cred.ID), Name: cer.Name, Record: record,
		SignCount: cred.Authenticator.SignCount, Created: now}
	switch err := s.opts.Store.PutWebAuthnKey(r.Context(), k); {
	case errors.Is(err, account.ErrExists):
		s.invalid(w, r, action, "", "this security key is registered already")
		return
	case err != nil:
		problem.Fail(w, r, s.opts.Log, "storing a security key", err)
		return
	}
	// Registering proved holding the key: it counts as presenting it.
	if p.session != nil {
		if err := s.opts.Store.StepUpSession(r.Context(), p.session.Hash, FactorWebAuthn, now); err != nil && !errors.Is(err, account.ErrNotFound) {
			s.opts.Log.Warn("recording the session's second factor failed", "err", err)
		}
	}
	p.Factor, p.FactorAt = FactorWebAuthn, now
	r = r.WithContext(identity.With(r.Context(), identityOf(p)))
	s.ok(r, action, "", fmt.Sprintf("registered security key %s (%s)", k.ID, k.Name))
	problem.JSON(w, http.StatusCreated, WebAuthnKeyView{ID: k.ID, Name: k.Name, Created: k.Created})
}

// deleteKey removes one of the caller's keys, with a step-up.
func (s *Service) deleteKey(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.webauthn.delete"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok || !s.RequireStepUp(w, r, action, "", "removing a security key") {
		return
	}
	id := r.PathValue("id")
	switch err := s.opts.Store.DeleteWebAuthnKey(r.Context(), p.Subject, id); {
	case errors.Is(err, account.ErrNotFound):
		s.invalid(w, r, action, "", "no security key "+id+" of "+p.Subject)
		return
	case err != nil:
		problem.Fail(w, r, s.opts.Log, "removing a security key", err)
		return
	}
	s.ok(r, action, "", "removed security key "+id)
	w.WriteHeader(http.StatusNoContent)
}

// keyChallenge starts a sign-in or step-up with one of the caller's keys.
// Its caller proved the password (or holds a session): the answer goes
// with it to POST /api/v1/sessions or to the session's step-up.
func (s *Service) keyChallenge(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.webauthn.challenge"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok || !s.relyingParty(w, r, action) {
		return
	}
	_, ku, err := s.keysOf(r.Context(), p.Subject)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the security keys", err)
		return
	}
	if len(ku.creds) == 0 {
		s.invalid(w, r, action, "", p.Subject+" has no security key registered")
		return
	}
	assertion, data, err := s.rp.BeginLogin(ku, webauthn.WithUserVerification(protocol.VerificationDiscouraged))
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "starting a security key sign-in", err)
		return
	}
	id, err := s.putCeremony(r.Context(), p.Subject, false, ceremony{Data: *data})
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "storing a started security key sign-in", err)
		return
	}
	problem.JSON(w, http.StatusCreated, WebAuthnStart{Ceremony: id, PublicKey: assertion.Response})
}

// verifyKey checks a's answer to a challenge for user: the ceremony this
// server started for user, a registered key's signature over it, from
// the configured origin, and a signature counter above the stored one
// (raised atomically: the same answer never counts twice, and a cloned
// key's lagging counter is refused). Failures count against the account
// as wrong one-time codes do.
func (s *Service) verifyKey(ctx context.Context, r *http.Request, user string, a WebAuthnAssertion) error {
	if s.rp == nil {
		return fmt.Errorf("%w: security keys need web.url", registry.ErrDenied)
	}
	if wait := s.otpLimiter.attempt(user); wait > 0 {
		return factorError(user, "too many failed second factors for "+user+"; try again later", wait)
	}
	err := s.checkKey(ctx, user, a)
	if err == nil {
		s.otpLimiter.succeed(user)
	}
	return err
}

func (s *Service) checkKey(ctx context.Context, user string, a WebAuthnAssertion) error {
	cer, found, err := s.takeCeremony(ctx, a.Ceremony, user, false)
	if err != nil {
		return err
	}
	if !found {
		return factorError(user, "no security key sign-in was started for "+user+", or it expired: start again", 0)
	}
	keys, ku, err := s.keysOf(ctx, user)
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(a.Credential)
	var cred *webauthn.Credential
	if err == nil {
		cred, err = s.rp.ValidateLogin(ku, cer.Data, parsed)
	}
	if err != nil {
		return factorError(user, "the security key's answer did not verify: "+webauthnReason(err), 0)
	}
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	if cred.Authenticator.CloneWarning {
		return factorError(user, "security key "+id+" sent a signature counter that did not rise: a copy of the key may exist", 0)
	}
	known := false
	for _, k := range keys {
		known = known || k.ID == id
	}
	if !known {
		return factorError(user, "unknown security key", 0)
	}
	switch err := s.opts.Store.UseWebAuthnKey(ctx, user, id, cred.Authenticator.SignCount, s.now().UTC()); {
	case errors.Is(err, account.ErrReplayed):
		return factorError(user, "security key "+id+" sent a signature counter that did not rise: a copy of the key may exist", 0)
	case errors.Is(err, account.ErrNotFound):
		return factorError(user, "unknown security key", 0)
	case err != nil:
		return fmt.Errorf("recording the security key's use: %w", err)
	}
	return nil
}

// webauthnReason is what a verification failure says: go-webauthn's
// protocol errors carry their detail apart from their type.
func webauthnReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return err.Error()
}

// keyViews lists keys for the API.
func keyViews(keys []account.WebAuthnKey) []WebAuthnKeyView {
	out := []WebAuthnKeyView{}
	for _, k := range keys {
		out = append(out, WebAuthnKeyView{ID: k.ID, Name: k.Name, Created: k.Created, LastUsed: k.LastUsed})
	}
	return out
}
