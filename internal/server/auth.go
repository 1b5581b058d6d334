package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
)

// newAuth builds the authentication service from the configuration, or
// returns nil when auth.mode is none. On the first start it creates the
// admin account (docs/security.md).
func newAuth(cfg config.Config, store auth.Store, auditor audit.Auditor, log *slog.Logger) (*auth.Service, error) {
	if cfg.Auth.Mode == "none" {
		log.Warn("authentication is off (auth mode none): every client may push, move tags and delete", "addr", cfg.Addr)
		return nil, nil
	}
	key, err := auth.LoadOrCreateSigningKey(cfg.Data)
	if err != nil {
		return nil, err
	}
	var grants []auth.Grant
	for _, g := range cfg.Auth.Grants {
		for _, sub := range g.Subjects {
			for _, repo := range g.Repositories {
				grants = append(grants, auth.Grant{Subject: sub, Role: auth.Role(g.Role), Repository: repo, Source: "config"})
			}
		}
	}
	var issuers []auth.OIDCIssuer
	for _, o := range cfg.Auth.OIDC {
		iss := auth.OIDCIssuer{Issuer: o.Issuer, Audience: o.Audience, JWKSURL: o.JWKSURL,
			ClientID: o.ClientID, RedirectURL: o.RedirectURL, Name: o.Name}
		if o.ClientSecretFile != "" {
			b, err := os.ReadFile(o.ClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("auth.oidc %s: reading clientSecretFile: %w", o.Issuer, err)
			}
			iss.ClientSecret = strings.TrimSpace(string(b))
		}
		for _, r := range o.Rules {
			rule := auth.OIDCRule{Claims: r.Claims, Subject: r.Subject, Groups: r.Groups}
			for _, g := range r.Grants {
				rule.Grants = append(rule.Grants, auth.Scope{Role: auth.Role(g.Role), Repositories: g.Repositories})
			}
			iss.Rules = append(iss.Rules, rule)
		}
		issuers = append(issuers, iss)
	}
	var mfaRoles []auth.Role
	for _, r := range cfg.Auth.MFA.Roles {
		role, err := auth.ParseRole(r)
		if err != nil {
			return nil, fmt.Errorf("auth.mfa.roles: %w", err)
		}
		mfaRoles = append(mfaRoles, role)
	}
	svc, err := auth.New(auth.Options{
		Store:                store,
		Auditor:              auditor,
		Log:                  log,
		Service:              cfg.Auth.Service,
		Realm:                cfg.Auth.Realm,
		TokenTTL:             time.Duration(cfg.Auth.TokenTTL),
		SigningKey:           key,
		Grants:               grants,
		OIDC:                 issuers,
		LoginFailures:        cfg.Auth.LoginFailures,
		LoginAddressFailures: cfg.Auth.LoginAddressFailures,
		LoginWindow:          time.Duration(cfg.Auth.LoginWindow),
		SessionIdle:          time.Duration(cfg.Web.Session.Idle),
		SessionAbsolute:      time.Duration(cfg.Web.Session.Absolute),
		SecureCookies:        cfg.TLS.CertFile != "",
		MFARoles:             mfaRoles,
		StepUpWindow:         time.Duration(cfg.Auth.MFA.StepUp),
		WebURL:               cfg.Web.URL,
		OTPFailures:          cfg.Auth.MFA.OTPFailures,
		// The first admin's password, until it is changed.
		AdminPasswordFile: filepath.Join(cfg.Data, "admin-password"),
	})
	if err != nil {
		return nil, err
	}
	if err := svc.Bootstrap(context.Background()); err != nil {
		return nil, err
	}
	return svc, nil
}

// guardAPI checks the permission each /api/v1/ endpoint needs before
// passing the request on; endpoints it does not know are refused (deny by
// default). The account endpoints (whoami, tokens, users, grants) and the
// others apiRequirement marks as their own check for themselves; when such
// an endpoint is not served (its feature is not configured, or not with
// this method), anonymous callers get 401 like everywhere else, not a 404
// that tells them what is configured.
func guardAPI(svc *auth.Service, next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action, repo, perm, own := apiRequirement(r)
		if own {
			if _, pattern := next.Handler(r); pattern == apiFallback {
				var ok bool
				if r, _, ok = svc.Require(w, r, "api", "", 0); !ok {
					return
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		r, _, ok := svc.Require(w, r, action, repo, perm)
		if !ok {
			return
		}
		if action == "hold" && r.Method == http.MethodDelete &&
			!svc.RequireStepUp(w, r, action, repo, "clearing a legal hold") {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiFallback is the pattern of the handler that serves /api/v1/ paths no
// endpoint claims (and the policy, retention and hold endpoints).
const apiFallback = "/api/v1/"

// apiRequirement returns what an /api/v1/ request needs: the audit action
// of a refusal, the repository (or pattern) and the permission. own is
// true for the endpoints that check for themselves.
func apiRequirement(r *http.Request) (action, repo string, perm auth.Perm, own bool) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	kind, sub, _ := strings.Cut(rest, "/")
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch kind {
	case "whoami", "tokens", "users", "grants", "sessions", "mfa", "provenance", "promotions", "gate", "rollback", "revocations", "rejections", "projects", "environments", "evidence", "vulndb", "violations", "scan", "export", "drills", "imports", "source", "feeds":
		return "", "", 0, true
	case "keys":
		return "", "", 0, true // public keys and the trust root are public
	case "signingCert", "rootCert":
		return "", "", 0, true // the CA judges its requests' OIDC tokens itself; its chain is public
	case "timestamp":
		return "", "", 0, true // the time-stamp authority is public, as sigstore's is
	case "trust":
		return "", "", 0, true // trusted_root.json and signing_config.json hold only public material
	case "audit":
		if sub == "key" {
			return "", "", 0, true // the log's public key is public
		}
		return "audit.read", "", auth.PermAudit, false
	case "history":
		// A digest's history is the audit log's entries about it.
		return "audit.read", "", auth.PermAudit, false
	case "gc", "scrub":
		return kind, "", auth.PermAdmin, false
	case "assessment":
		// The assessment reads evidence across the registry, as the audit
		// log does.
		return "assessment.read", "", auth.PermAudit, false
	case "policies":
		if read {
			return "policy.read", sub, auth.PermPull, false
		}
		return "policy.put", sub, auth.PermManage, false
	case "retention":
		repo, _, _ := strings.Cut(sub, "/@")
		if read {
			return "retention.read", repo, auth.PermPull, false
		}
		return "retention.set", repo, auth.PermManage, false
	case "hold":
		repo, _, _ := strings.Cut(sub, "/@")
		return "hold", repo, auth.PermManage, false
	case "builds":
		// Build records name repositories across the registry.
		return "builds.read", "", auth.PermPull, false
	case "tags":
		return "tags.read", strings.TrimSuffix(sub, "/history"), auth.PermPull, false
	case "versions":
		return "versions.read", sub, auth.PermPull, false
	case "repositories":
		if sub == "" {
			// Any signed-in caller; the catalog lists only what it may read.
			return "catalog", "", 0, false
		}
		return "tags.read", strings.TrimSuffix(sub, "/tags"), auth.PermPull, false
	}
	return "api", "", auth.PermAdmin, false
}
