package browser

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// webauthnHarness starts a server with the default MFA policy whose
// external URL is http://localhost:PORT (browsers refuse an IP address as
// WebAuthn relying party), a browser that visits it by that name, and a
// virtual authenticator (the DevTools WebAuthn domain) in the browser.
func webauthnHarness(t *testing.T, stepUp string) (*harness, webauthn.AuthenticatorID) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	h := newHarness(t, options{Args: []string{"--addr", addr},
		Env: []string{"CUSTODY_WEB_URL=http://localhost:" + strconv.Itoa(port), "CUSTODY_MFA_ROLES=admin,promoter", "CUSTODY_MFA_STEP_UP=" + stepUp}})
	h.srv.URL = "http://localhost:" + strconv.Itoa(port)
	if _, err := chromedp.Call(h.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	return h, h.authenticator()
}

// addCredential is WebAuthn.addCredential with only the members these
// tests set: cdproto's Credential always sends
// generateCmtgKeyOnNextOperation, which Chromium refuses for an
// authenticator without that extension.
var addCredential = cdp.Command[struct {
	AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
	Credential      credential               `json:"credential"`
}, cdp.Empty]{Method: webauthn.CommandAddCredential}

type credential struct {
	CredentialID         []byte  `json:"credentialId"`
	IsResidentCredential bool    `json:"isResidentCredential"`
	RpID                 string  `json:"rpId"`
	PrivateKey           []byte  `json:"privateKey"`
	SignCount            float64 `json:"signCount"`
}

// putKey adds a credential to a new virtual authenticator and returns it.
func (h *harness) putKey(id []byte, rpID string, key []byte, signCount float64) webauthn.AuthenticatorID {
	h.t.Helper()
	a := h.authenticator()
	if _, err := chromedp.Call(h.ctx, addCredential, struct {
		AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
		Credential      credential               `json:"credential"`
	}{a, credential{CredentialID: id, RpID: rpID, PrivateKey: key, SignCount: signCount}}); err != nil {
		h.t.Fatalf("WebAuthn.addCredential: %v", err)
	}
	return a
}

// authenticator adds a virtual USB security key that answers at once.
func (h *harness) authenticator() webauthn.AuthenticatorID {
	h.t.Helper()
	res, err := chromedp.Call(h.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportUsb,
		AutomaticPresenceSimulation: true, IsUserVerified: true,
	}})
	if err != nil {
		h.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// signInWithKey signs in through the form with the password and the
// security key; it returns whether the browser ended up signed in, and
// the page's error.
func (h *harness) signInWithKey(user, password string) (bool, string) {
	h.t.Helper()
	h.visit("/signin")
	h.run("signing in with a security key as "+user,
		chromedp.SetValue(chromedp.ID("username"), user),
		chromedp.SetValue(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`button[data-webauthn="signin"]`)))
	var signedIn bool
	var problem string
	waitFor(h.t, "the sign-in to end", actionTimeout, func() bool {
		signedIn = eval[bool](h, `document.readyState === "complete" && document.querySelector(".user") !== null`)
		problem = eval[string](h, `(() => { const e = document.querySelector('p.notice.error:not([hidden])'); return e ? e.textContent : ""; })()`)
		return signedIn || problem != ""
	})
	return signedIn, problem
}

func (h *harness) signOut() {
	h.t.Helper()
	h.run("signing out", chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)), chromedp.WaitVisible(chromedp.ID("username")))
}

// apiText is an API answer read by the signed-in browser.
func (h *harness) apiText(path string) string {
	h.t.Helper()
	return eval[string](h, `fetch(`+"`"+path+"`"+`).then(r => r.text())`)
}

// TestWebAuthnSecurityKey: the first admin (whose role requires a second
// factor) registers a security key on the Account page, signs in with
// the password and the key, steps up with the key for a dangerous action
// (creating a user) that the step-up prompt then repeats; the audit log
// names the factor. A key whose signature does not verify, a cloned key
// whose counter lags, and a removed key are refused, and no session
// results.
func TestWebAuthnSecurityKey(t *testing.T) {
	const window = 4 * time.Second
	h, a1 := webauthnHarness(t, window.String())
	pass := h.srv.AdminPassword()

	// Password alone: the admin may only enrol.
	h.signIn("admin", pass)
	h.page("/account", "account")
	h.run("adding a security key",
		chromedp.SetValue(chromedp.ID("key-name"), "virtual key"),
		chromedp.Click(chromedp.CSS(`form[data-webauthn="register"] button[type="submit"]`)))
	h.waitLocation("the key added", func(l string) bool { return l == "/account?done=key-added" })
	if got := h.text("tbody"); !strings.Contains(got, "virtual key") {
		t.Fatalf("keys after adding one: %q", got)
	}
	h.screenshot("account-key")
	creds, err := chromedp.Call(h.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: a1})
	if err != nil || len(creds.Credentials) != 1 {
		t.Fatalf("the authenticator's credentials: %v, %v", creds, err)
	}
	real := creds.Credentials[0]
	h.signOut()

	// Password and key.
	if ok, problem := h.signInWithKey("admin", pass); !ok {
		t.Fatalf("signing in with the key: %s", problem)
	}
	signedIn := time.Now()
	if audit := h.apiText("/api/v1/audit/search?action=session.create"); !strings.Contains(audit, "password+webauthn") {
		t.Fatalf("the audit log of the sign-in does not name the key: %s", audit)
	}

	// Step-up: once the sign-in's factor is older than the window, creating
	// a user asks for a fresh one, and the prompt repeats the action.
	waitFor(t, "the sign-in's factor to age past the step-up window", 2*window, func() bool { return time.Since(signedIn) > window+500*time.Millisecond })
	h.visit("/admin/users")
	h.run("creating a user",
		chromedp.SetValue(chromedp.ID("new-name"), "carol"),
		chromedp.SetValue(chromedp.ID("new-password"), "carol-password-1234"),
		chromedp.Submit(chromedp.ID("new-name")),
		chromedp.WaitVisible(chromedp.CSS(`form[data-webauthn="stepup"]`)))
	h.axe("stepup")
	h.screenshot("stepup")
	if users := h.apiText("/api/v1/users"); strings.Contains(users, `"carol"`) {
		t.Fatalf("a user was created without the step-up: %s", users)
	}
	h.run("stepping up with the key",
		chromedp.Click(chromedp.CSS(`button[data-webauthn="assert"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/admin/users"] button[type="submit"]`)))
	h.run("repeating the action", chromedp.Click(chromedp.CSS(`form[action="/admin/users"] button[type="submit"]`)))
	h.waitLocation("the user created", func(l string) bool { return l == "/admin/users?done=user-created" })
	if audit := h.apiText("/api/v1/audit/search?action=user.create"); !strings.Contains(audit, "session+webauthn") {
		t.Fatalf("the audit log of the stepped-up change does not name the key: %s", audit)
	}
	// MFA status in the users list.
	if got := h.text("tbody"); !strings.Contains(got, "security key") {
		t.Fatalf("the users list does not show the admin's key: %q", got)
	}
	h.signOut()

	// The same credential ID on another authenticator: with another
	// private key (its signature does not verify), and with the real key
	// but a counter below the stored one (a clone).
	if _, err := chromedp.Call(h.ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: a1}); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := x509.MarshalPKCS8PrivateKey(other)
	for _, c := range []struct {
		what      string
		key       []byte
		signCount float64
	}{{"a key whose signature does not verify", otherKey, 50}, {"a cloned key with a lagging counter", real.PrivateKey, 0}} {
		a := h.putKey(real.CredentialID, real.RpID, c.key, c.signCount)
		if ok, _ := h.signInWithKey("admin", pass); ok {
			t.Fatalf("%s signed in", c.what)
		}
		if _, err := chromedp.Call(h.ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: a}); err != nil {
			t.Fatal(err)
		}
	}

	// The real key with its counter ahead still works; removed on the
	// Account page, it signs in no more.
	h.putKey(real.CredentialID, real.RpID, real.PrivateKey, 100)
	if ok, problem := h.signInWithKey("admin", pass); !ok {
		t.Fatalf("the real key after the refusals: %s", problem)
	}
	// Each refusal for its own reason, audited.
	denied := h.apiText("/api/v1/audit/search?action=login")
	for _, want := range []string{"the security key's answer did not verify", "signature counter that did not rise"} {
		if !strings.Contains(denied, want) {
			t.Errorf("the audit log lacks a refusal %q: %s", want, denied)
		}
	}
	h.visit("/account")
	h.run("removing the key", chromedp.Click(chromedp.CSS(`form[action^="/account/keys/"] button`)))
	h.waitLocation("the key removed", func(l string) bool { return l == "/account?done=key-removed" })
	h.signOut()
	if ok, problem := h.signInWithKey("admin", pass); ok || !strings.Contains(problem, "no security key") {
		t.Fatalf("a removed key: signed in %v, %q", ok, problem)
	}
}
