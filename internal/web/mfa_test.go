package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/custody-dev/custody/internal/config"
)

// TestSignInWithOneTimeCode: under the default policy the first admin
// signs in with its password to enrol; once enrolled the sign-in form
// wants the code too, and signs in with it.
func TestSignInWithOneTimeCode(t *testing.T) {
	s := newSite(t, true, func(c *config.Config) { c.Auth.MFA.Roles = []string{"admin", "promoter"} })
	api := func(path, body string) []byte {
		req, _ := http.NewRequest("POST", s.url+path, bytes.NewReader([]byte(body)))
		req.SetBasicAuth("admin", s.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b.String())
		}
		return b.Bytes()
	}
	// Not enrolled yet: the password alone signs in (to enrol).
	if resp := s.browser().signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in before enrolling: %d", resp.StatusCode)
	}
	var e struct{ Secret string }
	_ = json.Unmarshal(api("/api/v1/mfa/totp", ""), &e)
	code, _ := totp.GenerateCode(e.Secret, time.Now())
	var rc struct{ RecoveryCodes []string }
	_ = json.Unmarshal(api("/api/v1/mfa/totp/confirm", `{"code":"`+code+`"}`), &rc)

	b := s.browser()
	resp, body := b.do("POST", "/signin", url.Values{"username": {"admin"}, "password": {s.admin}, "next": {"/"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "one-time code") || len(resp.Cookies()) != 0 {
		t.Fatalf("sign-in without the code: %d, cookies %v\n%s", resp.StatusCode, resp.Cookies(), body)
	}
	resp, _ = b.do("POST", "/signin", url.Values{"username": {"admin"}, "password": {s.admin}, "otp": {rc.RecoveryCodes[0]}, "next": {"/"}})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Fatalf("sign-in with a recovery code: %d", resp.StatusCode)
	}
}

// TestTOTPEnrolmentPages: the first admin, signed in with its password,
// is sent to set up a second factor; the Account pages show the new
// secret, its otpauth link and a QR code made on the server (a data: image,
// nothing fetched elsewhere), refuse a wrong code and keep the enrolment
// pending, show the recovery codes once, and the step-up prompt of a
// refused dangerous action takes a recovery code and repeats the action.
func TestTOTPEnrolmentPages(t *testing.T) {
	s := newSite(t, true, func(c *config.Config) {
		c.Auth.MFA.Roles = []string{"admin", "promoter"}
		c.Auth.MFA.StepUp = config.Duration(time.Second)
	})
	b := s.browser()
	if resp := b.signIn("admin", s.admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in to enrol: %d", resp.StatusCode)
	}
	if resp, body := b.do("GET", "/admin/users", nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `href="/account"`) {
		t.Fatalf("a page before enrolling: %d, want 403 with a link to Account\n%s", resp.StatusCode, body)
	}
	csrf := b.csrf("/account")
	resp, body := b.do("POST", "/account/totp", url.Values{"csrf": {csrf}})
	secret := regexp.MustCompile(`name="secret" value="([A-Z2-7]+)"`).FindStringSubmatch(body)
	if resp.StatusCode != 200 || secret == nil || !strings.Contains(body, "otpauth://totp/") || !strings.Contains(body, `src="data:image/png;base64,`) {
		t.Fatalf("enrolment page: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, `src="http`) || strings.Contains(body, `src="//`) {
		t.Fatalf("the enrolment page loads something from elsewhere:\n%s", body)
	}
	form := url.Values{"csrf": {csrf}, "secret": {secret[1]}, "url": {"otpauth://totp/x"}, "code": {"000000"}}
	if c, _ := totp.GenerateCode(secret[1], time.Now()); c == "000000" {
		form.Set("code", "111111")
	}
	resp, body = b.do("POST", "/account/totp/confirm", form)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, secret[1]) || !strings.Contains(body, "wrong or expired") {
		t.Fatalf("a wrong code: %d, want 401 with the secret again\n%s", resp.StatusCode, body)
	}
	if _, body := b.do("GET", "/account", nil); !strings.Contains(body, "waiting for its first code") {
		t.Fatalf("after a wrong code the enrolment is not pending:\n%s", body)
	}
	code, _ := totp.GenerateCode(secret[1], time.Now())
	form.Set("code", code)
	resp, body = b.do("POST", "/account/totp/confirm", form)
	codes := regexp.MustCompile(`<li>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</li>`).FindAllStringSubmatch(body, -1)
	if resp.StatusCode != 200 || len(codes) != 10 {
		t.Fatalf("recovery codes: %d, %d codes\n%s", resp.StatusCode, len(codes), body)
	}
	_, body = b.do("GET", "/account", nil)
	if !strings.Contains(body, "10 recovery codes left") || strings.Contains(body, codes[0][1]) {
		t.Fatalf("the account page after enrolling (codes shown again?):\n%s", body)
	}

	// A dangerous action once the factor is older than the window: the
	// prompt, nothing created; a recovery code; then the action repeated.
	confirmed := time.Now()
	for time.Since(confirmed) < 1500*time.Millisecond {
		time.Sleep(100 * time.Millisecond) // let the step-up window pass
	}
	csrf = b.csrf("/admin/users")
	resp, body = b.do("POST", "/admin/users", url.Values{"csrf": {csrf}, "name": {"dave"}, "password": {"dave-password-1234"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Confirm with your second factor") || !strings.Contains(body, `name="replay.name" value="dave"`) {
		t.Fatalf("a user created without a fresh factor: %d\n%s", resp.StatusCode, body)
	}
	if _, body := b.do("GET", "/admin/users", nil); strings.Contains(body, "dave") {
		t.Fatal("the refused user was created")
	}
	resp, body = b.do("POST", "/account/step-up", url.Values{"csrf": {csrf}, "then": {"/admin/users"}, "replay.name": {"dave"},
		"replay.password": {"dave-password-1234"}, "code": {codes[0][1]}})
	if resp.StatusCode != 200 || !strings.Contains(body, `<form method="post" action="/admin/users">`) || !strings.Contains(body, `name="name" value="dave"`) {
		t.Fatalf("step-up with a recovery code: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = b.do("POST", "/admin/users", url.Values{"csrf": {csrf}, "name": {"dave"}, "password": {"dave-password-1234"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/users?done=user-created" {
		t.Fatalf("repeating the action: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := b.do("GET", "/admin/users", nil); !strings.Contains(body, "authenticator app") {
		t.Fatalf("the users list does not show the admin's factor:\n%s", body)
	}
}
