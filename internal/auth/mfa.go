package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/veto"
)

// Multi-factor sign-in (docs/security.md, "Multi-factor sign-in"). Local
// accounts enrol a TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s steps)
// and get ten one-time recovery codes, of which only hashes are kept. A
// request presents the second factor in OTPHeader beside its password, or
// a browser session records it at sign-in and on step-up. The API:
//
//	GET    /api/v1/mfa                  the caller's factors (never the secret)
//	POST   /api/v1/mfa/totp             start enrolment: a new secret and its otpauth:// URL
//	POST   /api/v1/mfa/totp/confirm     {"code"}: finish it; answers the recovery codes
//	DELETE /api/v1/mfa[?user=NAME]      remove the factors (own: needs a fresh code; admin: anyone's)
//	POST   /api/v1/sessions/current/step-up   {"code"}: record a fresh factor in the session
//
// API tokens and OIDC identities are machine credentials: neither the
// policy nor step-up applies to them (creating a token does). A sign-in
// token (custody login, Token.SignIn) stands for a password and its second
// factor: step-up applies to it, with a code in OTPHeader.

// OTPHeader carries a one-time code (TOTP or recovery code) beside a
// password.
const OTPHeader = "X-Custody-OTP"

// The second factors, as they appear in the audit log's auth field after
// the first ("password+totp").
const (
	FactorTOTP     = "totp"
	FactorRecovery = "recovery"
)

// totpOpts are the TOTP parameters every authenticator app supports.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// recoveryCodes is how many recovery codes an enrolment gives.
const recoveryCodes = 10

// codeKind is what a presented code looks like.
type codeKind int

const (
	codeTOTP codeKind = iota + 1
	codeRecovery
)

// parseCode normalises a presented one-time code: six digits are a TOTP
// code; a recovery code is 16 letters or digits of the base32 alphabet,
// with any dashes or spaces (the form shown: xxxx-xxxx-xxxx-xxxx), any case.
func parseCode(s string) (codeKind, string, error) {
	if len(s) > 64 {
		return 0, "", errors.New("a one-time code is six digits or a recovery code")
	}
	var b strings.Builder
	for _, c := range strings.TrimSpace(s) {
		switch {
		case c == '-' || c == ' ':
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z':
			b.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			b.WriteRune(c + ('a' - 'A'))
		default:
			return 0, "", errors.New("a one-time code is six digits or a recovery code")
		}
	}
	n := b.String()
	switch {
	case len(n) == 6 && strings.Trim(n, "0123456789") == "":
		return codeTOTP, n, nil
	case len(n) == 16 && strings.Trim(n, "abcdefghijklmnopqrstuvwxyz234567") == "":
		return codeRecovery, n, nil
	}
	return 0, "", errors.New("a one-time code is six digits or a recovery code")
}

// recoveryHash is the stored form of a normalised recovery code.
func recoveryHash(code string) string {
	sum := sha256.Sum256([]byte("custody-recovery\x00" + code))
	return hex.EncodeToString(sum[:])
}

// newRecoveryCodes returns fresh recovery codes as shown to the user and
// their hashes.
func newRecoveryCodes() (codes, hashes []string) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range recoveryCodes {
		var b [10]byte
		_, _ = rand.Read(b[:])
		c := strings.ToLower(enc.EncodeToString(b[:]))
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, recoveryHash(c))
	}
	return codes, hashes
}

// interactive reports whether p is a person signed in with a local
// password (directly or through a browser session): the callers the MFA
// policy and step-up apply to.
func (p *Principal) interactive() bool {
	if p == nil || p.jwt {
		return false
	}
	if p.TokenID != "" {
		return p.signInToken
	}
	return p.Method == "password" || p.Method == MethodSession
}

// Auth is how p authenticated, with its second factor: "password",
// "password+totp", "session+recovery", "token". The audit log's auth field.
func (p *Principal) Auth() string {
	if p.Factor == "" {
		return p.Method
	}
	return p.Method + "+" + p.Factor
}

// identityOf is the audit identity of p.
func identityOf(p *Principal) identity.Identity {
	return identity.Identity{Subject: p.Subject, Method: p.Auth()}
}

// factorError is a wrong, replayed or rate-limited one-time code.
func factorError(user, reason string, limited time.Duration) error {
	return &authError{subject: user, method: "password", reason: reason, limited: limited}
}

// verifyCode checks a one-time code of user: a TOTP code of the current
// time step (each step's code works once) or an unused recovery code
// (used up). Failures count against the account, apart from passwords.
func (s *Service) verifyCode(ctx context.Context, r *http.Request, user, code string) (string, error) {
	if wait := s.otpLimiter.attempt(user); wait > 0 {
		return "", factorError(user, "too many wrong one-time codes for "+user+"; try again later", wait)
	}
	factor, err := s.checkCode(ctx, user, code)
	if err != nil {
		return "", err // counted by attempt
	}
	s.otpLimiter.succeed(user)
	return factor, nil
}

func (s *Service) checkCode(ctx context.Context, user, code string) (string, error) {
	kind, norm, err := parseCode(code)
	if err != nil {
		return "", factorError(user, err.Error(), 0)
	}
	f, err := s.opts.Store.GetFactors(ctx, user)
	if errors.Is(err, account.ErrNotFound) || (err == nil && !f.TOTPConfirmed) {
		return "", factorError(user, user+" has no second factor enrolled (custody mfa enrol)", 0)
	}
	if err != nil {
		return "", fmt.Errorf("reading the second factors: %w", err)
	}
	if kind == codeRecovery {
		switch err := s.opts.Store.UseRecoveryCode(ctx, user, recoveryHash(norm)); {
		case errors.Is(err, account.ErrNotFound):
			return "", factorError(user, "wrong or used recovery code", 0)
		case err != nil:
			return "", fmt.Errorf("using a recovery code: %w", err)
		}
		return FactorRecovery, nil
	}
	step, ok := s.totpStep(f.TOTPSecret, norm)
	if !ok {
		return "", factorError(user, "wrong or expired one-time code", 0)
	}
	switch err := s.opts.Store.ClaimTOTPStep(ctx, user, step); {
	case errors.Is(err, account.ErrReplayed):
		return "", factorError(user, "that one-time code was used already; wait for the next one", 0)
	case err != nil:
		return "", fmt.Errorf("recording the one-time code: %w", err)
	}
	return FactorTOTP, nil
}

// totpStep returns the time step whose code code is: the current one or
// its neighbours (clock drift of up to 30 s either way).
func (s *Service) totpStep(secret, code string) (int64, bool) {
	now := s.now().Unix() / 30
	for _, step := range []int64{now, now - 1, now + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*30, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// enrolled reports whether user completed a TOTP enrolment or registered
// a security key.
func (s *Service) enrolled(ctx context.Context, user string) (bool, error) {
	f, err := s.opts.Store.GetFactors(ctx, user)
	switch {
	case err == nil && f.TOTPConfirmed:
		return true, nil
	case err != nil && !errors.Is(err, account.ErrNotFound):
		return false, err
	}
	keys, err := s.opts.Store.WebAuthnKeys(ctx, user)
	return len(keys) > 0, err
}

// requiringRole returns the first of p's roles the policy requires a
// second factor for, or "".
func (s *Service) requiringRole(p *Principal) Role {
	for _, sc := range p.scopes {
		if slices.Contains(s.opts.MFARoles, sc.Role) {
			return sc.Role
		}
	}
	return ""
}

// applyPolicy decides whether an interactive principal without a second
// factor may act: not when its account enrolled one (the code belongs with
// the password), nor when one of its roles requires one. It may still see
// whoami and enrol (that is how the first admin starts).
func (s *Service) applyPolicy(ctx context.Context, p *Principal) error {
	if !p.interactive() {
		return nil
	}
	if p.Factor != "" || p.TokenID != "" {
		// A sign-in token was created with the factor.
		p.mfaApplies = true
		return nil
	}
	on, err := s.enrolled(ctx, p.Subject)
	if err != nil {
		return fmt.Errorf("reading the second factors: %w", err)
	}
	role := s.requiringRole(p)
	p.mfaApplies = on || role != ""
	switch {
	case on:
		p.mfaMissing = "sign in with your one-time code too (" + OTPHeader + ", custody login)"
	case role != "":
		p.mfaMissing = fmt.Sprintf("the %s role requires a second factor: enrol one first (custody mfa enrol, or Account in the web interface)", role)
	}
	return nil
}

// mfaDenial is the refusal of a principal the policy stops.
func (p *Principal) mfaDenial() error {
	return fmt.Errorf("%w: %s signed in without a second factor: %s", veto.ErrMFARequired, p.Subject, p.mfaMissing)
}

// stepUp refuses a dangerous action of an interactive principal whose
// latest second factor is older than the step-up window. Machine
// credentials (API tokens, OIDC identities) pass, and so do accounts
// without a factor whose roles the policy does not name. This is the one step-up
// decision: every dangerous action asks it, through RequireStepUp or
// CanBypassGovernance.
func (s *Service) stepUp(p *Principal, doing string) error {
	if p == nil || !p.interactive() || !p.mfaApplies {
		// A machine credential, or an account without a factor that no
		// policy requires one of: nothing to step up with.
		return nil
	}
	if p.Factor != "" && s.now().Sub(p.FactorAt) <= s.opts.StepUpWindow {
		return nil
	}
	if p.signInToken && s.now().Sub(p.signedInAt) <= s.opts.StepUpWindow {
		// custody login presented a code when it made the token: its first
		// minutes count, as a browser session's do after signing in.
		return nil
	}
	return fmt.Errorf("%w: %s needs a second factor presented within the last %s (send a fresh code in %s, or step up in the web interface)",
		veto.ErrStepUpRequired, doing, s.opts.StepUpWindow, OTPHeader)
}

// RequireStepUp refuses (answering the step-up-required problem and
// auditing it as action) a dangerous action of the caller r was
// authenticated for (by Require) unless it presented a second factor
// recently. doing describes the action for the refusal.
func (s *Service) RequireStepUp(w http.ResponseWriter, r *http.Request, action, repo, doing string) bool {
	if err := s.stepUp(PrincipalFrom(r.Context()), doing); err != nil {
		s.refuse(w, r, action, repo, err)
		return false
	}
	return true
}

// StepUp reports whether the caller in ctx may do a dangerous action now
// (nil), or the step-up-required refusal: for handlers that answer their
// refusals themselves.
func (s *Service) StepUp(ctx context.Context, doing string) error {
	return s.stepUp(PrincipalFrom(ctx), doing)
}

// FactorsView is the answer of GET /api/v1/mfa: what the caller enrolled,
// never the secret.
type FactorsView struct {
	User string `json:"user"`
	TOTP bool   `json:"totp"`
	// Pending: an enrolment was started and awaits its first code.
	Pending bool `json:"pending,omitempty"`
	// RecoveryCodes is how many unused recovery codes are left.
	RecoveryCodes int `json:"recoveryCodes"`
	// Required names the role that requires a second factor, if any.
	Required string `json:"required,omitempty"`
	// WebAuthn lists the registered security keys and passkeys.
	WebAuthn []WebAuthnKeyView `json:"webauthn"`
	// WebAuthnAvailable: the server offers security keys (web.url is set).
	WebAuthnAvailable bool `json:"webauthnAvailable"`
}

// TOTPEnrolment is the answer of POST /api/v1/mfa/totp: the only time the
// secret is shown.
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	// URL is the otpauth:// URL authenticator apps read (as a QR code).
	URL string `json:"url"`
}

// CodeRequest is the body of POST /api/v1/mfa/totp/confirm and of
// step-up (which takes a code or a security key's answer).
type CodeRequest struct {
	Code     string             `json:"code,omitempty"`
	WebAuthn *WebAuthnAssertion `json:"webauthn,omitempty"`
}

// RecoveryCodes is the answer of a confirmed enrolment: the only time the
// recovery codes are shown.
type RecoveryCodes struct {
	Codes []string `json:"recoveryCodes"`
}

// mfaUser is the caller of an enrolment endpoint: a local account signed
// in with its password (not a token, not OIDC). The MFA policy does not
// stop it: enrolling is how a caller satisfies it.
func (s *Service) mfaUser(w http.ResponseWriter, r *http.Request, action string) (*http.Request, *Principal, bool) {
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
	if !p.interactive() {
		s.refuse(w, r, action, "", fmt.Errorf("%w: second factors belong to local accounts signed in with their password, not to tokens or OIDC identities", registry.ErrDenied))
		return r, nil, false
	}
	return r, p, true
}

func (s *Service) getFactors(w http.ResponseWriter, r *http.Request) {
	r, p, ok := s.mfaUser(w, r, "mfa.read")
	if !ok {
		return
	}
	v := FactorsView{User: p.Subject, Required: string(s.requiringRole(p)), WebAuthnAvailable: s.rp != nil}
	keys, err := s.opts.Store.WebAuthnKeys(r.Context(), p.Subject)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the security keys", err)
		return
	}
	v.WebAuthn = keyViews(keys)
	f, err := s.opts.Store.GetFactors(r.Context(), p.Subject)
	switch {
	case errors.Is(err, account.ErrNotFound):
	case err != nil:
		problem.Fail(w, r, s.opts.Log, "reading the second factors", err)
		return
	default:
		v.TOTP, v.Pending, v.RecoveryCodes = f.TOTPConfirmed, !f.TOTPConfirmed, len(f.RecoveryHashes)
	}
	problem.JSON(w, http.StatusOK, v)
}

// startTOTP starts an enrolment: a new secret, not yet counting as a
// factor. Replacing a confirmed one needs a fresh code of the old.
func (s *Service) startTOTP(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.enrol"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok {
		return
	}
	on, err := s.enrolled(r.Context(), p.Subject)
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the second factors", err)
		return
	}
	if on && !s.RequireStepUp(w, r, action, "", "changing the second factors of an enrolled account") {
		return
	}
	// A confirmed TOTP keeps working until its replacement is confirmed;
	// without one (no factor, or security keys only) the new secret is
	// stored unconfirmed, which counts for nothing until confirmed.
	hasTOTP := false
	if f, err := s.opts.Store.GetFactors(r.Context(), p.Subject); err == nil {
		hasTOTP = f.TOTPConfirmed
	} else if !errors.Is(err, account.ErrNotFound) {
		problem.Fail(w, r, s.opts.Log, "reading the second factors", err)
		return
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Service, AccountName: p.Subject, Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "generating a TOTP secret", err)
		return
	}
	if hasTOTP {
		// The old secret keeps working until the new one is confirmed:
		// the pending secret waits beside it.
		if err := s.opts.Store.PutChallenge(r.Context(), account.Challenge{Kind: kindTOTPPending, Key: p.Subject, User: p.Subject,
			Data: []byte(key.Secret()), Expires: s.now().Add(pendingTOTPLife)}); err != nil {
			problem.Fail(w, r, s.opts.Log, "storing the pending second factor", err)
			return
		}
	} else if err := s.opts.Store.PutFactors(r.Context(), account.Factors{User: p.Subject, TOTPSecret: key.Secret(), Updated: s.now().UTC()}); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the second factor", err)
		return
	}
	s.ok(r, action, "", "started a TOTP enrolment")
	problem.JSON(w, http.StatusCreated, TOTPEnrolment{Secret: key.Secret(), URL: key.URL()})
}

// confirmTOTP finishes an enrolment with a code of the new secret and
// answers fresh recovery codes (the old ones stop working).
func (s *Service) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.confirm"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok {
		return
	}
	var req CodeRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, action, "", err.Error())
		return
	}
	ctx := r.Context()
	f, err := s.opts.Store.GetFactors(ctx, p.Subject)
	if errors.Is(err, account.ErrNotFound) {
		s.invalid(w, r, action, "", "no TOTP enrolment was started (POST /api/v1/mfa/totp, custody mfa enrol)")
		return
	}
	if err != nil {
		problem.Fail(w, r, s.opts.Log, "reading the second factors", err)
		return
	}
	secret := f.TOTPSecret
	if f.TOTPConfirmed {
		pt, err := s.opts.Store.GetChallenge(ctx, kindTOTPPending, p.Subject, p.Subject, s.now())
		if errors.Is(err, account.ErrNotFound) {
			s.invalid(w, r, action, "", "no TOTP enrolment was started, or it expired (start again)")
			return
		}
		if err != nil {
			problem.Fail(w, r, s.opts.Log, "reading the pending second factor", err)
			return
		}
		secret = string(pt.Data)
	}
	if wait := s.otpLimiter.attempt(p.Subject); wait > 0 {
		s.refuse(w, r, action, "", factorError(p.Subject, "too many wrong one-time codes for "+p.Subject+"; try again later", wait))
		return
	}
	kind, norm, err := parseCode(req.Code)
	step, match := int64(0), false
	if err == nil && kind == codeTOTP {
		step, match = s.totpStep(secret, norm)
	}
	if !match {
		s.refuse(w, r, action, "", factorError(p.Subject, "wrong or expired one-time code for the new secret", 0))
		return
	}
	if f.TOTPConfirmed {
		// The pending secret is confirmed once: of two confirmations at
		// once (on any replicas) one takes it, the other is refused.
		taken, err := s.opts.Store.TakeChallenge(ctx, kindTOTPPending, p.Subject, p.Subject, s.now())
		switch {
		case errors.Is(err, account.ErrNotFound):
			s.invalid(w, r, action, "", "no TOTP enrolment was started, or it expired or was confirmed already (start again)")
			return
		case err != nil:
			problem.Fail(w, r, s.opts.Log, "reading the pending second factor", err)
			return
		case string(taken.Data) != secret:
			// Started again meanwhile: that enrolment waits on.
			if err := s.opts.Store.PutChallenge(ctx, taken); err != nil {
				problem.Fail(w, r, s.opts.Log, "storing the pending second factor", err)
				return
			}
			s.invalid(w, r, action, "", "the TOTP enrolment was started again: confirm with a code of the newest secret")
			return
		}
	}
	codes, hashes := newRecoveryCodes()
	now := s.now().UTC()
	if err := s.opts.Store.PutFactors(ctx, account.Factors{User: p.Subject, TOTPSecret: secret, TOTPConfirmed: true, RecoveryHashes: hashes, Updated: now}); err != nil {
		problem.Fail(w, r, s.opts.Log, "storing the second factor", err)
		return
	}
	if err := s.opts.Store.ClaimTOTPStep(ctx, p.Subject, step); err != nil && !errors.Is(err, account.ErrReplayed) {
		problem.Fail(w, r, s.opts.Log, "recording the one-time code", err)
		return
	}
	s.otpLimiter.succeed(p.Subject)
	if p.session != nil {
		if err := s.opts.Store.StepUpSession(ctx, p.session.Hash, FactorTOTP, now); err != nil && !errors.Is(err, account.ErrNotFound) {
			s.opts.Log.Warn("recording the session's second factor failed", "err", err)
		}
	}
	p.Factor, p.FactorAt = FactorTOTP, now
	r = r.WithContext(identity.With(ctx, identityOf(p)))
	s.ok(r, action, "", fmt.Sprintf("enrolled TOTP with %d recovery codes", len(codes)))
	problem.JSON(w, http.StatusOK, RecoveryCodes{Codes: codes})
}

// deleteFactors removes a user's factors: the caller's own with a fresh
// code, or (admin) another's, for one who lost its device and codes.
func (s *Service) deleteFactors(w http.ResponseWriter, r *http.Request) {
	const action = "mfa.delete"
	user := r.URL.Query().Get("user")
	var (
		p  *Principal
		ok bool
	)
	if user == "" {
		if r, p, ok = s.mfaUser(w, r, action); !ok {
			return
		}
		user = p.Subject
	} else if r, _, ok = s.Require(w, r, action, "", PermAdmin); !ok {
		return
	}
	if !s.RequireStepUp(w, r, action, "", "removing second factors") {
		return
	}
	switch err := s.opts.Store.DeleteFactors(r.Context(), user); {
	case errors.Is(err, account.ErrNotFound):
		s.opts.Auditor.Record(r.Context(), audit.Event{Action: action, Result: "invalid", Reason: "no second factors of " + user, Request: r})
		problem.Write(w, problem.NotFound, user+" has no second factor enrolled")
		return
	case err != nil:
		problem.Fail(w, r, s.opts.Log, "removing the second factors", err)
		return
	}
	s.ok(r, action, "", "removed the second factors of "+user)
	w.WriteHeader(http.StatusNoContent)
}

// stepUpSession records a fresh second factor in the caller's session.
func (s *Service) stepUpSession(w http.ResponseWriter, r *http.Request) {
	const action = "session.step-up"
	r, p, ok := s.mfaUser(w, r, action)
	if !ok {
		return
	}
	if p.session == nil {
		s.refuse(w, r, action, "", fmt.Errorf("%w: the request came with no session; send the code in %s with the password instead", registry.ErrUnauthenticated, OTPHeader))
		return
	}
	var req CodeRequest
	if err := decode(r, w, &req); err != nil {
		s.invalid(w, r, action, "", err.Error())
		return
	}
	var (
		factor string
		err    error
	)
	if req.WebAuthn != nil {
		factor, err = FactorWebAuthn, s.verifyKey(r.Context(), r, p.Subject, *req.WebAuthn)
	} else {
		factor, err = s.verifyCode(r.Context(), r, p.Subject, req.Code)
	}
	if err != nil {
		s.failed(r, err)
		s.refuse(w, r, action, "", err)
		return
	}
	now := s.now()
	if err := s.opts.Store.StepUpSession(r.Context(), p.session.Hash, factor, now); err != nil {
		problem.Fail(w, r, s.opts.Log, "recording the second factor", err)
		return
	}
	p.Factor, p.FactorAt = factor, now
	r = r.WithContext(identity.With(r.Context(), identityOf(p)))
	s.ok(r, action, "", "presented a second factor ("+factor+")")
	w.WriteHeader(http.StatusNoContent)
}

// kindTOTPPending is the store's kind (account.Challenge.Kind) of a
// started re-enrolment of an account that has a confirmed TOTP secret
// already: the new secret waits beside the old, keyed by the account
// name, until a code of it confirms it (on any replica, once), so the old
// factor holds until then. It is stored as the confirmed secret is
// (account.Factors.TOTPSecret).
const kindTOTPPending = "totp.pending"

// pendingTOTPLife is how long a re-enrolment waits for its confirmation.
const pendingTOTPLife = 10 * time.Minute
