package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/pquerna/otp"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/auth"
)

// The Account pages: the caller's second factors (docs/ui.md). The MFA API
// decides everything (/api/v1/mfa, /api/v1/mfa/totp, /api/v1/mfa/webauthn,
// /api/v1/sessions/current/step-up); these pages carry the forms there.
// Security keys need script (navigator.credentials): assets/webauthn.js
// asks the API for a challenge, lets the browser sign it, and submits the
// answer with the page's form.

// accountRoutes mounts the Account pages.
func (s *Site) accountRoutes() {
	s.page("GET /account", s.account)
	s.page("POST /account/totp", s.accountStartTOTP)
	s.page("POST /account/totp/confirm", s.accountConfirmTOTP)
	s.page("POST /account/keys", s.accountAddKey)
	s.page("POST /account/keys/{id}/delete", s.accountDeleteKey)
	s.page("GET /account/step-up", s.stepUpPage)
	s.page("POST /account/step-up", s.stepUp)
}

// accountView is the Account page's data.
type accountView struct {
	Factors auth.FactorsView
	Done    string
	Error   string
}

// accountNotices are the notices a change redirects to (?done=KEY).
var accountNotices = map[string]string{
	"key-added":   "Security key added.",
	"key-removed": "Security key removed.",
	"stepped-up":  "Second factor confirmed.",
}

func (s *Site) account(w http.ResponseWriter, r *Request) error {
	v := accountView{Done: accountNotices[r.URL.Query().Get("done")]}
	if err := r.Get("/api/v1/mfa", &v.Factors); err != nil {
		return err
	}
	return r.Render(w, http.StatusOK, "account.html", "Account", v)
}

// totpView is the enrolment page: the new secret (once), then the
// recovery codes (once).
type totpView struct {
	Secret, URL string
	// QR is the otpauth URL as a QR code, a PNG data: URL made here (no
	// request leaves the server).
	QR            template.URL
	Error         string
	RecoveryCodes []string
}

func (s *Site) accountStartTOTP(w http.ResponseWriter, r *Request) error {
	var e auth.TOTPEnrolment
	if err := r.Call(http.MethodPost, "/api/v1/mfa/totp", nil, &e); err != nil {
		return err
	}
	return s.renderTOTP(w, r, http.StatusOK, totpView{Secret: e.Secret, URL: e.URL})
}

func (s *Site) renderTOTP(w http.ResponseWriter, r *Request, status int, v totpView) error {
	if v.URL != "" {
		v.QR = qrCode(v.URL)
	}
	return r.Render(w, status, "account_totp.html", "Authenticator app", v)
}

// qrCode renders an otpauth URL as a PNG data: URL, or "" when it cannot.
func qrCode(otpauth string) template.URL {
	key, err := otp.NewKeyFromURL(otpauth)
	if err != nil {
		return ""
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return ""
	}
	var b bytes.Buffer
	if png.Encode(&b, img) != nil {
		return ""
	}
	// The URL is made here from PNG bytes: safe as an img src.
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
}

func (s *Site) accountConfirmTOTP(w http.ResponseWriter, r *Request) error {
	var rc auth.RecoveryCodes
	err := r.Call(http.MethodPost, "/api/v1/mfa/totp/confirm", auth.CodeRequest{Code: strings.TrimSpace(r.PostFormValue("code"))}, &rc)
	var ae *apiclient.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusBadRequest) {
		// Show the secret again: the enrolment waits for a right code.
		secret, u := r.PostFormValue("secret"), r.PostFormValue("url")
		if !strings.HasPrefix(u, "otpauth://") {
			u = ""
		}
		return s.renderTOTP(w, r, ae.Status, totpView{Secret: secret, URL: u, Error: ae.Detail})
	}
	if err != nil {
		return err
	}
	return s.renderTOTP(w, r, http.StatusOK, totpView{RecoveryCodes: rc.Codes})
}

// webauthnField reads the form field a security key's answer arrives in
// (assets/webauthn.js fills it): {"ceremony","credential"}.
func webauthnField(r *Request) (*auth.WebAuthnAssertion, error) {
	v := r.PostFormValue("webauthn")
	if v == "" {
		return nil, nil
	}
	var a auth.WebAuthnAssertion
	if len(v) > 32<<10 || json.Unmarshal([]byte(v), &a) != nil || a.Ceremony == "" || len(a.Credential) == 0 {
		return nil, BadRequest("The security key's answer is malformed.")
	}
	return &a, nil
}

func (s *Site) accountAddKey(w http.ResponseWriter, r *Request) error {
	a, err := webauthnField(r)
	if err != nil {
		return err
	}
	if a == nil {
		return BadRequest("Adding a security key needs JavaScript: the browser talks to the key.")
	}
	if err := r.Call(http.MethodPost, "/api/v1/mfa/webauthn/confirm", a, nil); err != nil {
		return err
	}
	http.Redirect(w, r.Request, "/account?done=key-added", http.StatusSeeOther)
	return nil
}

func (s *Site) accountDeleteKey(w http.ResponseWriter, r *Request) error {
	if err := r.Call(http.MethodDelete, "/api/v1/mfa/webauthn/"+url.PathEscape(r.PathValue("id")), nil, nil); err != nil {
		return err
	}
	http.Redirect(w, r.Request, "/account?done=key-removed", http.StatusSeeOther)
	return nil
}

// stepUpView is the step-up prompt: a code or a security key, then back
// to Next, or (Then set) a form that repeats the refused action.
type stepUpView struct {
	Next   string
	Then   string
	Replay []formField
	Keys   bool
	Error  string
	// Done: the factor was accepted; the page offers to repeat Then.
	Done bool
}

type formField struct{ Name, Value string }

func (s *Site) stepUpPage(w http.ResponseWriter, r *Request) error {
	return s.renderStepUp(w, r, http.StatusOK, stepUpView{Next: localPath(r.URL.Query().Get("next"))})
}

func (s *Site) renderStepUp(w http.ResponseWriter, r *Request, status int, v stepUpView) error {
	var f auth.FactorsView
	if err := r.Get("/api/v1/mfa", &f); err == nil {
		v.Keys = f.WebAuthnAvailable && len(f.WebAuthn) > 0
	}
	return r.Render(w, status, "stepup.html", "Confirm with your second factor", v)
}

// stepUpPrompt answers a page whose API call was refused with
// step-up-required: the prompt, remembering what to do afterwards (the
// page itself for a GET; for a form, its fields, to post them again).
func (s *Site) stepUpPrompt(w http.ResponseWriter, r *Request, detail string) error {
	v := stepUpView{Next: "/account", Error: detail}
	if r.Method == http.MethodGet {
		v.Next = localPath(r.URL.RequestURI())
	} else if err := r.ParseForm(); err == nil {
		v.Then = localPath(r.URL.Path)
		for name, vals := range r.PostForm {
			if name == "csrf" || name == "webauthn" {
				continue
			}
			for _, val := range vals {
				v.Replay = append(v.Replay, formField{Name: name, Value: val})
			}
		}
	}
	slices.SortFunc(v.Replay, func(a, b formField) int { return strings.Compare(a.Name, b.Name) })
	return s.renderStepUp(w, r, http.StatusForbidden, v)
}

func (s *Site) stepUp(w http.ResponseWriter, r *Request) error {
	v := stepUpView{Next: localPath(r.PostFormValue("next"))}
	if then := r.PostFormValue("then"); then != "" {
		v.Then = localPath(then)
		for name, vals := range r.PostForm {
			if strings.HasPrefix(name, "replay.") {
				for _, val := range vals {
					v.Replay = append(v.Replay, formField{Name: strings.TrimPrefix(name, "replay."), Value: val})
				}
			}
		}
	}
	slices.SortFunc(v.Replay, func(a, b formField) int { return strings.Compare(a.Name, b.Name) })
	a, err := webauthnField(r)
	if err != nil {
		return err
	}
	req := auth.CodeRequest{Code: strings.TrimSpace(r.PostFormValue("code")), WebAuthn: a}
	err = r.Call(http.MethodPost, "/api/v1/sessions/current/step-up", req, nil)
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status != http.StatusForbidden && ae.Status/100 == 4 {
		v.Error = ae.Detail
		return s.renderStepUp(w, r, ae.Status, v)
	}
	if err != nil {
		return err
	}
	if v.Then == "" {
		next := v.Next
		if next == "/" || next == "/account" {
			next = "/account?done=stepped-up"
		}
		http.Redirect(w, r.Request, next, http.StatusSeeOther)
		return nil
	}
	v.Done = true
	return s.renderStepUp(w, r, http.StatusOK, v)
}
