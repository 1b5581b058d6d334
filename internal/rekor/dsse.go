//lint:file-ignore SA1019 Rekor v2 deprecated its dsse kind; custody still accepts dsse v0.0.2 requests (logged as the hashedrekord sigstore-go sends for DSSE), so older clients keep working.

package rekor

import (
	"crypto"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore/pkg/signature"
)

// fromDSSE turns a DSSE request into the hashedrekord request of its
// envelope (exactly one signature and one verifier).
func fromDSSE(s *pb.CreateEntryRequest_DsseRequestV002) (*pb.HashedRekordRequestV002, error) {
	d := s.DsseRequestV002
	env := d.GetEnvelope()
	if env == nil {
		return nil, invalid("dsse request without an envelope")
	}
	if len(env.GetSignatures()) != 1 || len(d.GetVerifiers()) != 1 {
		return nil, invalid("dsse request with %d signatures and %d verifiers: exactly one of each is logged", len(env.GetSignatures()), len(d.GetVerifiers()))
	}
	v := d.GetVerifiers()[0]
	details, err := signature.GetAlgorithmDetails(v.GetKeyDetails())
	if err != nil {
		return nil, invalid("dsse verifier: %v", err)
	}
	hf := details.GetHashType()
	if hf == crypto.Hash(0) || !hf.Available() {
		return nil, invalid("dsse verifier: %s does not sign a digest (use the prehash variant)", v.GetKeyDetails())
	}
	h := hf.New()
	h.Write(dsse.PAE(env.GetPayloadType(), env.GetPayload()))
	return &pb.HashedRekordRequestV002{
		Digest:    h.Sum(nil),
		Signature: &pb.Signature{Content: env.GetSignatures()[0].GetSig(), Verifier: v},
	}, nil
}
