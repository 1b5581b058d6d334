package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/custody-dev/custody/internal/meta/sqlite"
)

// replicaFixtures are two Services, as two replicas, over two stores on
// one database (each with its own connections, as separate processes
// have), sharing the first one's clock and signing key, with the API
// mounted on each.
func replicaFixtures(t *testing.T, tweak func(*Options)) (a, b *fixture, ma, mb *http.ServeMux) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	_, key, _ := ed25519.GenerateKey(nil)
	a = &fixture{t: t, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b = &fixture{t: t}
	for _, f := range []*fixture{a, b} {
		st, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		opts := Options{Store: st, SigningKey: key, Now: func() time.Time { return a.now },
			MFARoles: []Role{RoleAdmin, RolePromoter}, StepUpWindow: 5 * time.Minute}
		if tweak != nil {
			tweak(&opts)
		}
		f.st = st
		if f.s, err = New(opts); err != nil {
			t.Fatal(err)
		}
	}
	ma, mb = http.NewServeMux(), http.NewServeMux()
	a.s.Register(ma)
	b.s.Register(mb)
	a.user("root", true, nil, Grant{Subject: "user:root", Role: RoleAdmin, Repository: "**"})
	return a, b, ma, mb
}

// A TOTP re-enrolment started on one replica is confirmed on another (a
// load balancer without sticky sessions), once; until then the old
// secret holds, after it only the new one does.
func TestTOTPReenrolmentConfirmedOnAnotherReplica(t *testing.T) {
	a, _, ma, mb := replicaFixtures(t, nil)
	old, _ := a.enrol(ma, "root")
	a.now = a.now.Add(time.Minute)
	w := call(ma, "POST", "/api/v1/mfa/totp", "root", a.code(old, 0), "")
	if w.Code != http.StatusCreated {
		t.Fatalf("re-enrolment on replica A: %d %s", w.Code, w.Body)
	}
	var e TOTPEnrolment
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Secret == "" || e.Secret == old {
		t.Fatalf("re-enrolment answer %s: %v", w.Body, err)
	}
	// A wrong code on B is refused and the enrolment waits on.
	if w := call(mb, "POST", "/api/v1/mfa/totp/confirm", "root", "", `{"code":"`+wrongCode(a.code(e.Secret, 0))+`"}`); w.Code != http.StatusUnauthorized {
		t.Fatalf("confirming with a wrong code on replica B: %d %s, want 401", w.Code, w.Body)
	}
	if f, err := a.st.GetFactors(context.Background(), "root"); err != nil || f.TOTPSecret != old {
		t.Fatalf("a refused confirmation changed the factors: %+v, %v", f, err)
	}
	if w := call(mb, "POST", "/api/v1/mfa/totp/confirm", "root", "", `{"code":"`+a.code(e.Secret, 0)+`"}`); w.Code != http.StatusOK {
		t.Fatalf("confirming on replica B: %d %s, want 200", w.Code, w.Body)
	}
	if f, err := a.st.GetFactors(context.Background(), "root"); err != nil || f.TOTPSecret != e.Secret || !f.TOTPConfirmed {
		t.Fatalf("after confirming, factors = %+v, %v; want the new secret, confirmed", f, err)
	}
	// Confirmed once: the same enrolment is not confirmed again on A.
	a.now = a.now.Add(time.Minute)
	w = call(ma, "POST", "/api/v1/mfa/totp/confirm", "root", "", `{"code":"`+a.code(e.Secret, 0)+`"}`)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("confirming the finished enrolment again on replica A: %d %s, want 400", w.Code, w.Body)
	}
	if w := call(ma, "GET", "/api/v1/users", "root", a.code(old, 0), ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("the replaced secret's code: %d %s, want 401", w.Code, w.Body)
	}
	if w := call(ma, "GET", "/api/v1/users", "root", a.code(e.Secret, 0), ""); w.Code != http.StatusOK {
		t.Fatalf("the new secret's code on replica A: %d %s", w.Code, w.Body)
	}
}

// Of confirmations of one re-enrolment sent at once to both replicas,
// exactly one succeeds (one set of recovery codes is answered).
func TestTOTPReenrolmentConfirmedOnceAcrossReplicas(t *testing.T) {
	a, _, ma, mb := replicaFixtures(t, nil)
	old, _ := a.enrol(ma, "root")
	a.now = a.now.Add(time.Minute)
	w := call(ma, "POST", "/api/v1/mfa/totp", "root", a.code(old, 0), "")
	var e TOTPEnrolment
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &e) != nil {
		t.Fatalf("re-enrolment: %d %s", w.Code, w.Body)
	}
	body := `{"code":"` + a.code(e.Secret, 0) + `"}`
	const tries = 4 // within auth.mfa.otpFailures per replica
	codes := make(chan int, tries)
	var wg sync.WaitGroup
	for i := range tries {
		mux := []*http.ServeMux{ma, mb}[i%2]
		wg.Go(func() { codes <- call(mux, "POST", "/api/v1/mfa/totp/confirm", "root", "", body).Code })
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
		default:
			t.Fatalf("a concurrent confirmation answered %d", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent confirmations succeeded, want exactly 1", ok, tries)
	}
}

// A security key ceremony started on one replica is finished on another,
// once, by its user only, and not after it expired.
func TestKeyCeremonyTakenOnAnotherReplica(t *testing.T) {
	a, b, _, _ := replicaFixtures(t, func(o *Options) { o.WebURL = "https://registry.example" })
	ctx := context.Background()
	for _, register := range []bool{true, false} {
		want := ceremony{Name: "YubiKey", Data: sessionData("c1")}
		id, err := a.s.putCeremony(ctx, "root", register, want)
		if err != nil {
			t.Fatal(err)
		}
		if _, found, err := b.s.takeCeremony(ctx, id, "root", !register); err != nil || found {
			t.Fatalf("the ceremony was taken as the other kind: %v, %v", found, err)
		}
		if _, found, err := b.s.takeCeremony(ctx, id, "mallory", register); err != nil || found {
			t.Fatalf("another user took the ceremony: %v, %v", found, err)
		}
		got, found, err := b.s.takeCeremony(ctx, id, "root", register)
		if err != nil || !found || got.Name != want.Name || got.Data.Challenge != want.Data.Challenge {
			t.Fatalf("replica B took %+v, %v, %v; want %+v", got, found, err, want)
		}
		if _, found, err := a.s.takeCeremony(ctx, id, "root", register); err != nil || found {
			t.Fatalf("the ceremony was taken twice: %v, %v", found, err)
		}
	}
	id, err := a.s.putCeremony(ctx, "root", false, ceremony{Data: sessionData("c2")})
	if err != nil {
		t.Fatal(err)
	}
	a.now = a.now.Add(ceremonyLife + time.Second)
	if _, found, err := b.s.takeCeremony(ctx, id, "root", false); err != nil || found {
		t.Fatalf("an expired ceremony was taken: %v, %v", found, err)
	}
}

func sessionData(challenge string) webauthn.SessionData {
	return webauthn.SessionData{Challenge: challenge, RelyingPartyID: "registry.example", UserID: []byte("u")}
}
