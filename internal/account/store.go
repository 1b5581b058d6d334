package account

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is wrapped by Store errors for a missing user, grant or
// token.
var ErrNotFound = errors.New("not found")

// User is a local account.
type User struct {
	Name string `json:"name"`
	// PasswordHash is a bcrypt hash, or empty for an account that signs in
	// only with tokens.
	PasswordHash string    `json:"-"`
	Groups       []string  `json:"groups"`
	Created      time.Time `json:"created"`
	// Disabled is when the account was disabled, zero while it is
	// enabled. A disabled account cannot sign in by any method (password,
	// its API tokens, a browser session) until it is enabled again.
	Disabled time.Time `json:"disabled,omitzero"`
}

// Token is an API token. Only the SHA-256 of its secret is stored.
type Token struct {
	ID      string    `json:"id"`
	Hash    string    `json:"-"` // hex SHA-256 of the secret
	Owner   string    `json:"owner"`
	Name    string    `json:"name"`
	Scopes  []Scope   `json:"scopes"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Revoked is the revocation time, zero while the token is valid.
	Revoked time.Time `json:"revoked,omitzero"`
	// SignIn marks a token that stands for its owner's password and
	// second factor (custody login): step-up applies to it as to a
	// password. Other tokens are machine credentials.
	SignIn bool `json:"signIn,omitempty"`
}

// State is everything the Store keeps, read in one snapshot.
type State struct {
	Generation int64
	Users      []User
	Grants     []Grant
	Tokens     []Token
}

// Store keeps users, grants and API tokens. Every write changes the
// generation AuthGeneration reports, so servers sharing a store (replicas)
// see each other's changes on the next request.
type Store interface {
	// AuthGeneration returns the current generation: it changes with every
	// write.
	AuthGeneration(ctx context.Context) (int64, error)
	// AuthState returns the whole state from one snapshot.
	AuthState(ctx context.Context) (State, error)
	// PutUser creates or replaces a user. Replacing a user keeps its
	// creation time and its disabled state (SetUserDisabled changes it);
	// a new user is stored with u.Disabled.
	PutUser(ctx context.Context, u User) error
	// SetUserDisabled disables user name from at (not zero) or enables it
	// again (at zero). Disabling also ends every browser session whose
	// subject is name, in the same transaction, so no session outlives
	// it (nor comes back with an enable); disabling a disabled user keeps
	// the first time. It returns an error wrapping ErrNotFound, and
	// changes nothing, when there is no such user.
	SetUserDisabled(ctx context.Context, name string, at time.Time) error
	// DeleteUser removes a user (its grants and tokens stay, inert, until
	// removed; a user created again with the name regains them). It
	// returns an error wrapping ErrNotFound when there is no such user.
	DeleteUser(ctx context.Context, name string) error
	// PutGrant stores a grant (a no-op when it exists).
	PutGrant(ctx context.Context, g Grant) error
	// DeleteGrant removes a grant, or returns an error wrapping ErrNotFound.
	DeleteGrant(ctx context.Context, g Grant) error
	// PutToken stores a new token.
	PutToken(ctx context.Context, t Token) error
	// RevokeToken marks token id revoked at time at, or returns an error
	// wrapping ErrNotFound.
	RevokeToken(ctx context.Context, id string, at time.Time) error

	Sessions
	FactorStore
	Challenges
}

// Session is a browser session of the web interface. Only the SHA-256 of
// its secret (the cookie's value) is stored.
type Session struct {
	// Hash is the hex SHA-256 of the session's secret.
	Hash string
	// Subject is who signed in: a local user's name, or the subject an
	// OIDC rule gave the identity.
	Subject string
	// Method is how: "password" or "oidc".
	Method string
	// Groups and Scopes are what the OIDC rules gave the identity when it
	// signed in (a local user's come from the account, as it is now).
	Groups []string
	Scopes []Scope
	// CSRF is the token the session's unsafe requests must carry.
	CSRF string
	// Created is the sign-in; LastSeen the latest request TouchSession
	// recorded. The idle and absolute timeouts count from them.
	Created, LastSeen time.Time
	// Factor is the second factor last presented in the session ("totp",
	// "recovery"; "" none) and FactorAt when (step-up counts from it).
	Factor   string
	FactorAt time.Time
}

// Sessions keeps browser sessions, shared by replicas through the store.
// They are no part of State and writing them does not change the
// generation: they change with every request, grants do not.
type Sessions interface {
	// PutSession stores a new session; a session with the same hash is an
	// error (and is left as it was).
	PutSession(ctx context.Context, s Session) error
	// GetSession returns the session whose secret hashes to hash, or an
	// error wrapping ErrNotFound.
	GetSession(ctx context.Context, hash string) (Session, error)
	// TouchSession records a request of the session at time at: LastSeen
	// becomes at unless it is later already (it never moves back). It
	// returns an error wrapping ErrNotFound for an unknown session.
	TouchSession(ctx context.Context, hash string, at time.Time) error
	// DeleteSession ends a session (sign-out), or returns an error
	// wrapping ErrNotFound.
	DeleteSession(ctx context.Context, hash string) error
	// PurgeSessions deletes every session last seen before idleBefore or
	// created before createdBefore (both timed out) and returns how many.
	PurgeSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int, error)
}

// ErrReplayed is wrapped by ClaimTOTPStep's error for a one-time code
// whose time step was used already.
var ErrReplayed = errors.New("code used already")

// ErrExists is wrapped by PutWebAuthnKey's error for a credential ID that
// is registered already.
var ErrExists = errors.New("exists already")

// Factors are a local user's second factors (docs/security.md, MFA). They
// are no part of State and writing them does not change the generation.
type Factors struct {
	// User is the local account they belong to.
	User string
	// TOTPSecret is the base32 TOTP (RFC 6238) secret; the API never
	// returns it after enrolment. Empty: no TOTP.
	TOTPSecret string
	// TOTPConfirmed: the user proved holding the secret with a code
	// (enrolment is complete); until then it does not count as a factor.
	TOTPConfirmed bool
	// RecoveryHashes are the hex SHA-256 of the unused recovery codes.
	RecoveryHashes []string
	// Updated is when they were last enrolled.
	Updated time.Time
}

// FactorStore keeps second factors and the session's latest one.
type FactorStore interface {
	// GetFactors returns a user's factors, or an error wrapping
	// ErrNotFound when it enrolled none.
	GetFactors(ctx context.Context, user string) (Factors, error)
	// PutFactors creates or replaces a user's factors; the last claimed
	// TOTP step stays (a re-enrolment never lets an old code in again).
	PutFactors(ctx context.Context, f Factors) error
	// DeleteFactors removes a user's factors, its recovery codes and its
	// WebAuthn keys, or returns an error wrapping ErrNotFound when it had
	// none of them.
	DeleteFactors(ctx context.Context, user string) error
	// ClaimTOTPStep records that the code of TOTP time step step was used:
	// atomically, it fails with an error wrapping ErrReplayed unless step
	// is later than every step claimed before (a code works once), and
	// with ErrNotFound for a user without factors.
	ClaimTOTPStep(ctx context.Context, user string, step int64) error
	// UseRecoveryCode removes the recovery code whose hash is hash,
	// atomically: of two concurrent uses one fails with an error wrapping
	// ErrNotFound, as does an unknown code.
	UseRecoveryCode(ctx context.Context, user, hash string) error
	// StepUpSession records that a session's caller presented the second
	// factor factor ("totp", "recovery") at time at, or returns an error
	// wrapping ErrNotFound for an unknown session.
	StepUpSession(ctx context.Context, hash, factor string, at time.Time) error

	// PutWebAuthnKey stores a newly registered security key or passkey,
	// or returns an error wrapping ErrExists when its credential ID is
	// registered already (to anyone).
	PutWebAuthnKey(ctx context.Context, k WebAuthnKey) error
	// WebAuthnKeys returns a user's keys, oldest first (none: empty).
	WebAuthnKeys(ctx context.Context, user string) ([]WebAuthnKey, error)
	// UseWebAuthnKey records a sign-in with user's key id whose signature
	// counter is now count: atomically, it fails with an error wrapping
	// ErrReplayed unless count is greater than the stored counter (or
	// both are 0: an authenticator without a counter), so of two uses
	// with one counter value only one succeeds, and a cloned key's
	// lagging counter is refused; ErrNotFound for an unknown key.
	UseWebAuthnKey(ctx context.Context, user, id string, count uint32, at time.Time) error
	// DeleteWebAuthnKey removes user's key id, or returns an error
	// wrapping ErrNotFound.
	DeleteWebAuthnKey(ctx context.Context, user, id string) error
}

// WebAuthnKey is a security key or passkey registered as a second factor
// of a local account (docs/security.md, MFA). Like Factors it is no part
// of State.
type WebAuthnKey struct {
	// User is the local account it belongs to.
	User string
	// ID is the credential ID, base64url without padding.
	ID string
	// Name is what the user called it ("YubiKey 5").
	Name string
	// Record is the verifier's credential record (public key, flags,
	// transports; go-webauthn's Credential as JSON), opaque to the store.
	Record []byte
	// SignCount is the authenticator's signature counter at the last
	// use.
	SignCount uint32
	Created   time.Time
	// LastUsed is zero before the first sign-in with it.
	LastUsed time.Time
}

// Challenge is sign-in state that one request starts and a later one
// finishes, possibly on another replica: a started WebAuthn ceremony, a
// TOTP re-enrolment's pending secret. Like sessions it is no part of
// State, writing it does not change the generation, and it lives minutes.
type Challenge struct {
	// Kind says what it is ("webauthn.register", "totp.pending"); Key
	// names it within its kind (a random ceremony ID, a user name).
	Kind, Key string
	// User is the account it belongs to: only that account finishes it.
	User string
	// Data is the state to finish it with, opaque to the store. A pending
	// TOTP secret is stored as Factors.TOTPSecret is: as it is.
	Data []byte
	// Expires is when it stops counting, whether or not it was purged.
	Expires time.Time
}

// Challenges keeps started sign-in ceremonies, shared by replicas through
// the store, so any replica finishes what another started.
type Challenges interface {
	// PutChallenge stores c, replacing the challenge of the same kind and
	// key (starting again replaces what was started).
	PutChallenge(ctx context.Context, c Challenge) error
	// GetChallenge returns the challenge kind/key of user, or an error
	// wrapping ErrNotFound when there is none, it is another user's, or
	// it expired at now. It leaves the challenge in place.
	GetChallenge(ctx context.Context, kind, key, user string, now time.Time) (Challenge, error)
	// TakeChallenge removes and returns the challenge kind/key of user,
	// atomically: of two concurrent takes (on any replicas) one gets it
	// and the other fails with an error wrapping ErrNotFound, as it does
	// for an unknown challenge, another user's (which stays), or one that
	// expired at now (which goes). A challenge is finished once.
	TakeChallenge(ctx context.Context, kind, key, user string, now time.Time) (Challenge, error)
	// PurgeChallenges deletes every challenge that expired before before
	// and returns how many.
	PurgeChallenges(ctx context.Context, before time.Time) (int, error)
}
