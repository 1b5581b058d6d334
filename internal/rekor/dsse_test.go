//lint:file-ignore SA1019 the log still accepts Rekor v2's deprecated dsse v0.0.2 requests; this builds them.

package rekor_test

import (
	intoto "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	pb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"
)

// dsseRequest is a dsse v0.0.2 CreateEntryRequest.
func dsseRequest(env *intoto.Envelope, verifiers ...*pb.Verifier) []byte {
	b, err := protojson.Marshal(&pb.CreateEntryRequest{Spec: &pb.CreateEntryRequest_DsseRequestV002{DsseRequestV002: &pb.DSSERequestV002{
		Envelope: env, Verifiers: verifiers,
	}}})
	if err != nil {
		panic(err)
	}
	return b
}
