package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dts "github.com/digitorus/timestamp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// TestServerTimestamping: a ring with a time-stamp authority serves it
// without credentials at sigstore's path, puts its chain in the trust
// root, and time-stamps what the server signs on push, so verification
// judges the key at the trusted time.
func TestServerTimestamping(t *testing.T) {
	data := t.TempDir()
	ring, err := key.Open(filepath.Join(data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Create(key.ECDSAP256, "server", []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	tsaKey, err := key.Generate(key.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := timestamp.NewChain(tsaKey, "server TSA", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.SetTSA(timestamp.EncodeChain(chain), tsaKey, []byte("ring-pass")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTODY_KEY_PASSWORD", "ring-pass")
	a := newAuthServer(t, func(c *config.Config) {
		c.Data = data
		c.Signing.OnPush = []string{"apps/**"}
		c.Signing.Timestamp.Policy = "1.2.3.4"
	})

	var tr key.TrustRoot
	if err := json.Unmarshal([]byte(a.must("GET", "/api/v1/keys", "", nil, http.StatusOK)), &tr); err != nil || len(tr.TimestampAuthorities) != 1 {
		t.Fatalf("trust root: %v %+v", err, tr)
	}
	if !tr.TimestampAuthorities[0].ValidFor.Start.Equal(chain[0].NotBefore) {
		t.Fatalf("TSA window %+v", tr.TimestampAuthorities[0].ValidFor)
	}

	// The endpoint, anonymous, as cosign and openssl call it.
	sum := sha256.Sum256([]byte("sig"))
	q, _ := (&dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Certificates: true}).Marshal()
	resp, err := http.Post("http://"+a.host+timestamp.Path, timestamp.QueryMediaType, bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != timestamp.ReplyMediaType {
		t.Fatalf("time-stamp: %d %s", resp.StatusCode, reply)
	}
	if _, err := timestamp.Verify(reply, []byte("sig"), tr.TimestampAuthorities); err != nil {
		t.Fatal(err)
	}
	if ts, _ := dts.ParseResponse(reply); ts == nil || ts.Policy.String() != "1.2.3.4" {
		t.Fatalf("policy not the configured one: %+v", ts)
	}
	resp, err = http.Post("http://"+a.host+timestamp.Path, timestamp.QueryMediaType, bytes.NewReader([]byte("junk")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("junk request: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	a.must("GET", timestamp.ChainPath, "", nil, http.StatusOK)

	// Signed on push, time-stamped by the ring's authority.
	if _, err := a.push("apps/web", "v1", basic("admin:"+a.admin)); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewDigest(a.host+"/apps/web@"+a.digestOf("apps/web", "v1"), name.Insecure)
	trust, err := evidence.NewTrust(tr)
	if err != nil {
		t.Fatal(err)
	}
	o := sign.Options{Remote: []remote.Option{remote.WithAuth(basic("admin:" + a.admin))}}
	var set *evidence.Set
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if set = evidence.Collect(context.Background(), ref, trust, o); len(set.TrustedSignatures()) == 2 {
			break
		}
	}
	if len(set.TrustedSignatures()) != 2 {
		t.Fatalf("signatures on push: %+v %v", set.Signatures, set.SignatureErr)
	}
	for _, s := range set.Signatures {
		if s.TimeSource != evidence.TimeFromTimestamp {
			t.Fatalf("%s signature judged at its %q time, not a time-stamp", s.Source, s.TimeSource)
		}
	}
	// Scrub re-verifies against the archived trust root, which keeps the
	// authority: the time-stamped signatures still count.
	rep, err := a.srv.Scrub(context.Background())
	if err != nil || !rep.OK() || rep.EvidenceChecked < 2 {
		t.Fatalf("scrub: %v %+v", err, rep)
	}
}
