package auth

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/custody-dev/custody/internal/repopattern"
)

// OIDCIssuer is a trusted OIDC issuer (for example a CI system's workload
// identity tokens) and the rules mapping its tokens to identities.
type OIDCIssuer struct {
	Issuer string
	// Audience the tokens must carry.
	Audience string
	// JWKSURL is where the keys are fetched; empty: OIDC discovery.
	JWKSURL string
	Rules   []OIDCRule
	// ClientID, ClientSecret and RedirectURL offer browser sign-in with
	// the issuer (authorization code flow with PKCE, oidcflow.go); Name is
	// what the sign-in button says.
	ClientID, ClientSecret, RedirectURL, Name string
}

// OIDCRule maps tokens whose claims all match to an identity.
type OIDCRule struct {
	// Claims: claim name -> glob ('*' matches any run of characters).
	Claims map[string]string
	// Subject is the identity's name with {claim} replaced by values.
	Subject string
	Groups  []string
	Grants  []Scope
}

type oidcIssuer struct {
	cfg   OIDCIssuer
	rules []compiledRule

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	// provider and browser are the discovered issuer and the verifier of
	// its ID tokens for browser sign-in (audience: the client ID).
	provider *oidc.Provider
	browser  *oidc.IDTokenVerifier
	// keys is the issuer's key set, shared by both verifiers.
	keys *issuerKeys
}

// keySet returns the issuer's key set: from jwksURL when configured,
// else from the discovered provider p's jwks_uri. o.mu is held.
func (o *oidcIssuer) keySet(p *oidc.Provider) (*issuerKeys, error) {
	if o.keys != nil {
		return o.keys, nil
	}
	jwks := o.cfg.JWKSURL
	if jwks == "" {
		var d struct {
			JWKSURL string `json:"jwks_uri"`
		}
		if err := p.Claims(&d); err != nil || d.JWKSURL == "" {
			return nil, fmt.Errorf("OIDC issuer %s publishes no jwks_uri", o.cfg.Issuer)
		}
		jwks = d.JWKSURL
	}
	o.keys = newIssuerKeys(jwks)
	return o.keys, nil
}

type compiledRule struct {
	OIDCRule
	match map[string]*regexp.Regexp
}

var placeholder = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{([A-Za-z0-9_.-]+)\}`) })

func newOIDCIssuer(c OIDCIssuer, service string) (*oidcIssuer, error) {
	if c.Audience == "" {
		c.Audience = service
	}
	o := &oidcIssuer{cfg: c}
	for i, r := range c.Rules {
		if r.Subject == "" {
			return nil, fmt.Errorf("oidc issuer %s rule %d: empty subject", c.Issuer, i)
		}
		for _, g := range r.Grants {
			if _, err := ParseRole(string(g.Role)); err != nil {
				return nil, fmt.Errorf("oidc issuer %s rule %d: %w", c.Issuer, i, err)
			}
			for _, pat := range g.Repositories {
				// A {claim} stands for the claim's value: check the
				// pattern around it.
				if err := repopattern.Validate(placeholder().ReplaceAllString(pat, "x")); err != nil {
					return nil, fmt.Errorf("oidc issuer %s rule %d: %w", c.Issuer, i, err)
				}
			}
		}
		cr := compiledRule{OIDCRule: r, match: map[string]*regexp.Regexp{}}
		for claim, glob := range r.Claims {
			cr.match[claim] = globRegexp(glob)
		}
		o.rules = append(o.rules, cr)
	}
	return o, nil
}

// globRegexp compiles a glob in which '*' matches any run of characters,
// '/' included.
func globRegexp(glob string) *regexp.Regexp {
	parts := strings.Split(glob, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// signingAlgs are the ID token algorithms accepted: asymmetric ones only,
// "none" and HMAC can never verify.
var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// verifierFor returns the issuer's token verifier, discovering the
// issuer's keys on first use (so a start-up never depends on the issuer
// being reachable).
func (o *oidcIssuer) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	cfg := &oidc.Config{ClientID: o.cfg.Audience, SupportedSigningAlgs: signingAlgs}
	var p *oidc.Provider
	if o.cfg.JWKSURL == "" && o.keys == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if p, err = oidc.NewProvider(dctx, o.cfg.Issuer); err != nil {
			return nil, fmt.Errorf("discovering OIDC issuer %s: %w", o.cfg.Issuer, err)
		}
	}
	keys, err := o.keySet(p)
	if err != nil {
		return nil, err
	}
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, keys, cfg)
	return o.verifier, nil
}

// oidcToken verifies a token of a trusted issuer and maps it to an
// identity with the issuer's rules.
func (s *Service) oidcToken(ctx context.Context, raw string) (*Principal, error) {
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, &authError{method: "oidc", reason: err.Error()}
	}
	var o *oidcIssuer
	for _, x := range s.oidc {
		if x.cfg.Issuer == iss {
			o = x
		}
	}
	if o == nil {
		return nil, &authError{method: "oidc", reason: fmt.Sprintf("token issuer %q is not trusted", iss)}
	}
	v, err := o.verifierFor(ctx)
	if err != nil {
		return nil, &authError{method: "oidc", reason: err.Error()}
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, &authError{method: "oidc", reason: "invalid OIDC token: " + err.Error()}
	}
	return s.oidcPrincipal(ctx, o, tok)
}

// oidcPrincipal maps a verified token of issuer o to an identity with the
// issuer's rules: the first that matches.
func (s *Service) oidcPrincipal(ctx context.Context, o *oidcIssuer, tok *oidc.IDToken) (*Principal, error) {
	iss := o.cfg.Issuer
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return nil, &authError{method: "oidc", reason: "invalid OIDC claims"}
	}
	claims := map[string]string{}
	for k, v := range all {
		switch x := v.(type) {
		case string:
			claims[k] = x
		case bool:
			claims[k] = strconv.FormatBool(x)
		case float64:
			claims[k] = strconv.FormatFloat(x, 'f', -1, 64)
		}
	}
	for _, r := range o.rules {
		if !r.matches(claims) {
			continue
		}
		subject, err := r.subject(claims)
		if err != nil {
			return nil, &authError{method: "oidc", reason: err.Error()}
		}
		st, err := s.load(ctx)
		if err != nil {
			return nil, err
		}
		grants, err := r.grants(claims)
		if err != nil {
			return nil, &authError{subject: subject, method: "oidc", reason: err.Error()}
		}
		p := newPrincipal(subject, "oidc", r.Groups, append(st.grantsFor(subject, r.Groups, true), grants...))
		p.oidcGrants = grants
		p.Claims = claims
		return p, nil
	}
	return nil, &authError{subject: tok.Subject, method: "oidc", reason: fmt.Sprintf("no rule of issuer %s maps the token of %s", iss, tok.Subject)}
}

func (r compiledRule) matches(claims map[string]string) bool {
	for k, re := range r.match {
		v, ok := claims[k]
		if !ok || !re.MatchString(v) {
			return false
		}
	}
	return true
}

func (r compiledRule) subject(claims map[string]string) (string, error) {
	return expand(r.Subject, claims)
}

// grants returns the rule's grants with {claim} in repository patterns
// replaced by claim values (e.g. "apps/{repository}").
func (r compiledRule) grants(claims map[string]string) ([]Scope, error) {
	out := make([]Scope, 0, len(r.Grants))
	for _, g := range r.Grants {
		s := Scope{Role: g.Role}
		for _, pat := range g.Repositories {
			// A claim value is literal in a pattern: one holding a
			// wildcard would widen the grant beyond what the rule says.
			for _, m := range placeholder().FindAllStringSubmatch(pat, -1) {
				if strings.Contains(claims[m[1]], "*") {
					return nil, fmt.Errorf("the token's %q claim contains '*', which the repository pattern %q would take for a wildcard", m[1], pat)
				}
			}
			x, err := expand(pat, claims)
			if err != nil {
				return nil, err
			}
			s.Repositories = append(s.Repositories, x)
		}
		out = append(out, s)
	}
	return out, nil
}

// expand replaces {claim} in tmpl by the claim's value.
func expand(tmpl string, claims map[string]string) (string, error) {
	var missing string
	out := placeholder().ReplaceAllStringFunc(tmpl, func(m string) string {
		k := m[1 : len(m)-1]
		v, ok := claims[k]
		if !ok {
			missing = k
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("the token has no %q claim, which %q needs", missing, tmpl)
	}
	return out, nil
}

// WorkloadIdentity verifies an OIDC token of a trusted issuer (signature
// with the issuer's published keys, audience, expiry) and maps it with the
// issuer's rules, as any OIDC sign-in: the certificate authority
// (internal/ca) issues workload certificates only for what this accepts.
// Errors wrap registry.ErrUnauthenticated; they are not audited here.
func (s *Service) WorkloadIdentity(ctx context.Context, raw string) (*Principal, error) {
	return s.oidcToken(ctx, raw)
}
