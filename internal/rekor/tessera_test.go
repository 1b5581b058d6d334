package rekor_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"net/http"
	"net/url"
	"testing"

	v1 "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	pbs "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/rekor"
	"github.com/custody-dev/custody/internal/tlog"
)

// TestTilesWithTesseraClient reads the log with Tessera's tlog-tiles
// client (what rekor-tiles' reader uses): it verifies the checkpoint with
// the log's note verifier, builds inclusion proofs from the tiles of a
// tree taller than one tile, which match the proofs the write API
// answered, and reads the entries back from the entry bundles.
func TestTilesWithTesseraClient(t *testing.T) {
	s := startLog(t, nil)
	k, _ := key.Generate(key.ECDSAP256)
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	v := &pb.Verifier{Verifier: &pb.Verifier_PublicKey{PublicKey: &pb.PublicKey{RawBytes: der}}, KeyDetails: v1.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}
	const n = 300 // a full level-0 tile and a partial one
	bodies := make([][]byte, n)
	for i := range n {
		d := sha256.Sum256(binary.BigEndian.AppendUint32(nil, uint32(i)))
		sig, _ := ecdsa.SignASN1(rand.Reader, k.(*ecdsa.PrivateKey), d[:])
		e, err := s.log.Check(hashedRequest(d[:], sig, v))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.log.Add(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		bodies[i] = e.Body
	}
	u, _ := url.Parse(s.url + rekor.ReadPrefix)
	f, err := client.NewHTTPFetcher(u, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	nv, err := s.log.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := client.FetchCheckpoint(t.Context(), f.ReadCheckpoint, nv, s.log.Origin())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != n {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, n)
	}
	pbuild, err := client.NewProofBuilder(t.Context(), cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 1, 255, 256, 299} {
		p, err := pbuild.InclusionProof(t.Context(), i)
		if err != nil {
			t.Fatalf("proof of %d: %v", i, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, tlog.LeafHash(bodies[i]), p, cp.Hash); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		// The write API's proof of the same entry in the same tree.
		code, body := post(t, s, mustRequestFor(t, bodies[i]))
		var tle pbs.TransparencyLogEntry
		if code != http.StatusCreated || protojson.Unmarshal(body, &tle) != nil || uint64(tle.LogIndex) != i {
			t.Fatalf("re-adding entry %d: %d %s", i, code, body)
		}
		if len(tle.InclusionProof.Hashes) != len(p) {
			t.Fatalf("entry %d: the API's proof has %d hashes, the tiles' %d", i, len(tle.InclusionProof.Hashes), len(p))
		}
	}
	for _, i := range []uint64{0, 256} {
		eb, err := client.GetEntryBundle(t.Context(), f.ReadEntryBundle, i/rekor.TileWidth, cp.Size)
		if err != nil {
			t.Fatalf("entry bundle of %d: %v", i, err)
		}
		if got := string(eb.Entries[0]); got != string(bodies[i]) {
			t.Fatalf("entry bundle %d starts with %q, want %q", i/rekor.TileWidth, got, bodies[i])
		}
	}
}

// mustRequestFor rebuilds the hashedrekord request of a logged body.
func mustRequestFor(t *testing.T, body []byte) []byte {
	t.Helper()
	e, err := rekor.ParseBody(body)
	if err != nil {
		t.Fatal(err)
	}
	hr := e.GetSpec().GetHashedRekordV002()
	return hashedRequest(hr.GetData().GetDigest(), hr.GetSignature().GetContent(), hr.GetSignature().GetVerifier())
}
