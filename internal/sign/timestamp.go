package sign

import (
	"context"
	"encoding/json"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// TimestampAnnotation is the layer annotation in which cosign v2 stores an
// RFC 3161 time-stamp of a .sig or .att layer: JSON
// {"SignedRFC3161Timestamp": base64 DER time-stamp response}. For a
// signature the token covers the raw signature bytes; for an attestation
// layer (whose signature annotation is empty), the whole DSSE envelope.
const TimestampAnnotation = "dev.sigstore.cosign/rfc3161timestamp"

// maxTimestamps bounds the time-stamps read from one bundle.
const maxTimestamps = 8

// Timestamp is an RFC 3161 time-stamp found with a signature: the DER
// time-stamp response and the bytes it must cover. Nothing is verified
// here; internal/evidence checks it against the trusted authorities.
type Timestamp struct {
	Response []byte
	Over     []byte
}

// cosignTimestamp is the JSON of TimestampAnnotation.
type cosignTimestamp struct {
	SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
}

// stamp asks opts.Timestamper for a time-stamp over data; nil without one.
func (o Options) stamp(ctx context.Context, data []byte) ([]byte, error) {
	if o.Timestamper == nil {
		return nil, nil
	}
	resp, err := o.Timestamper(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("time-stamping the signature: %w", err)
	}
	return resp, nil
}

// timestampAnnotation adds cosign's time-stamp annotation to ann when
// resp is not nil.
func timestampAnnotation(ann map[string]string, resp []byte) (map[string]string, error) {
	if resp == nil {
		return ann, nil
	}
	b, err := json.Marshal(cosignTimestamp{SignedRFC3161Timestamp: resp})
	if err != nil {
		return nil, err
	}
	ann[TimestampAnnotation] = string(b)
	return ann, nil
}

// layerTimestamps reads cosign's time-stamp annotation of a layer.
func layerTimestamps(ann map[string]string, over []byte) []Timestamp {
	v := ann[TimestampAnnotation]
	if v == "" {
		return nil
	}
	var ct cosignTimestamp
	if json.Unmarshal([]byte(v), &ct) != nil || len(ct.SignedRFC3161Timestamp) == 0 {
		return nil
	}
	return []Timestamp{{Response: ct.SignedRFC3161Timestamp, Over: over}}
}

// bundleTimestamps reads a bundle's RFC 3161 time-stamps, over sig.
func bundleTimestamps(pb *protobundle.Bundle, sig []byte) []Timestamp {
	var out []Timestamp
	for _, ts := range pb.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps() {
		if len(out) == maxTimestamps {
			break
		}
		if len(ts.GetSignedTimestamp()) > 0 {
			out = append(out, Timestamp{Response: ts.GetSignedTimestamp(), Over: sig})
		}
	}
	return out
}

// addBundleTimestamp puts resp in a bundle's verification material, where
// cosign v3 and sigstore-go look for it.
func addBundleTimestamp(b *protobundle.Bundle, resp []byte) {
	if resp == nil {
		return
	}
	b.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
		Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: resp}},
	}
}
