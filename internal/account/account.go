// Package account holds what custody knows about its callers: local users
// and their groups, grants of roles on repository patterns, API tokens, and
// the Store that keeps them. internal/auth authenticates and authorizes
// with them.
package account

import (
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/repopattern"
)

// Role is a named set of permissions.
type Role string

// The roles. Each includes the permissions of the ones listed before it on
// its line of descent: reader < writer < promoter < maintainer < admin;
// auditor and governance-bypass stand apart (each holds one permission).
const (
	// RoleReader pulls.
	RoleReader Role = "reader"
	// RoleWriter pushes new content and creates tags that do not exist yet.
	RoleWriter Role = "writer"
	// RolePromoter also moves existing tags (promotion, including "latest").
	RolePromoter Role = "promoter"
	// RoleMaintainer also deletes and manages policies, retention and holds.
	RoleMaintainer Role = "maintainer"
	// RoleAdmin may do everything, including managing users, grants and
	// other users' tokens.
	RoleAdmin Role = "admin"
	// RoleAuditor reads the audit log.
	RoleAuditor Role = "auditor"
	// RoleGovernanceBypass may bypass governance-mode retention (like S3's
	// s3:BypassGovernanceRetention): shorten or change such a lock, or
	// delete what it protects, on a request that also states a reason in
	// X-Custody-Bypass-Governance. No other role holds it, admin
	// included; an admin grants it (an audited change) when needed.
	RoleGovernanceBypass Role = "governance-bypass"
)

// Roles lists every role, in the order of the documentation.
var Roles = []Role{RoleReader, RoleWriter, RolePromoter, RoleMaintainer, RoleAdmin, RoleAuditor, RoleGovernanceBypass}

// Perm is a set of permissions.
type Perm uint16

// The permissions. Pull, Push, MoveTag, Delete and Manage apply to
// repositories; Audit, Admin and BypassGovernance are global: they need a
// grant on "**".
const (
	PermPull             Perm = 1 << iota // read manifests, blobs, tags, referrers
	PermPush                              // upload blobs and manifests, create new tags
	PermMoveTag                           // point an existing tag at another digest
	PermDelete                            // delete manifests, tags and blobs
	PermManage                            // policies, retention locks, legal holds
	PermAudit                             // read the audit log
	PermAdmin                             // users, grants, every token, GC
	PermBypassGovernance                  // bypass governance-mode retention (with a reason)
)

// Global reports whether p holds a global permission (Audit, Admin or
// BypassGovernance).
func (p Perm) Global() bool { return p&(PermAudit|PermAdmin|PermBypassGovernance) != 0 }

func (p Perm) String() string {
	var names []string
	for i, n := range []string{"pull", "push", "move-tag", "delete", "manage", "audit", "admin", "bypass-governance"} {
		if p&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// Perms returns the permissions of role r, or 0 for an unknown role.
func (r Role) Perms() Perm {
	switch r {
	case RoleReader:
		return PermPull
	case RoleWriter:
		return PermPull | PermPush
	case RolePromoter:
		return PermPull | PermPush | PermMoveTag
	case RoleMaintainer:
		return PermPull | PermPush | PermMoveTag | PermDelete | PermManage
	case RoleAdmin:
		return PermPull | PermPush | PermMoveTag | PermDelete | PermManage | PermAudit | PermAdmin
	case RoleAuditor:
		return PermAudit
	case RoleGovernanceBypass:
		return PermBypassGovernance
	}
	return 0
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.Perms() == 0 {
		return "", fmt.Errorf("unknown role %q (use one of reader, writer, promoter, maintainer, admin, auditor, governance-bypass)", s)
	}
	return r, nil
}

// Subjects of grants: "user:NAME", "group:NAME", "anonymous" (every
// request, signed in or not) or "authenticated" (every signed-in one).
const (
	SubjectAnonymous     = "anonymous"
	SubjectAuthenticated = "authenticated"
)

// ValidSubject checks a grant subject.
func ValidSubject(s string) error {
	if s == SubjectAnonymous || s == SubjectAuthenticated {
		return nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != "user" && kind != "group") || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("invalid subject %q (use user:NAME, group:NAME, anonymous or authenticated)", s)
	}
	return nil
}

// Grant binds a role to a subject on a repository pattern (see
// internal/repopattern: "team/*", "team/**", "**").
type Grant struct {
	Subject    string `json:"subject"`
	Role       Role   `json:"role"`
	Repository string `json:"repository"`
	// Source is "config" for grants from the configuration file, "api" for
	// stored ones.
	Source string `json:"source,omitempty"`
}

// Validate checks g.
func (g Grant) Validate() error {
	if err := ValidSubject(g.Subject); err != nil {
		return err
	}
	if _, err := ParseRole(string(g.Role)); err != nil {
		return err
	}
	if err := repopattern.Validate(g.Repository); err != nil {
		return err
	}
	return nil
}

// Scope is a role on repository patterns: what a token or an OIDC rule
// grants.
type Scope struct {
	Role         Role     `json:"role" yaml:"role"`
	Repositories []string `json:"repositories" yaml:"repositories"`
}
