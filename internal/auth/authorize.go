package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/registry"
)

// permOf maps a registry action to the permission it needs.
func permOf(a registry.Action) Perm {
	switch a {
	case registry.ActionPull, registry.ActionCatalog:
		return PermPull
	case registry.ActionPush:
		return PermPush
	case registry.ActionDelete:
		return PermDelete
	}
	return PermAdmin // unknown actions need everything
}

// Authorize implements registry.Authorizer: it authenticates r and checks
// every access it needs. Anonymous requests that need more than anonymous
// grants give get 401 with the Docker token flow's challenge. A signed-in
// caller whose registry token (JWT) lacks an access the caller holds gets
// 401 with error="insufficient_scope" and the scope the request needs, so
// the client fetches a wider token; one that lacks the access itself, or
// whose API token's fixed scope lacks it, gets 403.
func (s *Service) Authorize(w http.ResponseWriter, r *http.Request, need []registry.Access) (*http.Request, error) {
	p, err := s.Authenticate(r)
	if err != nil {
		s.challenge(w, r, need, err)
		return nil, err
	}
	r = r.WithContext(WithPrincipal(identity.With(r.Context(), identityOf(p)), p))
	if len(need) == 0 && p.Anonymous() {
		// The /v2/ base: docker login and clients probe it for the challenge.
		err := fmt.Errorf("%w: sign in to use this registry", registry.ErrUnauthenticated)
		s.challenge(w, r, need, err)
		return r, err
	}
	var (
		denied  error
		missing []string // what the registry token lacks
	)
	for _, a := range need {
		perm := permOf(a.Action)
		repo := a.Repo
		what := string(a.Action) + " " + a.Repo
		if a.Action == registry.ActionCatalog {
			repo = "" // the catalog lists every repository
			what = "list the repository catalog"
		}
		switch sf := p.check(repo, perm); {
		case sf == allowed:
		case p.Anonymous():
			err := fmt.Errorf("%w: sign in to %s", registry.ErrUnauthenticated, signInFor(need))
			s.challenge(w, r, need, err)
			return r, err
		case sf == lacksJWTAccess:
			missing = append(missing, what)
		case denied == nil:
			denied = p.denial(sf, what)
		}
	}
	if denied != nil {
		return r, denied
	}
	if len(missing) > 0 {
		err := &scopeError{missing: missing}
		s.challenge(w, r, need, err)
		return r, err
	}
	return r, nil
}

// scopeError refuses a request whose registry token lacks access its
// holder has: the challenge asks the client for a wider token.
type scopeError struct{ missing []string }

func (e *scopeError) Error() string {
	return fmt.Sprintf("%s: the token's scope does not cover %s; ask %s for the scope in WWW-Authenticate",
		registry.ErrUnauthenticated, strings.Join(e.missing, ", "), TokenPath)
}

func (e *scopeError) Unwrap() error { return registry.ErrUnauthenticated }

// challenge sets WWW-Authenticate for a 401 (or Retry-After for a 429).
func (s *Service) challenge(w http.ResponseWriter, r *http.Request, need []registry.Access, err error) {
	var ae *authError
	if errors.As(err, &ae) && ae.limited > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(ae.limited.Seconds())+1))
		return
	}
	realm := s.opts.Realm
	if realm == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		realm = scheme + "://" + r.Host + TokenPath
	}
	h := fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, s.opts.Service)
	if sc := challengeScope(need); sc != "" {
		h += fmt.Sprintf(`,scope=%q`, sc)
	}
	var se *scopeError
	switch {
	case ae != nil:
		h += `,error="invalid_token"`
	case errors.As(err, &se):
		h += `,error="insufficient_scope"`
	}
	w.Header().Set("WWW-Authenticate", h)
}

func challengeScope(need []registry.Access) string {
	var parts []string
	byRepo := map[string][]string{}
	var order []string
	for _, a := range need {
		if a.Action == registry.ActionCatalog {
			parts = append(parts, "registry:catalog:*")
			continue
		}
		if _, ok := byRepo[a.Repo]; !ok {
			order = append(order, a.Repo)
		}
		byRepo[a.Repo] = append(byRepo[a.Repo], string(a.Action))
	}
	for _, repo := range order {
		parts = append(parts, "repository:"+repo+":"+strings.Join(byRepo[repo], ","))
	}
	return strings.Join(parts, " ")
}

// TagPolicy is the registry.Policy that tells creating a tag (push) from
// moving an existing one to another digest (promoter and above). It allows
// everything for requests that carry no principal (authentication off).
type TagPolicy struct{}

var _ registry.Policy = TagPolicy{}

// CheckTag implements registry.Policy.
func (TagPolicy) CheckTag(ctx context.Context, repo, tag string, current, next digest.Digest) error {
	if current == "" || current == next {
		return nil
	}
	p := PrincipalFrom(ctx)
	if p == nil {
		return nil
	}
	sf := p.check(repo, PermMoveTag)
	if sf == allowed {
		return nil
	}
	return p.denial(sf, fmt.Sprintf("move tag %s of %s, which already points at %s (moving a tag needs the promoter role; writers only create tags)",
		tag, repo, current))
}

func (TagPolicy) CheckManifest(context.Context, meta.Manifest) error                  { return nil }
func (TagPolicy) CheckDeleteManifest(context.Context, string, digest.Digest) error    { return nil }
func (TagPolicy) CheckDeleteTag(context.Context, string, string, digest.Digest) error { return nil }
func (TagPolicy) CheckDeleteBlob(context.Context, string, digest.Digest) error        { return nil }

// CanBypassGovernance implements retention.Permissions: bypassing
// governance-mode retention needs the bypass-governance permission, which
// only the governance-bypass role holds (granted on "**"; not part of
// admin).
//
// Bypassing governance is a dangerous action: an interactive caller needs
// a recent second factor too (step-up).
func (s *Service) CanBypassGovernance(ctx context.Context) bool {
	p := PrincipalFrom(ctx)
	return p.Can("", PermBypassGovernance) && s.stepUp(p, "bypassing governance retention") == nil
}

// signInFor says what a request that needs need asks to do, for the 401
// that tells an anonymous client to sign in: per repository its strongest
// action (a push also needs pull, but the client is pushing), e.g. "push to
// tools/app" or "pull a/b and push to c/d".
func signInFor(need []registry.Access) string {
	rank := map[registry.Action]int{registry.ActionPull: 1, registry.ActionCatalog: 1, registry.ActionPush: 2, registry.ActionDelete: 3}
	strongest := map[string]registry.Action{}
	var order []string
	for _, a := range need {
		repo := a.Repo
		if a.Action == registry.ActionCatalog {
			repo = ""
		}
		cur, seen := strongest[repo]
		if !seen {
			order = append(order, repo)
		}
		if !seen || rank[a.Action] > rank[cur] {
			strongest[repo] = a.Action
		}
	}
	var parts []string
	for _, repo := range order {
		switch a := strongest[repo]; a {
		case registry.ActionCatalog:
			parts = append(parts, "list the repository catalog")
		case registry.ActionPull:
			parts = append(parts, "pull "+repo)
		case registry.ActionPush:
			parts = append(parts, "push to "+repo)
		case registry.ActionDelete:
			parts = append(parts, "delete in "+repo)
		default:
			parts = append(parts, string(a)+" "+repo)
		}
	}
	return strings.Join(parts, " and ")
}
