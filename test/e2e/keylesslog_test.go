package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// TestCustodyKeylessTransparency: custody sign --keyless and custody
// attest --keyless log their signatures in the server's transparency log
// (found through its signing_config.json) and store the entry in the
// bundle; the real cosign v3 verifies them with the server's
// trusted_root.json and the identity, no --insecure-* flag; custody
// verify counts them; a stored entry moved to another log index or with
// an altered inclusion proof is refused.
func TestCustodyKeylessTransparency(t *testing.T) {
	cosign := cosign3(t)
	k := startTransparency(t)
	admin := &authn.Basic{Username: "admin", Password: k.srv.AdminPassword()}
	tokBytes, err := os.ReadFile(k.token(t))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(tokBytes))
	home := t.TempDir()
	trustRoot := filepath.Join(k.dir, "trust-root.json")
	if err := os.WriteFile(trustRoot, k.get(t, "/api/v1/keys"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := testserver.Binary(t)
	custody := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "CUSTODY_TOKEN="+tok, "SIGSTORE_ID_TOKEN="+tok)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := custody(args...)
		if err != nil {
			t.Fatalf("custody %s: %v\n%s\nserver:\n%s", strings.Join(args, " "), err, out, k.srv.Logs())
		}
		return out
	}
	push := func(tag string) name.Digest {
		t.Helper()
		img, _ := random.Image(256, 1)
		h, _ := img.Digest()
		ref, err := name.ParseReference(k.srv.Host()+"/apps/app:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(admin)); err != nil {
			t.Fatal(err)
		}
		d, err := name.NewDigest(k.srv.Host()+"/apps/app@"+h.String(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	index := regexp.MustCompile(`transparency log: +log index (\d+) \(`)
	identity := keylessIdentity(k.issuer.Server.URL)
	constraints := []string{"--certificate-identity", identity, "--certificate-oidc-issuer", k.issuer.Server.URL}

	d := push("v1")
	before := k.logSize(t)
	out := must("sign", "--keyless", d.String())
	m := index.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("custody sign --keyless did not say its log index:\n%s", out)
	}
	out = must("attest", "test-result", "--keyless", d.String(), "--result", "PASSED")
	ma := index.FindStringSubmatch(out)
	if ma == nil || ma[1] == m[1] {
		t.Fatalf("custody attest --keyless did not say a log index of its own (sign: %s):\n%s", m[1], out)
	}
	if got := k.logSize(t); got != before+2 {
		t.Fatalf("log size %d after a keyless signature and attestation, want %d", got, before+2)
	}

	// cosign v3 checks the certificate, its SCT, the time-stamp and the
	// log entry's inclusion in the signed checkpoint.
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	auth := map[string]any{"auths": map[string]any{k.srv.Host(): map[string]string{"username": "admin", "password": k.srv.AdminPassword()}}}
	ab, _ := json.Marshal(auth)
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), ab, 0o600); err != nil {
		t.Fatal(err)
	}
	cosignArgs := append([]string{"--trusted-root", k.trustedRoot}, constraints...)
	out = mustCosign(t, home, cosign, "", append(append([]string{"verify"}, cosignArgs...), "--allow-insecure-registry", d.String())...)
	if !strings.Contains(out, "transparency log was verified") {
		t.Fatalf("cosign verify did not check the log entry:\n%s", out)
	}
	mustCosign(t, home, cosign, "", append(append([]string{"verify-attestation"}, cosignArgs...),
		"--type", attest.PredicateTestResult, "--allow-insecure-registry", d.String())...)

	// custody's own rule counts the entries; custody verify accepts.
	tr, err := key.ParseTrustRoot(k.get(t, "/api/v1/keys"))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := evidence.NewTrust(tr)
	if err != nil {
		t.Fatal(err)
	}
	collect := func(d name.Digest) *evidence.Set {
		return evidence.Collect(context.Background(), d, trust, sign.Options{Remote: []remote.Option{remote.WithAuth(admin)}, Certificates: true})
	}
	set := collect(d)
	logged := 0
	for _, s := range set.Signatures {
		if s.Source == sign.SourceReferrer {
			if !s.Trusted() || len(s.LogEntries) != 1 {
				t.Fatalf("custody's keyless referrer signature: %v, %d entries", s.Err, len(s.LogEntries))
			}
			logged++
		}
	}
	for _, a := range set.Attestations {
		if !a.Trusted() {
			t.Fatalf("custody's keyless attestation (%s) refused: %v", a.Container, a.Err)
		}
		if a.PredicateType == attest.PredicateTestResult {
			logged++ // its bundle's entry is checked with it
		}
	}
	if logged < 2 {
		t.Fatalf("%d logged keyless signatures and attestations counted, want 2: %+v %+v", logged, set.Signatures, set.Attestations)
	}
	if out, err := custody(append([]string{"verify", d.String(), "--trust-root", trustRoot}, constraints...)...); err != nil {
		t.Fatalf("custody verify: %v\n%s", err, out)
	}

	// The stored entry tampered with (moved to another index, its
	// inclusion proof altered): it no longer fits the signed checkpoint,
	// and the signature does not count.
	for i, edit := range []func(entry map[string]any){
		func(entry map[string]any) {
			n, _ := strconv.ParseInt(entry["logIndex"].(string), 10, 64)
			entry["logIndex"] = strconv.FormatInt(n+1, 10)
		},
		func(entry map[string]any) {
			proof := entry["inclusionProof"].(map[string]any)
			hashes, _ := proof["hashes"].([]any)
			proof["hashes"] = append(hashes, base64.StdEncoding.EncodeToString(make([]byte, 32)))
		},
	} {
		dt := push("tampered" + strconv.Itoa(i))
		out = must("sign", "--keyless", "--storage", "referrer", dt.String())
		if index.FindStringSubmatch(out) == nil {
			t.Fatalf("custody sign --keyless --storage referrer did not log:\n%s", out)
		}
		editLogEntry(t, dt, admin, edit)
		moved := collect(dt)
		if len(moved.Signatures) != 1 {
			t.Fatalf("signatures of the tampered digest: %v %+v", moved.SignatureErr, moved.Signatures)
		}
		if s := moved.Signatures[0]; s.Trusted() || s.Err == nil || !strings.Contains(s.Err.Error(), "not included in the signed checkpoint") {
			t.Fatalf("tampering %d: a keyless signature with a tampered log entry: %v", i, s.Err)
		}
		if out, err := custody(append([]string{"verify", dt.String(), "--trust-root", trustRoot}, constraints...)...); err == nil {
			t.Fatalf("tampering %d: custody verify accepted a tampered log entry:\n%s", i, out)
		}
	}
}

// editLogEntry replaces d's one bundle referrer by a copy whose log entry
// edit changed (protojson as JSON).
func editLogEntry(t *testing.T, d name.Digest, auth authn.Authenticator, edit func(map[string]any)) {
	t.Helper()
	idx, err := remote.Referrers(d, remote.WithAuth(auth))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("referrers of %s: %v %+v", d, err, im)
	}
	old := d.Context().Digest(im.Manifests[0].Digest.String())
	desc, err := remote.Get(old, remote.WithAuth(auth))
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	if err := json.Unmarshal(desc.Manifest, &man); err != nil {
		t.Fatal(err)
	}
	layer := man["layers"].([]any)[0].(map[string]any)
	lh, _ := v1.NewHash(layer["digest"].(string))
	l, err := remote.Layer(d.Context().Digest(lh.String()), remote.WithAuth(auth))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	var bundle map[string]any
	if err := json.NewDecoder(rc).Decode(&bundle); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	entry := bundle["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
	edit(entry)
	b, _ := json.Marshal(bundle)
	nl := static.NewLayer(b, types.MediaType(sign.BundleMediaType))
	if err := remote.WriteLayer(d.Context(), nl, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
	nh, _ := nl.Digest()
	layer["digest"], layer["size"] = nh.String(), len(b)
	mb, _ := json.Marshal(man)
	mh, _, _ := v1.SHA256(strings.NewReader(string(mb)))
	if err := remote.Put(d.Context().Digest(mh.String()), rawManifest(mb), remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(old, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
}
