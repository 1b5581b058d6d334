package web

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/auth"
)

// Sign-in and sign-out. The API decides: POST /api/v1/sessions checks the
// password (with its throttling) or the OIDC code and creates the session;
// this file only carries the browser there and back and sets the cookie
// the API's answer names (auth.SessionCookie).

// signInRoutes mounts sign-in and sign-out.
func (s *Site) signInRoutes() {
	s.public("GET /signin", s.signInPage)
	s.public("POST /signin", s.signIn)
	s.public("GET /signin/oidc/{id}", s.oidcStart)
	s.public("GET /signin/oidc/callback", s.oidcCallback)
	s.page("POST /signout", s.signOut)
}

// signInView is the sign-in page's data.
type signInView struct {
	Next     string
	User     string
	Error    string
	Issuers  []auth.OIDCSignIn
	Signed   bool // the browser is signed in (after OIDC): continue to Next
	Continue string
	// Keys: the server offers security keys (web.url is set).
	Keys bool
}

// localPath returns next when it is a path on this site, else "/" (no
// redirect to another site after sign-in). A browser drops tabs and line
// breaks from a URL and reads '\' as '/', so "/\t/evil.example" would
// lead to //evil.example: a next= with a control character or a
// backslash is refused whole.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsFunc(next, func(c rune) bool {
		return c < 0x20 || c == 0x7f || c == '\\'
	}) {
		return "/"
	}
	return next
}

func (s *Site) signInPage(w http.ResponseWriter, r *Request) error {
	if !s.opts.Auth {
		http.Redirect(w, r.Request, "/", http.StatusSeeOther)
		return nil
	}
	return s.renderSignIn(w, r, http.StatusOK, signInView{Next: localPath(r.URL.Query().Get("next"))})
}

func (s *Site) renderSignIn(w http.ResponseWriter, r *Request, status int, v signInView) error {
	v.Keys = s.opts.WebAuthn
	if err := r.Get("/api/v1/sessions/oidc", &v.Issuers); err != nil {
		s.opts.Log.Warn("listing the OIDC issuers for sign-in failed", "err", err)
	}
	return r.Render(w, status, "signin.html", "Sign in", v)
}

func (s *Site) signIn(w http.ResponseWriter, r *Request) error {
	if !s.opts.Auth {
		http.Redirect(w, r.Request, "/", http.StatusSeeOther)
		return nil
	}
	v := signInView{Next: localPath(r.PostFormValue("next")), User: r.PostFormValue("username")}
	pass := r.PostFormValue("password")
	if v.User == "" || pass == "" {
		v.Error = "Enter your user name and password."
		return s.renderSignIn(w, r, http.StatusBadRequest, v)
	}
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	req.SetBasicAuth(v.User, pass)
	hdr := http.Header{"Authorization": req.Header["Authorization"]}
	if code := strings.TrimSpace(r.PostFormValue("otp")); code != "" {
		hdr.Set(auth.OTPHeader, code)
	}
	key, err := webauthnField(r)
	if err != nil {
		return err
	}
	var created auth.CreatedSession
	err = r.API.Send(r.Context(), apiclient.Request{Method: http.MethodPost, Path: "/api/v1/sessions", JSON: auth.SessionRequest{WebAuthn: key},
		Header: hdr}, &created)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && strings.HasSuffix(ae.Type, "/mfa-required"):
		v.Error = "Your account has a second factor: enter its one-time code too, or use your security key."
		return s.renderSignIn(w, r, http.StatusForbidden, v)
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && key != nil:
		v.Error = "The sign-in did not succeed: check your password and your security key."
		return s.renderSignIn(w, r, http.StatusUnauthorized, v)
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		v.Error = "Unknown user or wrong password."
		return s.renderSignIn(w, r, http.StatusUnauthorized, v)
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		v.Error = "Too many failed sign-ins. Wait a minute and try again."
		return s.renderSignIn(w, r, http.StatusTooManyRequests, v)
	case err != nil:
		return err
	}
	s.setSession(w, created)
	http.Redirect(w, r.Request, v.Next, http.StatusSeeOther)
	return nil
}

// setSession gives the browser the session's cookie.
func (s *Site) setSession(w http.ResponseWriter, c auth.CreatedSession) {
	http.SetCookie(w, auth.SessionCookie(c.Secret, s.opts.SecureCookies))
}

func (s *Site) signOut(w http.ResponseWriter, r *Request) error {
	if s.opts.Auth {
		// The API ends the session only with the form's CSRF token.
		if err := r.Call(http.MethodDelete, "/api/v1/sessions/current", nil, nil); err != nil {
			return err
		}
	}
	http.SetCookie(w, auth.EndedSessionCookie(s.opts.SecureCookies))
	http.Redirect(w, r.Request, "/signin", http.StatusSeeOther)
	return nil
}

// oidcCookie keeps an OIDC sign-in's state, nonce and PKCE verifier in the
// browser while it visits the issuer: HttpOnly, only for /signin/oidc/,
// ten minutes, SameSite=Lax (the browser comes back from another site).
const oidcCookie = "custody_oidc"

type oidcPending struct {
	Issuer   string `json:"i"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
}

// decodePending reads the OIDC sign-in cookie.
func decodePending(v string) (oidcPending, error) {
	var p oidcPending
	if len(v) > 4096 {
		return p, errors.New("OIDC sign-in cookie too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil {
		return oidcPending{}, err
	}
	return p, nil
}

func (s *Site) oidcStart(w http.ResponseWriter, r *Request) error {
	id := r.PathValue("id")
	var st auth.OIDCStart
	if err := r.Get("/api/v1/sessions/oidc/"+urlPathEscape(id), &st); err != nil {
		return err
	}
	b, _ := json.Marshal(oidcPending{Issuer: id, State: st.State, Nonce: st.Nonce, Verifier: st.Verifier, Next: localPath(r.URL.Query().Get("next"))})
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/signin/oidc/",
		MaxAge: 600, HttpOnly: true, Secure: s.opts.SecureCookies, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r.Request, st.URL, http.StatusSeeOther)
	return nil
}

func (s *Site) oidcCallback(w http.ResponseWriter, r *Request) error {
	var p oidcPending
	c, err := r.Cookie(oidcCookie)
	if err == nil {
		p, err = decodePending(c.Value)
	}
	// The state binds the answer to the sign-in this browser started: an
	// answer from any other (a forged sign-in) is refused.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Path: "/signin/oidc/", MaxAge: -1, HttpOnly: true, Secure: s.opts.SecureCookies, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	if err != nil || p.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(p.State)) != 1 {
		return s.renderSignIn(w, r, http.StatusBadRequest, signInView{Next: "/", Error: "This sign-in was not started here, or took too long. Sign in again."})
	}
	if e := q.Get("error"); e != "" {
		return s.renderSignIn(w, r, http.StatusUnauthorized, signInView{Next: p.Next, Error: "The identity provider refused the sign-in: " + e + " " + q.Get("error_description")})
	}
	var created auth.CreatedSession
	err = r.Call(http.MethodPost, "/api/v1/sessions", auth.SessionRequest{OIDC: &auth.OIDCCode{Issuer: p.Issuer, Code: q.Get("code"), Verifier: p.Verifier, Nonce: p.Nonce}}, &created)
	var ae *apiclient.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		return s.renderSignIn(w, r, http.StatusUnauthorized, signInView{Next: p.Next, Error: "The sign-in with your identity provider did not succeed. Sign in again, or ask your administrator."})
	}
	if err != nil {
		return err
	}
	s.setSession(w, created)
	// The browser came from another site: a page of this site sends it
	// on, so the strict session cookie goes with the next request.
	return r.Render(w, http.StatusOK, "signin.html", "Signed in", signInView{Signed: true, Continue: localPath(p.Next)})
}
