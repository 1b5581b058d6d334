package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
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
