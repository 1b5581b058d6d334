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
	"slices"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/policy"
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

// matchRepo matches a repository pattern. Global permissions, and the
// empty repository (every repository: the catalog), match only the "**"
// pattern.
func matchRepo(pattern, repo string, perm Perm) bool {
	if perm.Global() || repo == "" {
		return pattern == "**"
	}
	return policy.MatchRepo(pattern, repo)
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
	// limits narrow grants: a permission must be allowed by each of them
	// (a token's scope, a JWT's granted access).
	limits [][]rule
}

// Anonymous reports whether p did not authenticate.
func (p *Principal) Anonymous() bool { return p == nil || p.Method == "none" || p.Method == "jwt/none" }

// Can reports whether p holds every permission of perm on repo. For
// global permissions repo is ignored.
func (p *Principal) Can(repo string, perm Perm) bool {
	if p == nil || perm == 0 {
		return false
	}
	if !anyAllows(p.grants, repo, perm) {
		return false
	}
	for _, l := range p.limits {
		if !anyAllows(l, repo, perm) {
			return false
		}
	}
	return true
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
