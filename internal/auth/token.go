package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/registry"
)

// The Docker token flow (distribution's token authentication
// specification): a request without credentials gets 401 with
//
//	WWW-Authenticate: Bearer realm="<TokenPath URL>",service="custody",scope="repository:team/app:pull,push"
//
// the client asks the token endpoint for that scope with its Basic
// credentials (or none), and retries with the token. Tokens are EdDSA JWTs
// signed with the Service's key; they carry the access granted when they
// were issued, and every request is checked again against the current
// grants, so a revoked API token or a removed group membership takes effect
// on the next request, not when the JWT expires.

// Access is one entry of a token's granted access.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// claims are the claims of an issued token.
type claims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
	// Method is how the subject authenticated to get the token.
	Method string `json:"custody_method"`
	// TokenID: the API token the JWT was issued for, checked on every use.
	TokenID string `json:"custody_tid,omitempty"`
	// OIDC identities exist only in their tokens: their groups and grants
	// travel in the JWT (signed by us).
	Groups []string `json:"custody_groups,omitempty"`
	Grants []Scope  `json:"custody_grants,omitempty"`
	// MFAMissing: the MFA policy stopped the subject when the token was
	// issued (a password without its second factor); the token carries
	// the stop, so it is no way around the factor.
	MFAMissing string `json:"custody_mfa_missing,omitempty"`
}

// TokenResponse is the token endpoint's answer.
type TokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// actionPerm maps Docker scope actions to permissions.
var actionPerm = map[string]Perm{"pull": PermPull, "push": PermPush, "delete": PermDelete}

// ParseScope parses a Docker token scope ("repository:NAME:ACTIONS" or
// "registry:catalog:*").
func ParseScope(s string) (Access, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok || i <= 0 || len(s) > 512 {
		return Access{}, fmt.Errorf("invalid scope %q (expected TYPE:NAME:ACTIONS)", s)
	}
	a := Access{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")}
	switch a.Type {
	case "repository":
		if !registry.ValidName(a.Name) {
			return Access{}, fmt.Errorf("invalid repository name in scope %q", s)
		}
	case "registry":
		if a.Name != "catalog" {
			return Access{}, fmt.Errorf("unknown registry scope %q", s)
		}
	default:
		if strings.HasPrefix(a.Type, "repository(") { // repository(plugin) and the like
			a.Type = "repository"
			if registry.ValidName(a.Name) {
				return a, nil
			}
		}
		return Access{}, fmt.Errorf("unknown scope type in %q", s)
	}
	return a, nil
}

// grant narrows the requested access to what p may do.
func grant(p *Principal, want []Access) []Access {
	var out []Access
	for _, a := range want {
		var acts []string
		for _, act := range a.Actions {
			switch {
			case a.Type == "registry" && a.Name == "catalog":
				if p.Can("", PermPull) {
					acts = append(acts, "*")
				}
			case act == "*":
				for _, x := range []string{"pull", "push", "delete"} {
					if p.Can(a.Name, actionPerm[x]) && !slices.Contains(acts, x) {
						acts = append(acts, x)
					}
				}
			default:
				if perm, ok := actionPerm[act]; ok && p.Can(a.Name, perm) && !slices.Contains(acts, act) {
					acts = append(acts, act)
				}
			}
		}
		if len(acts) > 0 {
			out = append(out, Access{Type: a.Type, Name: a.Name, Actions: acts})
		}
	}
	return out
}

// ServeToken is the token endpoint (GET, or POST with grant_type=password
// for clients that use the OAuth2 form).
func (s *Service) ServeToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=password is supported; send Basic credentials with GET otherwise")
			return
		}
		r.SetBasicAuth(r.PostForm.Get("username"), r.PostForm.Get("password"))
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	if svc := r.URL.Query().Get("service"); svc != "" && svc != s.opts.Service {
		tokenError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("unknown service %q (this registry is %q)", svc, s.opts.Service))
		return
	}
	var want []Access
	for _, sc := range scopes {
		for _, one := range strings.Fields(sc) {
			a, err := ParseScope(one)
			if err != nil {
				tokenError(w, http.StatusBadRequest, "invalid_scope", err.Error())
				return
			}
			want = append(want, a)
		}
	}
	if len(want) > 64 {
		tokenError(w, http.StatusBadRequest, "invalid_scope", "too many scopes")
		return
	}
	p, err := s.Authenticate(r)
	if err != nil {
		if errors.Is(err, registry.ErrTooManyRequests) {
			var ae *authError
			if errors.As(err, &ae) {
				w.Header().Set("Retry-After", fmt.Sprint(int(ae.limited.Seconds())+1))
			}
			tokenError(w, http.StatusTooManyRequests, "too_many_requests", err.Error())
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+s.opts.Service+`"`)
		tokenError(w, http.StatusUnauthorized, "invalid_grant", err.Error())
		return
	}
	granted := grant(p, want)
	tok, exp, err := s.issue(p, granted)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "signing the token failed")
		return
	}
	if !p.Anonymous() {
		ctx := identity.With(r.Context(), identityOf(p))
		s.opts.Auditor.Record(ctx, audit.Event{Action: "login", Result: "ok", Reason: "token issued for " + describeAccess(granted), Request: r.WithContext(ctx)})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(TokenResponse{Token: tok, AccessToken: tok, ExpiresIn: int(exp.Seconds()), IssuedAt: s.now().UTC().Format(time.RFC3339)})
}

func describeAccess(as []Access) string {
	if len(as) == 0 {
		return "no scope"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
	}
	return strings.Join(parts, " ")
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// issue signs a token for p with the granted access.
func (s *Service) issue(p *Principal, access []Access) (string, time.Duration, error) {
	now := s.now()
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.opts.Service,
			Subject:   p.Subject,
			Audience:  jwt.ClaimStrings{s.opts.Service},
			ExpiresAt: jwt.NewNumericDate(now.Add(s.opts.TokenTTL)),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		Access:     access,
		Method:     p.Method,
		TokenID:    p.TokenID,
		MFAMissing: p.mfaMissing,
	}
	if p.Method == "oidc" {
		c.Groups = p.Groups
		c.Grants = p.oidcGrants
	}
	if access == nil {
		c.Access = []Access{}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.opts.SigningKey)
	return tok, s.opts.TokenTTL, err
}

// ownToken verifies a token this Service issued and rebuilds its principal
// from the current state.
func (s *Service) ownToken(st *compiled, tok string) (*Principal, error) {
	var c claims
	pub := s.opts.SigningKey.Public()
	_, err := jwt.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(s.opts.Service),
		jwt.WithAudience(s.opts.Service),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return nil, &authError{subject: c.Subject, method: "jwt", reason: "invalid token: " + err.Error()}
	}
	var p *Principal
	switch c.Method {
	case "password":
		u, why := st.local(c.Subject)
		if why != "" {
			return nil, &authError{subject: c.Subject, method: "jwt", reason: "the token's " + why}
		}
		p = st.user(u, "password")
	case "token":
		t, ok := st.tokenIDs[c.TokenID]
		if !ok || t.Owner != c.Subject {
			return nil, &authError{subject: c.Subject, method: "jwt", reason: "the token's API token is unknown"}
		}
		if p, err = s.tokenPrincipal(st, t); err != nil {
			return nil, err
		}
	case "oidc":
		p = newPrincipal(c.Subject, "oidc", c.Groups, append(st.grantsFor(c.Subject, c.Groups, true), c.Grants...))
		p.oidcGrants = c.Grants
	case "none":
		p = st.anonymous()
	default:
		return nil, &authError{subject: c.Subject, method: "jwt", reason: "token of an unknown kind"}
	}
	// The JWT's access narrows the principal's rights further. Push
	// covers moving tags as far as the JWT is concerned (the Docker scope
	// has no finer action): the principal's own roles decide that.
	lim := []rule{}
	for _, a := range c.Access {
		if a.Type == "registry" && a.Name == "catalog" {
			lim = append(lim, rule{perm: PermPull, pattern: catalogOnly})
			continue
		}
		var perm Perm
		for _, act := range a.Actions {
			perm |= actionPerm[act]
		}
		if perm&PermPush != 0 {
			perm |= PermMoveTag
		}
		lim = append(lim, rule{perm: perm, pattern: literalPattern(a.Name)})
	}
	p.Method = "jwt/" + p.Method
	p.jwt, p.access, p.jwtAccess, p.mfaMissing = true, c.Access, lim, c.MFAMissing
	return p, nil
}

// LoadOrCreateSigningKey reads the token signing key from
// <dataDir>/token-key, creating it (mode 0600) on first use.
func LoadOrCreateSigningKey(dataDir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dataDir, "token-key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := writeSecretFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, fmt.Errorf("writing token signing key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading token signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("token signing key %s is not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("token signing key %s is not Ed25519", path)
	}
	return priv, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// literalPattern is a repository pattern that matches exactly name:
// repository names never contain '*', so a name is its own pattern.
func literalPattern(name string) string { return name }
