package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/account"
)

// TestKeyOnlyUserAddsTOTP: a user whose only factor is a security key,
// stepped up with it, starts a TOTP enrolment and confirms it with a code
// of the new secret; the key stays registered and TOTP counts from then
// on. (The enrolment used to wait beside a confirmed TOTP that a key-only
// user does not have, so the confirmation found nothing to confirm.)
func TestKeyOnlyUserAddsTOTP(t *testing.T) {
	f, mux, _ := mfaFixture(t)
	ctx := context.Background()
	c := f.signIn(mux, "dev")
	if err := f.st.PutWebAuthnKey(ctx, account.WebAuthnKey{User: "dev", ID: "a2V5", Name: "key", Record: []byte(`{}`), Created: f.now}); err != nil {
		t.Fatal(err)
	}
	// The key's assertion, as the step-up endpoint records it.
	if err := f.st.StepUpSession(ctx, sessionHash(c.Secret), FactorWebAuthn, f.now); err != nil {
		t.Fatal(err)
	}
	post := func(target, body string) *httptest.ResponseRecorder {
		r := withSession(httptest.NewRequest("POST", target, strings.NewReader(body)), c.Secret)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set(CSRFHeader, c.CSRF)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	w := post("/api/v1/mfa/totp", "")
	if w.Code != http.StatusCreated {
		t.Fatalf("a key-only user starting TOTP, stepped up with the key: %d %s", w.Code, w.Body)
	}
	var e TOTPEnrolment
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Secret == "" {
		t.Fatalf("enrolment %s: %v", w.Body, err)
	}
	if w := post("/api/v1/mfa/totp/confirm", `{"code":"`+f.code(e.Secret, 0)+`"}`); w.Code != http.StatusOK {
		t.Fatalf("confirming the key-only user's TOTP: %d %s", w.Code, w.Body)
	}
	fs, err := f.st.GetFactors(ctx, "dev")
	if err != nil || !fs.TOTPConfirmed || fs.TOTPSecret != e.Secret || len(fs.RecoveryHashes) == 0 {
		t.Fatalf("factors after the confirmation: %+v, %v", fs, err)
	}
	if keys, err := f.st.WebAuthnKeys(ctx, "dev"); err != nil || len(keys) != 1 {
		t.Fatalf("the security key after adding TOTP: %v, %v", keys, err)
	}
}
