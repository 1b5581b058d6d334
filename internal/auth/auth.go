// Package auth is custody's identity and access control: who a request
// comes from (passwords, API tokens, the Docker token flow's JWTs, OIDC
// workload-identity tokens) and what it may do (roles bound to users,
// groups, token scopes and OIDC identities on repository patterns, deny by
// default). See docs/security.md.
//
// The Service is the registry's Authorizer and, through TagPolicy, the
// policy that tells creating a tag from moving one.
package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/repopattern"
)

// The account vocabulary, under the names this package's users know.
type (
	Role  = account.Role
	Perm  = account.Perm
	Grant = account.Grant
	Scope = account.Scope
	User  = account.User
	Token = account.Token
	State = account.State
	Store = account.Store
)

const (
	RoleReader           = account.RoleReader
	RoleWriter           = account.RoleWriter
	RolePromoter         = account.RolePromoter
	RoleMaintainer       = account.RoleMaintainer
	RoleAdmin            = account.RoleAdmin
	RoleAuditor          = account.RoleAuditor
	RoleGovernanceBypass = account.RoleGovernanceBypass

	PermPull             = account.PermPull
	PermPush             = account.PermPush
	PermMoveTag          = account.PermMoveTag
	PermDelete           = account.PermDelete
	PermManage           = account.PermManage
	PermAudit            = account.PermAudit
	PermAdmin            = account.PermAdmin
	PermBypassGovernance = account.PermBypassGovernance

	SubjectAnonymous     = account.SubjectAnonymous
	SubjectAuthenticated = account.SubjectAuthenticated
)

var (
	// ParseRole parses a role name.
	ParseRole = account.ParseRole
	// ErrNotFound is wrapped by Store errors for what does not exist.
	ErrNotFound = account.ErrNotFound
)

// rules returns the permissions s grants, one rule per pattern.
func rules(s Scope) []rule {
	out := make([]rule, 0, len(s.Repositories))
	for _, pat := range s.Repositories {
		out = append(out, rule{perm: s.Role.Perms(), pattern: pat})
	}
	return out
}

func scopeRules(scopes []Scope) []rule {
	var out []rule
	for _, s := range scopes {
		out = append(out, rules(s)...)
	}
	return out
}

// rule grants perm on the repositories pattern matches.
type rule struct {
	perm    Perm
	pattern string
}

// catalogOnly is the pattern of a JWT's registry:catalog:* access: it
// matches the catalog and no repository. (Grant patterns are never empty.)
const catalogOnly = ""

// matchRepo matches a repository pattern. Global permissions, and the
// empty repository (every repository: the catalog), match only the "**"
// pattern.
func matchRepo(pattern, repo string, perm Perm) bool {
	if pattern == catalogOnly {
		return repo == "" && !perm.Global()
	}
	if perm.Global() || repo == "" {
		return pattern == "**"
	}
	return repopattern.Match(pattern, repo)
}

// Principal is an authenticated (or anonymous) caller and what it may do.
type Principal struct {
	// Subject names the caller: a user name, an OIDC identity, or
	// "anonymous".
	Subject string
	// Method is how it authenticated: "none", "password", "token" (API
	// token), "jwt" (a token of the Docker token flow, followed by the
	// method it was issued for), "oidc".
	Method string
	// Groups are the caller's groups, as of this request.
	Groups []string
	// TokenID is the API token the request used, if any.
	TokenID string
	// Claims are the verified claims of the OIDC token the request
	// presented directly (string values), for the platform-provenance
	// mode; nil otherwise.
	Claims map[string]string
	scopes []Scope // the grants, for display
	// oidcGrants are the grants an OIDC rule gave (carried in JWTs).
	oidcGrants []Scope
	grants     []rule
	// tokenScopes limit the grants to an API token's scope (when TokenID
	// is set): fixed when the token was created.
	tokenScopes []Scope
	tokenRules  []rule
	// jwt: the request presented a token of the Docker token flow, whose
	// access limits the grants further; a new token may carry more.
	jwt       bool
	access    []Access
	jwtAccess []rule
	// session is the browser session the request came with, if any.
	session *account.Session
	// Factor is the second factor the caller presented ("totp",
	// "recovery"; "" none): with this request, or in its session at
	// FactorAt.
	Factor   string
	FactorAt time.Time
	// mfaMissing, when set, says why the MFA policy stops the caller
	// (applyPolicy): every permission check refuses with mfa-required.
	mfaMissing string
	// mfaApplies: the caller has a second factor, or the policy requires
	// one of it: dangerous actions need a recent one (step-up).
	mfaApplies bool
	// signInToken: the API token stands for its owner's password and
	// second factor (custody login), presented when it was created
	// (signedInAt).
	signInToken bool
	signedInAt  time.Time
}

// Anonymous reports whether p did not authenticate.
func (p *Principal) Anonymous() bool { return p == nil || p.Method == "none" || p.Method == "jwt/none" }

// Can reports whether p holds every permission of perm on repo. For
// global permissions repo is ignored.
func (p *Principal) Can(repo string, perm Perm) bool {
	return p.check(repo, perm) == allowed
}

// shortfall says what stops a principal from doing something.
type shortfall int

const (
	allowed shortfall = iota
	// lacksGrant: the caller's own grants do not allow it.
	lacksGrant
	// lacksTokenScope: its grants would, but the API token's scope does
	// not (and never will: a token's scope is fixed).
	lacksTokenScope
	// lacksJWTAccess: only the access of the Docker token flow's token is
	// missing; the token endpoint would issue one that carries it.
	lacksJWTAccess
	// lacksFactor: the MFA policy wants a second factor first.
	lacksFactor
)

// check is the one access decision: grants, narrowed by the API token's
// scope, narrowed by the JWT's access. It reports the first that falls
// short.
func (p *Principal) check(repo string, perm Perm) shortfall {
	switch {
	case p == nil || perm == 0 || !anyAllows(p.grants, repo, perm):
		return lacksGrant
	case p.mfaMissing != "":
		return lacksFactor
	case p.TokenID != "" && !anyAllows(p.tokenRules, repo, perm):
		return lacksTokenScope
	case p.jwt && !anyAllows(p.jwtAccess, repo, perm):
		return lacksJWTAccess
	}
	return allowed
}

// denial is the refusal of a shortfall; doing says what was refused
// ("pull team/app", "the manage permission on team/app"). It names what
// falls short: the caller, or its token.
func (p *Principal) denial(sf shortfall, doing string) error {
	switch sf {
	case lacksFactor:
		return p.mfaDenial()
	case lacksTokenScope:
		return fmt.Errorf("%w: API token %s is limited to %s and may not %s (%s itself may; a token's scope cannot be widened: create another token)",
			registry.ErrDenied, p.TokenID, describeScopes(p.tokenScopes), doing, p.Subject)
	case lacksJWTAccess:
		return fmt.Errorf("%w: the registry token (Docker token flow) carries only %s and may not %s; use a password or an API token here",
			registry.ErrDenied, describeAccess(p.access), doing)
	}
	return fmt.Errorf("%w: %s may not %s", registry.ErrDenied, p.Subject, doing)
}

func describeScopes(scopes []Scope) string {
	parts := make([]string, len(scopes))
	for i, s := range scopes {
		parts[i] = string(s.Role) + " on " + strings.Join(s.Repositories, ", ")
	}
	return strings.Join(parts, "; ")
}

func anyAllows(rules []rule, repo string, perm Perm) bool {
	// A permission set may be split over several grants (pull from one,
	// push from another): check bit by bit.
	for bit := Perm(1); bit != 0 && bit <= perm; bit <<= 1 {
		if perm&bit == 0 {
			continue
		}
		if !slices.ContainsFunc(rules, func(r rule) bool { return r.perm&bit != 0 && matchRepo(r.pattern, repo, bit) }) {
			return false
		}
	}
	return true
}

// Scopes returns the grants p holds before limits, for display.
func (p *Principal) Scopes() []Scope { return slices.Clone(p.scopes) }

// TokenScopes returns the scope of the API token p signed in with (nil
// without one): p may do only what both its grants and these allow.
func (p *Principal) TokenScopes() []Scope { return slices.Clone(p.tokenScopes) }

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil when the request did
// not pass through an authenticating Service (authentication is off).
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
