package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/custody-dev/custody/internal/problem"
)

// Browser sign-in with an OIDC issuer: the authorization code flow with
// PKCE (S256), state and nonce. The web interface asks where to send the
// browser (oidcStart: the issuer's authorization URL with a fresh state,
// nonce and code challenge), keeps state, nonce and verifier in a
// short-lived cookie, checks the state the browser brings back, and hands
// the code with the verifier and nonce to POST /api/v1/sessions, which
// exchanges it (oidcCode), verifies the ID token (signature, issuer,
// audience = client ID, expiry, nonce) and maps it with the issuer's rules
// like any OIDC token.

// OIDCSignIn is an issuer offering browser sign-in, in the answer of GET
// /api/v1/sessions/oidc.
type OIDCSignIn struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// OIDCStart is the answer of GET /api/v1/sessions/oidc/{id}: where to send
// the browser, and what the sign-in must come back with.
type OIDCStart struct {
	URL      string `json:"url"`
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
}

// oidcTimeout bounds discovery and the code exchange with an issuer.
const oidcTimeout = 15 * time.Second

// browserIssuer returns the issuer of sign-in ID id (its position among
// the configured issuers), if it offers browser sign-in.
func (s *Service) browserIssuer(id string) (*oidcIssuer, bool) {
	i, err := strconv.Atoi(id)
	if err != nil || i < 0 || i >= len(s.oidc) || s.oidc[i].cfg.ClientID == "" || strconv.Itoa(i) != id {
		return nil, false
	}
	return s.oidc[i], true
}

func (s *Service) oidcIssuers(w http.ResponseWriter, r *http.Request) {
	out := []OIDCSignIn{}
	for i, o := range s.oidc {
		if o.cfg.ClientID == "" {
			continue
		}
		name := o.cfg.Name
		if name == "" {
			if u, err := url.Parse(o.cfg.Issuer); err == nil {
				name = u.Host
			}
		}
		out = append(out, OIDCSignIn{ID: strconv.Itoa(i), Name: name})
	}
	problem.JSON(w, http.StatusOK, out)
}

func (s *Service) oidcStart(w http.ResponseWriter, r *http.Request) {
	o, ok := s.browserIssuer(r.PathValue("id"))
	if !ok {
		problem.Write(w, problem.NotFound, "no OIDC issuer offers browser sign-in as "+strconv.Quote(r.PathValue("id")))
		return
	}
	conf, _, err := o.browserFlow(r.Context())
	if err != nil {
		s.opts.Log.Warn("OIDC discovery failed", "issuer", o.cfg.Issuer, "err", err)
		problem.Write(w, problem.Retry, "the OIDC issuer cannot be reached; try again later")
		return
	}
	st := OIDCStart{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
	st.URL = conf.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
	problem.JSON(w, http.StatusOK, st)
}

// browserFlow returns the OAuth 2.0 client of o's browser sign-in and the
// verifier of its ID tokens, discovering the issuer on first use.
func (o *oidcIssuer) browserFlow(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		dctx, cancel := context.WithTimeout(ctx, oidcTimeout)
		defer cancel()
		p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("discovering OIDC issuer %s: %w", o.cfg.Issuer, err)
		}
		keys, err := o.keySet(p)
		if err != nil {
			return nil, nil, err
		}
		o.provider = p
		o.browser = oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{ClientID: o.cfg.ClientID, SupportedSigningAlgs: signingAlgs})
	}
	conf := &oauth2.Config{
		ClientID:     o.cfg.ClientID,
		ClientSecret: o.cfg.ClientSecret,
		Endpoint:     o.provider.Endpoint(),
		RedirectURL:  o.cfg.RedirectURL,
		Scopes:       []string{oidc.ScopeOpenID, "profile", "email"},
	}
	return conf, o.browser, nil
}

// oidcCode exchanges an authorization code for the identity it proves.
func (s *Service) oidcCode(r *http.Request, c OIDCCode) (*Principal, error) {
	o, ok := s.browserIssuer(c.Issuer)
	if !ok {
		return nil, &authError{method: "oidc", reason: "no OIDC issuer offers browser sign-in as " + strconv.Quote(c.Issuer)}
	}
	if c.Code == "" || c.Verifier == "" || c.Nonce == "" {
		return nil, &authError{method: "oidc", reason: "an OIDC sign-in needs the code, the PKCE verifier and the nonce"}
	}
	ctx, cancel := context.WithTimeout(r.Context(), oidcTimeout)
	defer cancel()
	conf, v, err := o.browserFlow(ctx)
	if err != nil {
		return nil, &authError{method: "oidc", reason: err.Error()}
	}
	tok, err := conf.Exchange(ctx, c.Code, oauth2.VerifierOption(c.Verifier))
	if err != nil {
		return nil, &authError{method: "oidc", reason: "the OIDC issuer refused the authorization code: " + err.Error()}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &authError{method: "oidc", reason: "the OIDC issuer's answer carries no ID token"}
	}
	id, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, &authError{method: "oidc", reason: "invalid OIDC ID token: " + err.Error()}
	}
	if subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(c.Nonce)) != 1 {
		return nil, &authError{subject: id.Subject, method: "oidc", reason: "the ID token's nonce is not the sign-in's (a replayed token?)"}
	}
	return s.oidcPrincipal(ctx, o, id)
}
