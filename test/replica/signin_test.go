package replica

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// signIn sends one API request to a replica as admin with its password
// and, when code is set, a one-time code.
func signIn(t *testing.T, c *cluster, base, method, path, code, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", c.a.AdminPassword())
	if code != "" {
		req.Header.Set("X-Custody-OTP", code)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func otpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSignInStateAcrossReplicas: sign-in state one replica starts is
// finished by the other, as behind a load balancer without sticky
// sessions. A TOTP re-enrolment of an enrolled account started on
// replica A is confirmed on replica B, once; until then the old secret
// stays the factor. (The same store carries WebAuthn ceremonies: the
// PostgreSQL conformance suite takes them across two connections.)
func TestSignInStateAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	c := startCluster(t, true)
	start := func(base, code string) string {
		t.Helper()
		st, b := signIn(t, c, base, "POST", "/api/v1/mfa/totp", code, "")
		var e struct{ Secret string }
		if st != http.StatusCreated || json.Unmarshal(b, &e) != nil || e.Secret == "" {
			t.Fatalf("POST /api/v1/mfa/totp on %s: %d %s", base, st, b)
		}
		return e.Secret
	}
	confirm := func(base, code string) (int, []byte) {
		t.Helper()
		return signIn(t, c, base, "POST", "/api/v1/mfa/totp/confirm", "", `{"code":"`+code+`"}`)
	}

	// Enrol: started on A, confirmed on B.
	old := start(c.a.URL, "")
	now := time.Now()
	if st, b := confirm(c.b.URL, otpCode(t, old, now)); st != http.StatusOK {
		t.Fatalf("confirming the enrolment on replica B: %d %s", st, b)
	}
	// Re-enrol on A, stepping up with the old secret's next code (the
	// current one was used; a code of the step ahead is accepted).
	next := start(c.a.URL, otpCode(t, old, now.Add(30*time.Second)))
	if next == old {
		t.Fatal("the re-enrolment answered the old secret")
	}
	// Confirmed on B; before that, a wrong code there is refused and the
	// enrolment stays open.
	good := otpCode(t, next, time.Now())
	wrong := "000000"
	if good == wrong {
		wrong = "111111"
	}
	if st, b := confirm(c.b.URL, wrong); st != http.StatusUnauthorized {
		t.Fatalf("confirming with a wrong code on replica B: %d %s, want 401", st, b)
	}
	st, b := confirm(c.b.URL, good)
	var rc struct {
		Codes []string `json:"recoveryCodes"`
	}
	if st != http.StatusOK || json.Unmarshal(b, &rc) != nil || len(rc.Codes) == 0 {
		t.Fatalf("confirming the re-enrolment on replica B: %d %s, want 200 with recovery codes", st, b)
	}
	// Once: the same confirmation sent to A is refused.
	if st, b := confirm(c.a.URL, good); st != http.StatusBadRequest {
		t.Fatalf("confirming the finished re-enrolment again on replica A: %d %s, want 400", st, b)
	}
	// The new secret is the factor on both replicas: a recovery code of
	// the new enrolment steps up on A (it works once, so B refuses it).
	if st, b := signIn(t, c, c.a.URL, "GET", "/api/v1/users", rc.Codes[0], ""); st != http.StatusOK {
		t.Fatalf("a new recovery code on replica A: %d %s", st, b)
	}
	if st, b := signIn(t, c, c.b.URL, "GET", "/api/v1/users", rc.Codes[0], ""); st != http.StatusUnauthorized {
		t.Fatalf("the used recovery code on replica B: %d %s, want 401", st, b)
	}
}
