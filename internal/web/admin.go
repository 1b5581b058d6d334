package web

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/vuln/vulnhttp"
)

// The Administration pages: users and their groups, grants, API tokens,
// the signing keys of the trust root, repository policies and the
// vulnerability database. Every list and every change is the account,
// key, policy and vulnerability API's (/api/v1/users, /grants, /tokens,
// /keys, /policies, /vulndb): a caller who is no admin gets the API's
// refusal, page or form alike. Changes are POST forms carrying the
// session's CSRF token, answered with a redirect (post/redirect/get), and
// destructive ones ask for a confirmation first (a <details> holding the
// confirming form). The one answer that is not a redirect is a created
// API token: its secret is on that response only (no-store), never again.

// adminRoutes registers the Administration pages.
func (s *Site) adminRoutes() {
	s.page("GET /admin", s.adminOverview)
	s.page("GET /admin/users", s.adminUsers)
	s.page("POST /admin/users", s.adminCreateUser)
	s.page("POST /admin/users/{name}/groups", s.adminUserGroups)
	s.page("POST /admin/users/{name}/delete", s.adminDeleteUser)
	s.page("POST /admin/users/{name}/disable", s.adminDisableUser)
	s.page("POST /admin/users/{name}/enable", s.adminDisableUser)
	s.page("GET /admin/groups", s.adminGroups)
	s.page("GET /admin/grants", s.adminGrants)
	s.page("POST /admin/grants", s.adminAddGrant)
	s.page("POST /admin/grants/remove", s.adminRemoveGrant)
	s.page("GET /admin/tokens", s.adminTokens)
	s.page("POST /admin/tokens", s.adminCreateToken)
	s.page("POST /admin/tokens/{id}/revoke", s.adminRevokeToken)
	s.page("GET /admin/keys", s.adminKeys)
	s.page("GET /admin/policies", s.adminPolicies)
	s.page("GET /admin/vulndb", s.adminVulnDB)
}

// adminSections is the Administration sub-navigation.
var adminSections = []navItem{
	{Label: "Overview", Path: "/admin"},
	{Label: "Users", Path: "/admin/users"},
	{Label: "Groups", Path: "/admin/groups"},
	{Label: "Grants", Path: "/admin/grants"},
	{Label: "API tokens", Path: "/admin/tokens"},
	{Label: "Signing keys", Path: "/admin/keys"},
	{Label: "Policies", Path: "/admin/policies"},
	{Label: "Vulnerability database", Path: "/admin/vulndb"},
}

// adminView is the data of every Administration page: the sub-navigation,
// a notice after a change (?done=), the page's own data and, for lists,
// the table's sort and page state.
type adminView struct {
	Sections []navItem
	Done     string
	Table    *table
	Data     any
}

func (r *Request) adminView(data any, t *table) adminView {
	v := adminView{Data: data, Table: t, Done: adminNotices[r.URL.Query().Get("done")]}
	for _, it := range adminSections {
		it.Current = r.URL.Path == it.Path
		v.Sections = append(v.Sections, it)
	}
	return v
}

// adminNotices are the notices a change redirects to (?done=KEY): fixed
// texts, so a link cannot put words on the page.
var adminNotices = map[string]string{
	"user-created":  "User created.",
	"user-deleted":  "User deleted.",
	"user-disabled": "User disabled: its sign-ins are refused and its sessions ended.",
	"user-enabled":  "User enabled.",
	"groups-saved":  "Groups saved.",
	"grant-added":   "Grant added.",
	"grant-removed": "Grant removed.",
	"token-revoked": "Token revoked.",
}

// done redirects (303) to path with the notice key.
func done(w http.ResponseWriter, r *Request, path, key string) error {
	http.Redirect(w, r.Request, path+"?done="+key, http.StatusSeeOther)
	return nil
}

// table is a list's sort and page state: column headers that sort by
// link (works without script), and links to the neighbouring pages.
type table struct {
	Headers    []sortHeader
	Page       int
	Pages      int
	Total      int
	Prev, Next string
	First      string
}

type sortHeader struct {
	Label, Href string
	// Sort is the aria-sort value: "ascending", "descending" or "".
	Sort string
}

// column is a sortable column: its query key, label and order.
type column[T any] struct {
	Key, Label string
	Cmp        func(a, b T) int
}

// sortPage sorts items by the ?sort=&order= column (the first column by
// default) and returns the ?page= page of them (pageSize rows).
func sortPage[T any](r *Request, items []T, cols []column[T]) ([]T, *table) {
	q := r.URL.Query()
	key, desc := q.Get("sort"), q.Get("order") == "desc"
	i := slices.IndexFunc(cols, func(c column[T]) bool { return c.Key == key })
	if i < 0 {
		i, key = 0, cols[0].Key
	}
	slices.SortStableFunc(items, func(a, b T) int {
		if desc {
			return cols[i].Cmp(b, a)
		}
		return cols[i].Cmp(a, b)
	})
	link := func(sort string, desc bool, page int) string {
		v := url.Values{"sort": {sort}}
		if desc {
			v.Set("order", "desc")
		}
		if page > 1 {
			v.Set("page", strconv.Itoa(page))
		}
		return r.URL.Path + "?" + v.Encode()
	}
	t := &table{Total: len(items), Pages: max(1, (len(items)+pageSize-1)/pageSize)}
	for _, c := range cols {
		h := sortHeader{Label: c.Label, Href: link(c.Key, false, 1)}
		if c.Key == key {
			h.Sort = "ascending"
			h.Href = link(c.Key, !desc, 1)
			if desc {
				h.Sort = "descending"
			}
		}
		t.Headers = append(t.Headers, h)
	}
	t.Page, _ = strconv.Atoi(q.Get("page"))
	t.Page = min(max(t.Page, 1), t.Pages)
	if t.Page > 1 {
		t.Prev, t.First = link(key, desc, t.Page-1), link(key, desc, 1)
	}
	if t.Page < t.Pages {
		t.Next = link(key, desc, t.Page+1)
	}
	lo := (t.Page - 1) * pageSize
	return items[lo:min(lo+pageSize, len(items))], t
}

// adminOverviewView is the Administration overview: how many of each,
// and the state of keys and the vulnerability database.
type adminOverviewView struct {
	Users, Grants, Tokens int
	Keys                  []key.TrustedKey
	// VulnDB is nil when the server serves no vulnerability database.
	VulnDB *vulnhttp.VulnDBStatus
}

func (s *Site) adminOverview(w http.ResponseWriter, r *Request) error {
	var v adminOverviewView
	var users []auth.User
	if err := r.Get("/api/v1/users", &users); err != nil {
		return err
	}
	var grants []auth.Grant
	if err := r.Get("/api/v1/grants", &grants); err != nil {
		return err
	}
	var tokens []auth.Token
	if err := r.Get("/api/v1/tokens?all=true", &tokens); err != nil {
		return err
	}
	var tr key.TrustRoot
	if err := r.Get("/api/v1/keys", &tr); err != nil {
		return err
	}
	var err error
	if v.VulnDB, err = vulnDBStatus(r); err != nil {
		return err
	}
	v.Users, v.Grants, v.Keys = len(users), len(grants), tr.Keys
	for _, t := range tokens {
		if tokenState(t, time.Now()) == "active" {
			v.Tokens++
		}
	}
	return r.Render(w, http.StatusOK, "admin.html", "Administration", r.adminView(v, nil))
}

// Users.

type adminUsersView struct {
	Users []auth.UserEntry
}

var userColumns = []column[auth.UserEntry]{
	{Key: "name", Label: "User", Cmp: func(a, b auth.UserEntry) int { return strings.Compare(a.Name, b.Name) }},
	{Key: "groups", Label: "Groups", Cmp: func(a, b auth.UserEntry) int { return slices.Compare(a.Groups, b.Groups) }},
	{Key: "mfa", Label: "Second factor", Cmp: func(a, b auth.UserEntry) int { return slices.Compare(a.MFA, b.MFA) }},
	{Key: "created", Label: "Created", Cmp: func(a, b auth.UserEntry) int { return a.Created.Compare(b.Created) }},
	{Key: "status", Label: "Status", Cmp: func(a, b auth.UserEntry) int { return a.Disabled.Compare(b.Disabled) }},
}

func (s *Site) adminUsers(w http.ResponseWriter, r *Request) error {
	var users []auth.UserEntry
	if err := r.Get("/api/v1/users", &users); err != nil {
		return err
	}
	page, t := sortPage(r, users, userColumns)
	return r.Render(w, http.StatusOK, "admin_users.html", "Users", r.adminView(adminUsersView{Users: page}, t))
}

// groupList reads a form's comma- or space-separated group names; the
// API validates them.
func groupList(s string) []string {
	out := []string{}
	for _, g := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

func (s *Site) adminCreateUser(w http.ResponseWriter, r *Request) error {
	groups := groupList(r.PostFormValue("groups"))
	req := auth.UserRequest{Name: strings.TrimSpace(r.PostFormValue("name")), Password: r.PostFormValue("password"), Groups: &groups}
	if err := r.Call(http.MethodPost, "/api/v1/users", req, nil); err != nil {
		return err
	}
	return done(w, r, "/admin/users", "user-created")
}

func (s *Site) adminUserGroups(w http.ResponseWriter, r *Request) error {
	groups := groupList(r.PostFormValue("groups"))
	if err := r.Call(http.MethodPut, "/api/v1/users/"+url.PathEscape(r.PathValue("name")), auth.UserRequest{Groups: &groups}, nil); err != nil {
		return err
	}
	return done(w, r, "/admin/users", "groups-saved")
}

func (s *Site) adminDeleteUser(w http.ResponseWriter, r *Request) error {
	if err := r.Call(http.MethodDelete, "/api/v1/users/"+url.PathEscape(r.PathValue("name")), nil, nil); err != nil {
		return err
	}
	return done(w, r, "/admin/users", "user-deleted")
}

// adminDisableUser disables or enables a user (POST .../disable or
// .../enable, the API's own paths).
func (s *Site) adminDisableUser(w http.ResponseWriter, r *Request) error {
	verb := path.Base(r.URL.Path)
	if err := r.Call(http.MethodPost, "/api/v1/users/"+url.PathEscape(r.PathValue("name"))+"/"+verb, nil, nil); err != nil {
		return err
	}
	return done(w, r, "/admin/users", "user-"+verb+"d")
}

// Groups: a group is its members (users' groups) and its grants
// (subject group:NAME); membership is changed on the Users page.

type adminGroup struct {
	Name    string
	Members []string
	Grants  []auth.Grant
}

var groupColumns = []column[adminGroup]{
	{Key: "name", Label: "Group", Cmp: func(a, b adminGroup) int { return strings.Compare(a.Name, b.Name) }},
	{Key: "members", Label: "Members", Cmp: func(a, b adminGroup) int { return cmp.Compare(len(a.Members), len(b.Members)) }},
	{Key: "grants", Label: "Grants", Cmp: func(a, b adminGroup) int { return cmp.Compare(len(a.Grants), len(b.Grants)) }},
}

func (s *Site) adminGroups(w http.ResponseWriter, r *Request) error {
	var users []auth.User
	if err := r.Get("/api/v1/users", &users); err != nil {
		return err
	}
	var grants []auth.Grant
	if err := r.Get("/api/v1/grants", &grants); err != nil {
		return err
	}
	byName := map[string]*adminGroup{}
	group := func(n string) *adminGroup {
		if byName[n] == nil {
			byName[n] = &adminGroup{Name: n}
		}
		return byName[n]
	}
	for _, u := range users {
		for _, g := range u.Groups {
			group(g).Members = append(group(g).Members, u.Name)
		}
	}
	for _, g := range grants {
		if n, ok := strings.CutPrefix(g.Subject, "group:"); ok {
			group(n).Grants = append(group(n).Grants, g)
		}
	}
	var groups []adminGroup
	for _, g := range byName {
		slices.Sort(g.Members)
		groups = append(groups, *g)
	}
	page, t := sortPage(r, groups, groupColumns)
	return r.Render(w, http.StatusOK, "admin_groups.html", "Groups", r.adminView(page, t))
}

// Grants.

type adminGrantsView struct {
	Grants []auth.Grant
	Roles  []account.Role
}

var grantColumns = []column[auth.Grant]{
	{Key: "subject", Label: "Subject", Cmp: func(a, b auth.Grant) int { return strings.Compare(a.Subject, b.Subject) }},
	{Key: "role", Label: "Role", Cmp: func(a, b auth.Grant) int { return strings.Compare(string(a.Role), string(b.Role)) }},
	{Key: "repository", Label: "Repositories", Cmp: func(a, b auth.Grant) int { return strings.Compare(a.Repository, b.Repository) }},
	{Key: "source", Label: "Source", Cmp: func(a, b auth.Grant) int { return strings.Compare(a.Source, b.Source) }},
}

func (s *Site) adminGrants(w http.ResponseWriter, r *Request) error {
	var grants []auth.Grant
	if err := r.Get("/api/v1/grants", &grants); err != nil {
		return err
	}
	page, t := sortPage(r, grants, grantColumns)
	return r.Render(w, http.StatusOK, "admin_grants.html", "Grants", r.adminView(adminGrantsView{Grants: page, Roles: account.Roles}, t))
}

func formGrant(r *Request) auth.Grant {
	return auth.Grant{Subject: strings.TrimSpace(r.PostFormValue("subject")), Role: auth.Role(r.PostFormValue("role")),
		Repository: strings.TrimSpace(r.PostFormValue("repository"))}
}

func (s *Site) adminAddGrant(w http.ResponseWriter, r *Request) error {
	if err := r.Call(http.MethodPost, "/api/v1/grants", formGrant(r), nil); err != nil {
		return err
	}
	return done(w, r, "/admin/grants", "grant-added")
}

func (s *Site) adminRemoveGrant(w http.ResponseWriter, r *Request) error {
	g := formGrant(r)
	q := url.Values{"subject": {g.Subject}, "role": {string(g.Role)}, "repository": {g.Repository}}
	if err := r.Call(http.MethodDelete, "/api/v1/grants?"+q.Encode(), nil, nil); err != nil {
		return err
	}
	return done(w, r, "/admin/grants", "grant-removed")
}

// API tokens.

type adminToken struct {
	auth.Token
	State string // active, expired or revoked
}

type adminTokensView struct {
	Tokens  []adminToken
	Roles   []account.Role
	Expiry  []tokenExpiry
	Created *auth.CreatedToken // the token just created, on its response only
}

type tokenExpiry struct{ Label, Value string }

// tokenExpiries are the lifetimes offered (the API caps them at a year).
var tokenExpiries = []tokenExpiry{{"7 days", "168h"}, {"30 days", "720h"}, {"90 days", "2160h"}, {"1 year", "8760h"}}

// tokenState is how a token stands at now.
func tokenState(t auth.Token, now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

var tokenColumns = []column[adminToken]{
	{Key: "created", Label: "Created", Cmp: func(a, b adminToken) int { return a.Created.Compare(b.Created) }},
	{Key: "name", Label: "Name", Cmp: func(a, b adminToken) int { return strings.Compare(a.Name, b.Name) }},
	{Key: "owner", Label: "Owner", Cmp: func(a, b adminToken) int { return strings.Compare(a.Owner, b.Owner) }},
	{Key: "expires", Label: "Expires", Cmp: func(a, b adminToken) int { return a.Expires.Compare(b.Expires) }},
	{Key: "state", Label: "State", Cmp: func(a, b adminToken) int { return strings.Compare(a.State, b.State) }},
}

func (s *Site) tokensView(r *Request, created *auth.CreatedToken) (adminView, error) {
	var tokens []auth.Token
	if err := r.Get("/api/v1/tokens?all=true", &tokens); err != nil {
		return adminView{}, err
	}
	now := time.Now()
	list := make([]adminToken, 0, len(tokens))
	for _, t := range tokens {
		list = append(list, adminToken{Token: t, State: tokenState(t, now)})
	}
	page, t := sortPage(r, list, tokenColumns)
	return r.adminView(adminTokensView{Tokens: page, Roles: account.Roles, Expiry: tokenExpiries, Created: created}, t), nil
}

func (s *Site) adminTokens(w http.ResponseWriter, r *Request) error {
	v, err := s.tokensView(r, nil)
	if err != nil {
		return err
	}
	return r.Render(w, http.StatusOK, "admin_tokens.html", "API tokens", v)
}

// adminCreateToken creates a token for the signed-in admin and shows its
// secret on this response only: it is neither stored nor redirected to
// (the page is no-store like every page), so no later request shows it.
func (s *Site) adminCreateToken(w http.ResponseWriter, r *Request) error {
	req := auth.TokenRequest{Name: strings.TrimSpace(r.PostFormValue("name")), ExpiresIn: r.PostFormValue("expires"),
		Scopes: []auth.Scope{{Role: auth.Role(r.PostFormValue("role")), Repositories: groupList(r.PostFormValue("repositories"))}}}
	var created auth.CreatedToken
	if err := r.Call(http.MethodPost, "/api/v1/tokens", req, &created); err != nil {
		return err
	}
	v, err := s.tokensView(r, &created)
	if err != nil {
		return err
	}
	return r.Render(w, http.StatusCreated, "admin_tokens.html", "API token created", v)
}

func (s *Site) adminRevokeToken(w http.ResponseWriter, r *Request) error {
	if err := r.Call(http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(r.PathValue("id")), nil, nil); err != nil {
		return err
	}
	return done(w, r, "/admin/tokens", "token-revoked")
}

// Signing keys: the trust root, each key with its signing window.

func (s *Site) adminKeys(w http.ResponseWriter, r *Request) error {
	var tr key.TrustRoot
	if err := r.Get("/api/v1/keys", &tr); err != nil {
		return err
	}
	return r.Render(w, http.StatusOK, "admin_keys.html", "Signing keys", r.adminView(tr, nil))
}

// Policies (read-only; PUT /api/v1/policies/... or the configuration
// file changes them).

// policyRecord is an entry of GET /api/v1/policies (the server's
// PolicyResponse, which this package cannot import).
type policyRecord struct {
	Repository string        `json:"repository"`
	Version    int           `json:"version"`
	Source     string        `json:"source"`
	Created    time.Time     `json:"created"`
	Policy     policy.Policy `json:"policy"`
}

// DefaultTags is true when the policy leaves the immutable tags at the
// default (internal/policy's DefaultImmutableTags).
func (p policyRecord) DefaultTags() bool { return p.Policy.ImmutableTags == nil }

var policyColumns = []column[policyRecord]{
	{Key: "repository", Label: "Repositories", Cmp: func(a, b policyRecord) int { return strings.Compare(a.Repository, b.Repository) }},
	{Key: "version", Label: "Version", Cmp: func(a, b policyRecord) int { return cmp.Compare(a.Version, b.Version) }},
	{Key: "source", Label: "Source", Cmp: func(a, b policyRecord) int { return strings.Compare(a.Source, b.Source) }},
}

func (s *Site) adminPolicies(w http.ResponseWriter, r *Request) error {
	var list []policyRecord
	if err := r.Get("/api/v1/policies", &list); err != nil {
		return err
	}
	page, t := sortPage(r, list, policyColumns)
	return r.Render(w, http.StatusOK, "admin_policies.html", "Policies", r.adminView(page, t))
}

// vulnDBStatus is the vulnerability database's status, or nil when the
// server serves none (it does whenever sign-in is on: the database feeds
// the promotion gates and the feeds' dependency firewall).
func vulnDBStatus(r *Request) (*vulnhttp.VulnDBStatus, error) {
	var st vulnhttp.VulnDBStatus
	err := r.Get("/api/v1/vulndb", &st)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &st, nil
}

func (s *Site) adminVulnDB(w http.ResponseWriter, r *Request) error {
	st, err := vulnDBStatus(r)
	if err != nil {
		return err
	}
	return r.Render(w, http.StatusOK, "admin_vulndb.html", "Vulnerability database", r.adminView(st, nil))
}
