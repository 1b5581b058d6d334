package rekor_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	intoto "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgtlog "github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/tlog"
)

// recorder keeps the audit events of a test.
type recorder struct {
	mu sync.Mutex
	ev []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev = append(r.ev, e)
}

func (r *recorder) events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.ev...)
}

// testCA is a CA and a signer with a code-signing certificate from it.
type testCA struct {
	root    *x509.Certificate
	rootKey *ecdsa.PrivateKey
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{root: c, rootKey: k}
}

// issue returns a key and its 10-minute code-signing certificate for email.
func (ca *testCA) issue(t testing.TB, email string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), EmailAddresses: []string{email},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, &k.PublicKey, ca.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

// server is a log behind real HTTP on loopback.
type server struct {
	log   *rekor.Log
	url   string
	audit *recorder
	store tlog.Store
}

func startLog(t testing.TB, ca *testCA) *server {
	t.Helper()
	md, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	u := "http://" + srv.Listener.Addr().String()
	var trust func() rekor.Trust
	if ca != nil {
		trust = func() rekor.Trust { return rekor.TrustOf([]*x509.Certificate{ca.root}) }
	}
	l, err := rekor.Open(t.Context(), rekor.Options{Store: md.SigningLog(), Signer: key, URL: u, Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	(&rekor.Handler{Log: l, Audit: rec}).Register(mux)
	srv.Start()
	t.Cleanup(func() { srv.Close(); l.Close() })
	return &server{log: l, url: u, audit: rec, store: md.SigningLog()}
}

func hashedRequest(digest, sig []byte, v *pb.Verifier) []byte {
	b, err := protojson.Marshal(&pb.CreateEntryRequest{Spec: &pb.CreateEntryRequest_HashedRekordRequestV002{
		HashedRekordRequestV002: &pb.HashedRekordRequestV002{Digest: digest, Signature: &pb.Signature{Content: sig, Verifier: v}},
	}})
	if err != nil {
		panic(err)
	}
	return b
}

func certVerifier(c *x509.Certificate) *pb.Verifier {
	return &pb.Verifier{
		Verifier:   &pb.Verifier_X509Certificate{X509Certificate: &v1.X509Certificate{RawBytes: c.Raw}},
		KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
	}
}

func post(t testing.TB, s *server, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(s.url+rekor.EntriesPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func get(t testing.TB, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func size(t testing.TB, s *server) uint64 {
	t.Helper()
	n, err := s.store.TlogSize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// trustedRoot is the Sigstore trusted root of ca and the log.
func trustedRoot(t testing.TB, ca *testCA, l *rekor.Log) *root.TrustedRoot {
	t.Helper()
	tl := l.TrustedLog(time.Now().Add(-time.Hour))
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: ca.root, ValidityPeriodStart: ca.root.NotBefore}},
		nil, nil, map[string]*root.TransparencyLog{hex.EncodeToString(tl.ID): tl})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestHashedRekordVerifiesWithSigstoreGo logs a certificate-signed digest
// and checks the answer the way cosign v3 does: sigstore-go parses the
// entry, verifies the checkpoint (origin, key hint, signature) and the
// inclusion proof, and a bundle carrying it verifies against a trusted
// root naming the log.
func TestHashedRekordVerifiesWithSigstoreGo(t *testing.T) {
	ca := newCA(t, "custody test CA")
	s := startLog(t, ca)
	key, cert := ca.issue(t, "dev@example.com")
	artifact := sha256.Sum256([]byte("an artifact"))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, artifact[:])

	code, body := post(t, s, hashedRequest(artifact[:], sig, certVerifier(cert)))
	if code != http.StatusCreated {
		t.Fatalf("POST entries = %d %s", code, body)
	}
	var tle pbs.TransparencyLogEntry
	if err := protojson.Unmarshal(body, &tle); err != nil {
		t.Fatal(err)
	}
	if tle.GetKindVersion().GetKind() != "hashedrekord" || tle.GetKindVersion().GetVersion() != "0.0.2" || !bytes.Equal(tle.GetLogId().GetKeyId(), s.log.LogID()) {
		t.Fatalf("entry = %v", &tle)
	}
	if _, err := rekor.ParseBody(tle.CanonicalizedBody); err != nil {
		t.Fatal(err)
	}
	e, err := sgtlog.ParseTransparencyLogEntry(&tle)
	if err != nil {
		t.Fatal(err)
	}
	if err := sgtlog.ValidateEntry(e); err != nil {
		t.Fatal(err)
	}
	v, _ := signature.LoadVerifier(s.log.PublicKey(), crypto.SHA256)
	u, _ := url.Parse(s.url)
	if err := sgtlog.VerifyCheckpointAndInclusion(e, v, u.Hostname()); err != nil {
		t.Fatalf("sigstore-go: %v", err)
	}

	b := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &v1.X509Certificate{RawBytes: cert.Raw}},
			TlogEntries: []*pbs.TransparencyLogEntry{&tle},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &v1.MessageSignature{
			MessageDigest: &v1.HashOutput{Algorithm: v1.HashAlgorithm_SHA2_256, Digest: artifact[:]}, Signature: sig,
		}},
	}
	sb, err := bundle.NewBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := verify.NewVerifier(trustedRoot(t, ca, s.log), verify.WithTransparencyLog(1), verify.WithCurrentTime())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ver.Verify(sb, verify.NewPolicy(verify.WithArtifactDigest("sha256", artifact[:]), verify.WithoutIdentitiesUnsafe())); err != nil {
		t.Fatalf("sigstore-go verify: %v", err)
	}
	// Another log key (a log the trusted root does not name) does not
	// count: the entry is skipped and the threshold not met.
	other := startLog(t, ca)
	ver2, _ := verify.NewVerifier(trustedRoot(t, ca, other.log), verify.WithTransparencyLog(1), verify.WithCurrentTime())
	if _, err := ver2.Verify(sb, verify.NewPolicy(verify.WithArtifactDigest("sha256", artifact[:]), verify.WithoutIdentitiesUnsafe())); err == nil {
		t.Fatal("an entry of an untrusted log verified")
	}

	// The same request again answers with the same entry, logged once.
	code, body2 := post(t, s, hashedRequest(artifact[:], sig, certVerifier(cert)))
	var again pbs.TransparencyLogEntry
	if code != http.StatusCreated || protojson.Unmarshal(body2, &again) != nil || again.LogIndex != tle.LogIndex || size(t, s) != 1 {
		t.Fatalf("repeat = %d index %d, size %d", code, again.LogIndex, size(t, s))
	}
	ev := s.audit.events()
	if len(ev) != 2 || ev[0].Action != rekor.AddAction || ev[0].Result != "ok" || ev[0].Digest.Encoded() != hex.EncodeToString(artifact[:]) ||
		!strings.Contains(ev[0].Reason, "index 0") || !strings.Contains(ev[0].Reason, "dev@example.com") {
		t.Fatalf("audit = %+v", ev)
	}
}

// TestDSSERequest logs a DSSE envelope as the hashedrekord entry of its
// PAE, which is the entry sigstore-go rebuilds from a DSSE bundle.
func TestDSSERequest(t *testing.T) {
	ca := newCA(t, "custody test CA")
	s := startLog(t, ca)
	key, cert := ca.issue(t, "dev@example.com")
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	pae := sha256.Sum256(dsse.PAE("application/vnd.in-toto+json", payload))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, pae[:])
	req := dsseRequest(&intoto.Envelope{Payload: payload, PayloadType: "application/vnd.in-toto+json", Signatures: []*intoto.Signature{{Sig: sig}}},
		certVerifier(cert))
	code, body := post(t, s, req)
	if code != http.StatusCreated {
		t.Fatalf("POST dsse = %d %s", code, body)
	}
	var tle pbs.TransparencyLogEntry
	if err := protojson.Unmarshal(body, &tle); err != nil {
		t.Fatal(err)
	}
	b := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &v1.X509Certificate{RawBytes: cert.Raw}},
			TlogEntries: []*pbs.TransparencyLogEntry{&tle},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &intoto.Envelope{
			Payload: payload, PayloadType: "application/vnd.in-toto+json", Signatures: []*intoto.Signature{{Sig: sig}},
		}},
	}
	sb, err := bundle.NewBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := verify.NewVerifier(trustedRoot(t, ca, s.log), verify.WithTransparencyLog(1), verify.WithCurrentTime())
	if _, err := ver.Verify(sb, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithoutIdentitiesUnsafe())); err != nil {
		t.Fatalf("sigstore-go verify: %v", err)
	}
}

// TestRefusals: a bad signature, a certificate of another CA, an expired
// certificate, a certificate when the server has no CA, and malformed
// requests are answered 400 and nothing is logged; public keys are logged
// as Rekor logs them.
func TestRefusals(t *testing.T) {
	ca := newCA(t, "custody test CA")
	s := startLog(t, ca)
	key, cert := ca.issue(t, "dev@example.com")
	d := sha256.Sum256([]byte("x"))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
	otherKey, otherCert := newCA(t, "another CA").issue(t, "dev@example.com")
	otherSig, _ := ecdsa.SignASN1(rand.Reader, otherKey, d[:])
	bad := append([]byte(nil), sig...)
	bad[len(bad)-1] ^= 1
	other := sha256.Sum256([]byte("y"))

	for _, c := range []struct {
		name string
		body []byte
	}{
		{"bad signature", hashedRequest(d[:], bad, certVerifier(cert))},
		{"signature over another digest", hashedRequest(other[:], sig, certVerifier(cert))},
		{"certificate of another CA", hashedRequest(d[:], otherSig, certVerifier(otherCert))},
		{"short digest", hashedRequest(d[:16], sig, certVerifier(cert))},
		{"no verifier", hashedRequest(d[:], sig, nil)},
		{"not JSON", []byte("{")},
		{"unknown field", []byte(`{"hashedRekordRequestV002":{},"extra":1}`)},
		{"empty", []byte(`{}`)},
		{"dsse with two signatures", dsseRequest(&intoto.Envelope{Payload: []byte("{}"), PayloadType: "t", Signatures: []*intoto.Signature{{Sig: sig}, {Sig: sig}}},
			certVerifier(cert))},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(s.audit.events())
			code, body := post(t, s, c.body)
			if code != http.StatusBadRequest || !strings.Contains(string(body), "invalid") {
				t.Fatalf("= %d %s, want 400", code, body)
			}
			if n := size(t, s); n != 0 {
				t.Fatalf("log size %d after a refusal", n)
			}
			if ev := s.audit.events(); len(ev) != before+1 || ev[before].Result != "invalid" {
				t.Fatalf("audit = %+v", ev[before:])
			}
		})
	}

	t.Run("certificate without a CA", func(t *testing.T) {
		s := startLog(t, nil)
		if code, body := post(t, s, hashedRequest(d[:], sig, certVerifier(cert))); code != http.StatusBadRequest || size(t, s) != 0 {
			t.Fatalf("= %d %s", code, body)
		}
	})
	t.Run("public key", func(t *testing.T) {
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		v := &pb.Verifier{Verifier: &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}, KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}
		if code, body := post(t, s, hashedRequest(d[:], sig, v)); code != http.StatusCreated || size(t, s) != 1 {
			t.Fatalf("= %d %s", code, body)
		}
	})
}

// TestTiles reads the log as a tlog-tiles client does: the checkpoint,
// the level-0 tile and the entry bundle, and recomputes the root.
func TestTiles(t *testing.T) {
	s := startLog(t, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	v := &pb.Verifier{Verifier: &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}, KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}
	const n = 5
	for i := range n {
		d := sha256.Sum256([]byte{byte(i)})
		sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
		if code, body := post(t, s, hashedRequest(d[:], sig, v)); code != http.StatusCreated {
			t.Fatalf("POST = %d %s", code, body)
		}
	}
	code, note := get(t, s.url+rekor.ReadPrefix+"checkpoint")
	if code != http.StatusOK {
		t.Fatalf("checkpoint = %d", code)
	}
	nv, err := s.log.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.OpenCheckpointWith(nv, note)
	if err != nil || cp.Size != n {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	code, tile := get(t, s.url+rekor.ReadPrefix+"tile/0/000.p/5")
	if code != http.StatusOK || len(tile) != n*32 {
		t.Fatalf("tile = %d, %d bytes", code, len(tile))
	}
	code, bundle := get(t, s.url+rekor.ReadPrefix+"tile/entries/000.p/5")
	if code != http.StatusOK {
		t.Fatalf("entry bundle = %d", code)
	}
	var hashes [][]byte
	for i := 0; len(bundle) > 0; i++ {
		l := int(binary.BigEndian.Uint16(bundle))
		e := bundle[2 : 2+l]
		bundle = bundle[2+l:]
		if _, err := rekor.ParseBody(e); err != nil {
			t.Fatal(err)
		}
		h := tlog.LeafHash(e)
		if !bytes.Equal(h, tile[32*i:32*i+32]) {
			t.Fatalf("entry %d: leaf hash differs from the tile's", i)
		}
		hashes = append(hashes, h)
	}
	if !bytes.Equal(tlog.RootFromLeafHashes(hashes), cp.Root) {
		t.Fatal("the tile's hashes do not make the checkpoint's root")
	}
	for _, p := range []string{"tile/0/000", "tile/0/000.p/6", "tile/1/000.p/1", "tile/entries/001.p/1", "tile/0/x000/000", "tile/0/00"} {
		if code, _ := get(t, s.url+rekor.ReadPrefix+p); code != http.StatusNotFound {
			t.Errorf("%s = %d, want 404", p, code)
		}
	}
}

func TestTilePath(t *testing.T) {
	for _, c := range []struct {
		path string
		want rekor.Tile
	}{
		{"tile/0/000", rekor.Tile{}},
		{"tile/2/x001/x234/067.p/8", rekor.Tile{Level: 2, Index: 1234067, Width: 8}},
		{"tile/entries/x001/000", rekor.Tile{Entries: true, Index: 1000}},
	} {
		got, err := rekor.ParseTilePath(c.path)
		if err != nil || got != c.want || got.Path() != c.path {
			t.Errorf("%s = %+v, %v (path %s)", c.path, got, err, got.Path())
		}
	}
	for _, p := range []string{"tile/0/1", "tile/00/000", "tile/0/001.p/256", "tile/0/001.p/0", "tile/0/001.p/01", "tile/0/x000/001", "tile/0/001/002", "tile/a/000", "tile/0/-01"} {
		if _, err := rekor.ParseTilePath(p); err == nil {
			t.Errorf("%s parsed", p)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	ca := newCA(f, "fuzz CA")
	key, cert := ca.issue(f, "dev@example.com")
	d := sha256.Sum256([]byte("x"))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
	f.Add(hashedRequest(d[:], sig, certVerifier(cert)))
	f.Add([]byte(`{"dsseRequestV002":{"envelope":{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA=="}]},"verifiers":[{"publicKey":{"rawBytes":"AA=="},"keyDetails":"PKIX_ECDSA_P256_SHA_256"}]}}`))
	f.Add([]byte(`{}`))
	trust := rekor.TrustOf([]*x509.Certificate{ca.root})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := rekor.ParseRequest(b)
		if err != nil {
			return
		}
		e, err := rekor.NewEntry(req, trust, time.Now())
		if err != nil {
			return
		}
		if _, err := rekor.ParseBody(e.Body); err != nil {
			t.Fatalf("an accepted entry's body does not parse: %v", err)
		}
	})
}

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"SHA2_256","digest":"AA=="}}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := rekor.ParseBody(b); err != nil {
			return
		}
		var e pb.Entry
		if protojson.Unmarshal(b, &e) != nil {
			t.Fatal("accepted a body protojson refuses")
		}
	})
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/2/x001/x234/067.p/8", "tile/entries/x001/000", "tile/0/x000/001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tl, err := rekor.ParseTilePath(p)
		if err != nil {
			return
		}
		if tl.Path() != p {
			t.Fatalf("%q parsed to %+v, which is %q", p, tl, tl.Path())
		}
	})
}

// BenchmarkAdd measures one certificate-signed entry end to end in
// process: parse, verify, append (SQLite), sign a checkpoint, prove.
func BenchmarkAdd(b *testing.B) {
	ca := newCA(b, "bench CA")
	s := startLog(b, ca)
	key, cert := ca.issue(b, "dev@example.com")
	reqs := make([][]byte, b.N)
	for i := range reqs {
		d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
		reqs[i] = hashedRequest(d[:], sig, certVerifier(cert))
	}
	b.ResetTimer()
	for i := range b.N {
		e, err := s.log.Check(reqs[i])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.log.Add(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddParallel is BenchmarkAdd with concurrent clients, whose
// appends share commits.
func BenchmarkAddParallel(b *testing.B) {
	ca := newCA(b, "bench CA")
	s := startLog(b, ca)
	key, cert := ca.issue(b, "dev@example.com")
	var mu sync.Mutex
	n := uint64(0)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
			sig, _ := ecdsa.SignASN1(rand.Reader, key, d[:])
			e, err := s.log.Check(hashedRequest(d[:], sig, certVerifier(cert)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.log.Add(context.Background(), e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
