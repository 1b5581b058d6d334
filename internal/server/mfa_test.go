package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/pquerna/otp/totp"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestMFAEndToEnd: with the default policy the first admin signs in with
// its password only to enrol; custody login then asks for a code and
// stores a sign-in token; a grant change with it needs a fresh code
// ($CUSTODY_OTP), and the audit log names the factor.
func TestMFAEndToEnd(t *testing.T) {
	// A step-up window of a second: the sign-in token's first second
	// counts as a step-up; the test waits it out (staleSignIn).
	srv := testserver.Start(t, testserver.Options{Auth: true, Env: []string{"CUSTODY_MFA_ROLES=admin,promoter", "CUSTODY_MFA_STEP_UP=1s"}})
	pass := srv.AdminPassword()
	api := func(method, path, code string, body any) (int, []byte) {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		req.SetBasicAuth("admin", pass)
		if code != "" {
			req.Header.Set("X-Custody-OTP", code)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	if code, body := api("GET", "/api/v1/users", "", nil); code != 403 || !strings.Contains(string(body), "/mfa-required") {
		t.Fatalf("first admin without a factor: %d %s, want 403 mfa-required", code, body)
	}
	code, body := api("POST", "/api/v1/mfa/totp", "", nil)
	if code != 201 {
		t.Fatalf("start enrolment: %d %s", code, body)
	}
	var e struct{ Secret string }
	_ = json.Unmarshal(body, &e)
	otp, err := totp.GenerateCode(e.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, body = api("POST", "/api/v1/mfa/totp/confirm", "", map[string]string{"code": otp})
	if code != 200 {
		t.Fatalf("confirm enrolment: %d %s", code, body)
	}
	var rc struct{ RecoveryCodes []string }
	_ = json.Unmarshal(body, &rc)
	if len(rc.RecoveryCodes) != 10 {
		t.Fatalf("recovery codes: %s", body)
	}

	home := t.TempDir()
	custody := func(env []string, stdin string, args ...string) (string, error) {
		cmd := exec.Command(testserver.Binary(t), args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+home+"/docker", "XDG_CONFIG_HOME="+home+"/xdg", "HOME="+home, "CUSTODY_SERVER=", "CUSTODY_TOKEN=")
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The code on the second line of standard input (a recovery code
	// here: TOTP codes depend on the clock).
	out, err := custody(nil, pass+"\n"+rc.RecoveryCodes[0]+"\n", "login", srv.Host(), "-u", "admin", "--password-stdin")
	if err != nil || !strings.Contains(out, "custody login") {
		t.Fatalf("custody login: %v\n%s", err, out)
	}
	// staleSignIn waits until the sign-in's step-up window has passed:
	// deleting a user that does not exist is refused for the missing
	// step-up before it is looked up.
	staleSignIn := func(probe func() (string, error)) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := probe()
			if err != nil && strings.Contains(out, "step-up-required") || strings.Contains(out, "Recent second factor required") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sign-in's step-up window did not end: %v %s", err, out)
			}
			time.Sleep(100 * time.Millisecond) // poll the server's clock, gently
		}
	}
	staleSignIn(func() (string, error) { return custody(nil, "", "user", "delete", "nobody") })
	out, err = custody(nil, "", "grant", "add", "user:dev", "reader", "x/**")
	if err == nil || !strings.Contains(out, "Recent second factor required") || !strings.Contains(out, "CUSTODY_OTP") {
		t.Fatalf("grant add without a fresh code: %v\n%s, want a step-up refusal", err, out)
	}
	if _, body := api("GET", "/api/v1/grants", rc.RecoveryCodes[1], nil); strings.Contains(string(body), "x/**") {
		t.Fatalf("a refused grant change was stored: %s", body)
	}
	if out, err := custody([]string{"CUSTODY_OTP=" + rc.RecoveryCodes[2]}, "", "grant", "add", "user:dev", "reader", "x/**"); err != nil {
		t.Fatalf("grant add with a fresh code: %v\n%s", err, out)
	}
	code, body = api("GET", "/api/v1/audit/entries", rc.RecoveryCodes[3], nil)
	if code != 200 || !strings.Contains(string(body), "token+recovery") {
		t.Fatalf("audit of the grant change: %d %s, want auth token+recovery", code, body)
	}

	// Clearing a legal hold with a sign-in token needs a fresh code.
	code, body = api("POST", "/api/v1/tokens", rc.RecoveryCodes[4], map[string]any{"name": "custody login", "signIn": true, "expiresIn": "1h",
		"scopes": []map[string]any{{"role": "admin", "repositories": []string{"**"}}}})
	if code != 201 {
		t.Fatalf("sign-in token: %d %s", code, body)
	}
	var tok struct{ Secret string }
	_ = json.Unmarshal(body, &tok)
	bearer := func(method, path, ctype, otp string, content []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(content))
		req.Header.Set("Authorization", "Bearer "+tok.Secret)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if otp != "" {
			req.Header.Set("X-Custody-OTP", otp)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return resp.StatusCode, out.String()
	}
	cfg, layer := []byte(`{"held":1}`), []byte("held layer")
	for _, b := range [][]byte{cfg, layer} {
		if code, body := bearer("POST", "/v2/held/x/blobs/uploads/?digest="+digest.FromBytes(b).String(), "application/octet-stream", "", b); code != 201 {
			t.Fatalf("upload: %d %s", code, body)
		}
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromBytes(cfg).String() + `","size":10},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		digest.FromBytes(layer).String() + `","size":10}]}`)
	md := digest.FromBytes(m)
	if code, body := bearer("PUT", "/v2/held/x/manifests/"+md.String(), "application/vnd.oci.image.manifest.v1+json", "", m); code != 201 {
		t.Fatalf("put manifest: %d %s", code, body)
	}
	if code, body := bearer("PUT", "/api/v1/hold/held/x/@"+md.String(), "application/json", "", nil); code/100 != 2 {
		t.Fatalf("hold: %d %s", code, body)
	}
	staleSignIn(func() (string, error) {
		code, body := bearer("DELETE", "/api/v1/users/nobody", "", "", nil)
		return body, fmt.Errorf("%d", code)
	})
	if code, body := bearer("DELETE", "/api/v1/hold/held/x/@"+md.String(), "", "", nil); code != 403 || !strings.Contains(body, "/step-up-required") {
		t.Fatalf("clearing the hold without a fresh code: %d %s, want 403 step-up-required", code, body)
	}
	if code, body := bearer("GET", "/api/v1/retention/held/x/@"+md.String(), "", "", nil); code != 200 || !strings.Contains(body, `"legalHold": true`) {
		t.Fatalf("the hold after a refused clearing: %d %s", code, body)
	}
	if code, body := bearer("DELETE", "/api/v1/hold/held/x/@"+md.String(), "", rc.RecoveryCodes[5], nil); code/100 != 2 {
		t.Fatalf("clearing the hold with a fresh code: %d %s", code, body)
	}
}
