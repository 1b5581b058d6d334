package account

import (
	"strings"
	"testing"
)

// TestParseRole covers ParseRole's accept branch for every documented role
// and its refusal of anything else (case, whitespace, empty, near misses).
func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		got, err := ParseRole(string(r))
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "root", "Admin", " reader", "reader ", "readers", "governance_bypass", "owner"} {
		if got, err := ParseRole(s); err == nil || got != "" {
			t.Errorf("ParseRole(%q) = %q, %v; want refusal", s, got, err)
		}
	}
}

// TestRolePerms pins each role's permission set: the line of descent, and
// the two roles that stand apart.
func TestRolePerms(t *testing.T) {
	cases := []struct {
		role Role
		want Perm
	}{
		{RoleReader, PermPull},
		{RoleWriter, PermPull | PermPush},
		{RolePromoter, PermPull | PermPush | PermMoveTag},
		{RoleMaintainer, PermPull | PermPush | PermMoveTag | PermDelete | PermManage},
		{RoleAdmin, PermPull | PermPush | PermMoveTag | PermDelete | PermManage | PermAudit | PermAdmin},
		{RoleAuditor, PermAudit},
		{RoleGovernanceBypass, PermBypassGovernance},
		{Role("nobody"), 0},
	}
	for _, c := range cases {
		if got := c.role.Perms(); got != c.want {
			t.Errorf("%s.Perms() = %s, want %s", c.role, got, c.want)
		}
	}
	// Roles lists each role once, in the documented order.
	want := "reader writer promoter maintainer admin auditor governance-bypass"
	var names []string
	for _, r := range Roles {
		names = append(names, string(r))
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("Roles = %s, want %s", got, want)
	}
	// Admin does not hold the governance bypass.
	if RoleAdmin.Perms()&PermBypassGovernance != 0 {
		t.Error("admin holds the governance bypass")
	}
}

// TestPermGlobal covers Global: audit, admin and the bypass are global,
// the repository permissions are not, and a mix counts as global.
func TestPermGlobal(t *testing.T) {
	cases := []struct {
		p    Perm
		want bool
	}{
		{PermPull, false}, {PermPush, false}, {PermMoveTag, false}, {PermDelete, false}, {PermManage, false},
		{PermAudit, true}, {PermAdmin, true}, {PermBypassGovernance, true},
		{PermPull | PermAudit, true}, {0, false},
	}
	for _, c := range cases {
		if got := c.p.Global(); got != c.want {
			t.Errorf("(%s).Global() = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestPermString(t *testing.T) {
	cases := []struct {
		p    Perm
		want string
	}{
		{0, ""},
		{PermPull, "pull"},
		{PermPull | PermPush | PermMoveTag, "pull,push,move-tag"},
		{PermDelete | PermManage, "delete,manage"},
		{PermAudit | PermAdmin | PermBypassGovernance, "audit,admin,bypass-governance"},
	}
	for _, c := range cases {
		if got := c.p.String(); got != c.want {
			t.Errorf("Perm(%d).String() = %q, want %q", c.p, got, c.want)
		}
	}
}

// TestValidSubject covers every branch of ValidSubject: the two pseudo
// subjects, user: and group:, and the refusals (unknown kind, empty
// name, whitespace in the name, no colon, wrong case).
func TestValidSubject(t *testing.T) {
	cases := []struct {
		s  string
		ok bool
	}{
		{"anonymous", true},
		{"authenticated", true},
		{"user:alice", true},
		{"group:ops", true},
		{"user:a:b", true}, // the name is everything after the first ':'
		{"", false},
		{"alice", false},
		{"user:", false},
		{"group:", false},
		{"role:admin", false},
		{"User:alice", false},
		{"user:al ice", false},
		{"group:ops\n", false},
		{"user:\talice", false},
		{"Anonymous", false},
		{":alice", false},
	}
	for _, c := range cases {
		if err := ValidSubject(c.s); (err == nil) != c.ok {
			t.Errorf("ValidSubject(%q) = %v, want ok=%v", c.s, err, c.ok)
		}
	}
}

// TestGrantValidate covers Grant.Validate's three checks in order:
// subject, role, repository pattern.
func TestGrantValidate(t *testing.T) {
	cases := []struct {
		name string
		g    Grant
		want string // "" accepted, else a substring of the error
	}{
		{"user on pattern", Grant{Subject: "user:alice", Role: RoleWriter, Repository: "team/*"}, ""},
		{"group on everything", Grant{Subject: "group:ops", Role: RoleAdmin, Repository: "**"}, ""},
		{"anonymous reader", Grant{Subject: "anonymous", Role: RoleReader, Repository: "public/**"}, ""},
		{"literal repository", Grant{Subject: "authenticated", Role: RoleReader, Repository: "team/app"}, ""},
		{"bad subject", Grant{Subject: "alice", Role: RoleReader, Repository: "**"}, "invalid subject"},
		{"bad role", Grant{Subject: "user:alice", Role: "root", Repository: "**"}, "unknown role"},
		{"empty role", Grant{Subject: "user:alice", Repository: "**"}, "unknown role"},
		{"empty pattern", Grant{Subject: "user:alice", Role: RoleReader, Repository: ""}, "pattern"},
		{"upper-case pattern", Grant{Subject: "user:alice", Role: RoleReader, Repository: "Team/*"}, "pattern"},
		{"subject checked first", Grant{Subject: "", Role: "root", Repository: ""}, "invalid subject"},
	}
	for _, c := range cases {
		err := c.g.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
