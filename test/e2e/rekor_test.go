package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/auth/oidctest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
	"github.com/custody-dev/custody/internal/trustedroot"
)

// keyless is a custody server with its whole private Sigstore on: the CA,
// the time-stamp authority and the transparency log, an OIDC issuer on
// loopback, and the trusted root and signing config that describe them.
type keyless struct {
	srv           *testserver.Server
	base          string
	issuer        *oidctest.Issuer
	trustedRoot   string // trusted_root.json
	signingConfig string // signing_config.json
	logPub        crypto.PublicKey
	dir           string
}

// keylessIdentity is the workflow the tests sign as, on the test issuer's
// own origin (only GitHub's real issuer is certified as github.com).
func keylessIdentity(issuer string) string {
	return issuer + "/acme/app/.github/workflows/release.yml@refs/heads/main"
}

func startTransparency(t *testing.T) *keyless {
	t.Helper()
	s := testserver.StartSigstore(t, testserver.SigstoreOptions{CTLog: true, Rekor: true})
	k := &keyless{srv: s.Server, base: s.Base, issuer: s.Issuer, dir: s.Dir}
	pubPEM, _ := os.ReadFile(s.RekorPub)
	block, _ := pem.Decode(pubPEM)
	var err error
	if k.logPub, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		t.Fatal(err)
	}

	// The server's own trust documents: its CA, CT log, TSA and
	// transparency log, at their stable URLs.
	k.trustedRoot = filepath.Join(k.dir, "trusted_root.json")
	k.signingConfig = filepath.Join(k.dir, "signing_config.json")
	for path, file := range map[string]string{trustedroot.TrustedRootPath: k.trustedRoot, trustedroot.SigningConfigPath: k.signingConfig} {
		if err := os.WriteFile(file, k.get(t, path), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := root.NewTrustedRootFromPath(k.trustedRoot)
	if err != nil {
		t.Fatal(err)
	}
	logID := sha256.Sum256(block.Bytes)
	if l := tr.RekorLogs()[hex.EncodeToString(logID[:])]; l == nil || l.BaseURL != k.base {
		t.Fatalf("trusted_root.json does not name the transparency log at %s: %+v", k.base, tr.RekorLogs())
	}
	sc, err := root.NewSigningConfigFromPath(k.signingConfig)
	if err != nil || len(sc.RekorLogURLs()) != 1 || sc.RekorLogURLs()[0].URL != k.base || sc.RekorLogURLs()[0].MajorAPIVersion != 2 {
		t.Fatalf("signing_config.json rekorTlogUrls: %v %+v", err, sc)
	}
	return k
}

// trustedRootWith writes the server's trusted root with its transparency
// log's key replaced by logKey.
func (k *keyless) trustedRootWith(t *testing.T, logKey crypto.PublicKey) string {
	t.Helper()
	b, _ := os.ReadFile(k.trustedRoot)
	var tr prototrustroot.TrustedRoot
	if err := protojson.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(logKey)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	for _, l := range tr.GetTlogs() {
		l.PublicKey.RawBytes, l.LogId.KeyId, l.CheckpointKeyId = der, id[:], nil
	}
	out, err := protojson.Marshal(&tr)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(k.dir, "trusted_root_other_log.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (k *keyless) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(k.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// logSize is the size in the log's latest checkpoint.
func (k *keyless) logSize(t *testing.T) uint64 {
	t.Helper()
	lines := strings.SplitN(string(k.get(t, rekor.ReadPrefix+"checkpoint")), "\n", 3)
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint %q", lines)
	}
	return n
}

// token is a GitHub Actions job's OIDC token for acme/app's release
// workflow, in a file (cosign takes a long argument for a path).
func (k *keyless) token(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(k.issuer.Sign(t, k.issuer.GitHubJob("acme/app", "sigstore"))), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCosignKeylessTransparency is the keyless acceptance with the real
// cosign v3: it signs and attests an image and signs a blob with the
// server's signing_config.json (custody's CA, TSA and transparency log)
// and a workload's OIDC token; cosign verify, verify-attestation and
// verify-blob accept them with the server's trusted_root.json, the
// identity and the issuer, and no --insecure-* flag (the SCT and the log
// entry are checked), online and with the server stopped (the image saved
// to a directory, the blob's bundle alone). Another identity and a
// trusted root naming another log key are refused; a log entry with a bad
// signature is refused with 400 and nothing is appended.
func TestCosignKeylessTransparency(t *testing.T) {
	cosign := testserver.Client(t, "cosign3")
	k := startTransparency(t)
	admin := &authn.Basic{Username: "admin", Password: k.srv.AdminPassword()}
	ref, err := name.ParseReference(k.srv.Host()+"/apps/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img, remote.WithAuth(admin)); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	image := k.srv.Host() + "/apps/app@" + d.String()
	docker, work := t.TempDir(), t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + k.srv.AdminPassword()))
	if err := os.WriteFile(filepath.Join(docker, "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, k.srv.Host(), auth), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+docker, "TUF_ROOT="+t.TempDir(), "SIGSTORE_NO_CACHE=true")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(cosign, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("cosign %s: %v\n%s\nserver:\n%s", strings.Join(args, " "), err, out, k.srv.Logs())
		}
		return out
	}
	// The server's trust root names its log, so custody's own
	// verification counts its entries.
	served, err := key.ParseTrustRoot(k.get(t, "/api/v1/keys"))
	if err != nil || len(served.TransparencyLogs) != 1 || served.TransparencyLogs[0].Origin != "127.0.0.1" {
		t.Fatalf("served trust root: %v %+v", err, served.TransparencyLogs)
	}
	sizeBefore := k.logSize(t)
	signing := []string{"--signing-config", k.signingConfig, "--trusted-root", k.trustedRoot, "--identity-token", k.token(t), "--yes"}
	must(append(append([]string{"sign"}, signing...), "--allow-insecure-registry", image)...)
	predicate := filepath.Join(work, "predicate.json")
	if err := os.WriteFile(predicate, []byte(`{"builder":{"id":"https://github.com/acme/app/.github/workflows/release.yml"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	signing[5] = k.token(t)
	must(append(append([]string{"attest"}, signing...), "--allow-insecure-registry", "--predicate", predicate, "--type", "slsaprovenance1", image)...)
	blob, bundle := filepath.Join(work, "artifact.txt"), filepath.Join(work, "artifact.sigstore.json")
	if err := os.WriteFile(blob, []byte("an artifact built by acme/app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	signing[5] = k.token(t)
	must(append(append([]string{"sign-blob"}, signing...), "--bundle", bundle, blob)...)
	if got := k.logSize(t); got != sizeBefore+3 {
		t.Fatalf("log size %d after three signing events, want %d", got, sizeBefore+3)
	}

	identity := []string{"--trusted-root", k.trustedRoot, "--certificate-identity", keylessIdentity(k.issuer.Server.URL), "--certificate-oidc-issuer", k.issuer.Server.URL}
	out := must(append(append([]string{"verify"}, identity...), "--allow-insecure-registry", image)...)
	if !strings.Contains(out, "transparency log was verified") || !strings.Contains(out, "verified using trusted certificate authority") {
		t.Errorf("cosign verify did not check the log entry and the certificate:\n%s", out)
	}
	must(append(append([]string{"verify-attestation"}, identity...), "--allow-insecure-registry", "--type", "slsaprovenance1", image)...)
	must(append(append([]string{"verify-blob"}, identity...), "--bundle", bundle, blob)...)
	other := append([]string(nil), identity...)
	other[3] = k.issuer.Server.URL + "/evil/app/.github/workflows/release.yml@refs/heads/main"
	if out, err := run(append(append([]string{"verify"}, other...), "--allow-insecure-registry", image)...); err == nil {
		t.Fatalf("cosign verify accepted another identity:\n%s", out)
	}

	// A trusted root naming another log key: the entry does not count.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherRoot := k.trustedRootWith(t, &otherKey.PublicKey)
	untrusted := append([]string(nil), identity...)
	untrusted[1] = otherRoot
	if out, err := run(append(append([]string{"verify-blob"}, untrusted...), "--bundle", bundle, blob)...); err == nil {
		t.Fatalf("cosign verify-blob accepted an entry of a log the trusted root does not name:\n%s", out)
	}

	// A log entry whose signature does not verify: 400, nothing appended.
	sizeBefore = k.logSize(t)
	resp, err := http.Post(k.base+rekor.EntriesPath, "application/json", bytes.NewReader(badEntryRequest(t, bundle)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad entry: %d %s", resp.StatusCode, body)
	}
	if got := k.logSize(t); got != sizeBefore {
		t.Fatalf("log size %d after a refused entry, want %d", got, sizeBefore)
	}

	// Offline: the server is gone; the image saved to a directory and the
	// blob's bundle alone verify, a tampered blob does not.
	saved := filepath.Join(work, "image")
	must("save", "--allow-insecure-registry", "--dir", saved, image)
	if err := k.srv.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	must(append(append([]string{"verify"}, identity...), "--local-image", saved)...)
	must(append(append([]string{"verify-attestation"}, identity...), "--type", "slsaprovenance1", "--local-image", saved)...)
	must(append(append([]string{"verify-blob"}, identity...), "--bundle", bundle, blob)...)
	tampered := filepath.Join(work, "tampered.txt")
	if err := os.WriteFile(tampered, []byte("something else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(append(append([]string{"verify-blob"}, identity...), "--bundle", bundle, tampered)...); err == nil {
		t.Fatalf("cosign verify-blob accepted a tampered blob offline:\n%s", out)
	}
}

// badEntryRequest is the request cosign made for the blob's bundle with
// its signature changed.
func badEntryRequest(t *testing.T, bundlePath string) []byte {
	t.Helper()
	b, err := sgbundle.LoadJSONFromPath(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	ms := b.GetMessageSignature()
	cert := b.GetVerificationMaterial().GetCertificate()
	if ms == nil || cert == nil {
		t.Fatalf("bundle without a message signature or certificate: %v", b)
	}
	sig := append([]byte(nil), ms.GetSignature()...)
	sig[len(sig)-1] ^= 1
	req, err := protojson.Marshal(&rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
			Digest: ms.GetMessageDigest().GetDigest(),
			Signature: &rekorpb.Signature{Content: sig, Verifier: &rekorpb.Verifier{
				Verifier:   &rekorpb.Verifier_X509Certificate{X509Certificate: cert},
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
			}},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestCosignV2KeylessTransparency: cosign v2 as far as its flags allow:
// with --new-bundle-format it signs an image and a blob with the server's
// signing config (its transparency log included) and verifies them with
// the trusted root, the identity and the issuer (time from the TSA:
// --use-signed-timestamps; Rekor v2 entries carry no integrated time), no
// --insecure-* flag.
func TestCosignV2KeylessTransparency(t *testing.T) {
	cosign := testserver.Client(t, "cosign")
	k := startTransparency(t)
	admin := &authn.Basic{Username: "admin", Password: k.srv.AdminPassword()}
	ref, err := name.ParseReference(k.srv.Host()+"/apps/app:v2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img, remote.WithAuth(admin)); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	image := k.srv.Host() + "/apps/app@" + d.String()
	docker, work := t.TempDir(), t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + k.srv.AdminPassword()))
	if err := os.WriteFile(filepath.Join(docker, "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, k.srv.Host(), auth), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+docker, "TUF_ROOT="+t.TempDir(), "SIGSTORE_NO_CACHE=true")
	must := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cosign, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cosign %s: %v\n%s\nserver:\n%s", strings.Join(args, " "), err, out, k.srv.Logs())
		}
		return string(out)
	}
	before := k.logSize(t)
	signing := func() []string {
		return []string{"--new-bundle-format", "--signing-config", k.signingConfig, "--trusted-root", k.trustedRoot, "--identity-token", k.token(t), "--yes"}
	}
	must(append(append([]string{"sign"}, signing()...), "--allow-insecure-registry", image)...)
	blob, bundle := filepath.Join(work, "artifact.txt"), filepath.Join(work, "artifact.sigstore.json")
	if err := os.WriteFile(blob, []byte("built by acme/app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(append(append([]string{"sign-blob"}, signing()...), "--bundle", bundle, blob)...)
	if got := k.logSize(t); got != before+2 {
		t.Fatalf("log size %d after two signing events, want %d", got, before+2)
	}
	identity := []string{"--new-bundle-format", "--use-signed-timestamps", "--trusted-root", k.trustedRoot, "--certificate-identity", keylessIdentity(k.issuer.Server.URL), "--certificate-oidc-issuer", k.issuer.Server.URL}
	must(append(append([]string{"verify"}, identity...), "--allow-insecure-registry", image)...)
	must(append(append([]string{"verify-blob"}, identity...), "--bundle", bundle, blob)...)
}

// TestCosignKeyLogEntryInEvidence: cosign v3 signs and attests with a key
// through the server's signing config, so its bundles carry entries of the
// server's transparency log; custody's evidence counts the signature and
// the attestation with the served trust root (which names the log) and
// refuses both with a trust root that does not name the log.
func TestCosignKeyLogEntryInEvidence(t *testing.T) {
	cosign := testserver.Client(t, "cosign3")
	k := startTransparency(t)
	const password = "cosign pass"
	home, work := t.TempDir(), t.TempDir()
	admin := &authn.Basic{Username: "admin", Password: k.srv.AdminPassword()}
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + k.srv.AdminPassword()))
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, k.srv.Host(), auth), 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(k.srv.Host()+"/apps/app:keyed", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img, remote.WithAuth(admin)); err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	d, err := name.NewDigest(k.srv.Host()+"/apps/app@"+h.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	s, priv, _ := keyFiles(t, work, key.ECDSAP256, password)
	before := k.logSize(t)
	mustCosign(t, home, cosign, password, "sign", "--key", priv, "--signing-config", k.signingConfig, "--trusted-root", k.trustedRoot,
		"--allow-insecure-registry", "--yes", d.String())
	predicate := filepath.Join(work, "provenance.json")
	if err := os.WriteFile(predicate, []byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1","externalParameters":{"workflow":{"ref":"refs/heads/main","repository":"https://github.com/acme/app","path":".github/workflows/release.yml"}}},"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCosign(t, home, cosign, password, "attest", "--key", priv, "--signing-config", k.signingConfig, "--trusted-root", k.trustedRoot,
		"--predicate", predicate, "--type", "slsaprovenance1", "--allow-insecure-registry", "--yes", d.String())
	if got := k.logSize(t); got != before+2 {
		t.Fatalf("log size %d after cosign sign and attest --key, want %d", got, before+2)
	}

	served, err := key.ParseTrustRoot(k.get(t, "/api/v1/keys"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := key.ID(s.Public())
	pubPEM, _ := key.MarshalPublicKey(s.Public())
	served.Keys = append(served.Keys, key.TrustedKey{ID: id, Algorithm: key.ECDSAP256, Status: key.Active, PublicKey: string(pubPEM),
		ValidFor: key.Validity{Start: time.Now().Add(-time.Hour)}})
	judge := func(tr key.TrustRoot) (evidence.Signature, evidence.Attestation) {
		t.Helper()
		trust, err := evidence.NewTrust(tr)
		if err != nil {
			t.Fatal(err)
		}
		set := evidence.Collect(context.Background(), d, trust, sign.Options{Remote: []remote.Option{remote.WithAuth(admin)}})
		if len(set.Signatures) != 1 || len(set.Signatures[0].LogEntries) != 1 || len(set.Attestations) != 1 {
			t.Fatalf("signatures: %v %+v; attestations: %v %+v", set.SignatureErr, set.Signatures, set.AttestationErr, set.Attestations)
		}
		return set.Signatures[0], set.Attestations[0]
	}
	if sg, at := judge(served); !sg.Trusted() || !at.Trusted() {
		t.Fatalf("cosign's logged signature and attestation refused with the served trust root: %v; %v", sg.Err, at.Err)
	}
	withoutLog := served
	withoutLog.TransparencyLogs = nil
	sg, at := judge(withoutLog)
	if sg.Trusted() || !strings.Contains(sg.Err.Error(), "not trusted") {
		t.Fatalf("a signature's log entry of a log the trust root does not name counted: %v", sg.Err)
	}
	if at.Trusted() || !strings.Contains(at.Err.Error(), "not trusted") {
		t.Fatalf("an attestation's log entry of a log the trust root does not name counted: %v", at.Err)
	}
}
