package sign

import (
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxLogEntries bounds the transparency log entries read from one bundle.
const maxLogEntries = 8

// LogEntry is a transparency log entry stored with a signature (a
// bundle's tlogEntries), not verified: internal/evidence checks it.
type LogEntry struct {
	// Entry is the TransparencyLogEntry (protojson).
	Entry []byte
	// Signature is the signature the entry should log, and Signed the
	// bytes it signs (the DSSE envelope's PAE).
	Signature, Signed []byte
}

// bundleLogEntries reads a DSSE bundle's transparency log entries.
func bundleLogEntries(pb *protobundle.Bundle, sig []byte) []LogEntry {
	env := pb.GetDsseEnvelope()
	if env == nil {
		return nil
	}
	var out []LogEntry
	for _, e := range pb.GetVerificationMaterial().GetTlogEntries() {
		if len(out) == maxLogEntries {
			break
		}
		b, err := protojson.Marshal(e)
		if err != nil {
			continue
		}
		out = append(out, LogEntry{Entry: b, Signature: sig, Signed: dsse.PAE(env.GetPayloadType(), env.GetPayload())})
	}
	return out
}

// addBundleLogEntry adds a TransparencyLogEntry (protojson) to a bundle's
// tlogEntries.
func addBundleLogEntry(bundle, entry []byte) ([]byte, error) {
	pb, err := parseBundle(bundle)
	if err != nil {
		return nil, err
	}
	var e protorekor.TransparencyLogEntry
	if err := protojson.Unmarshal(entry, &e); err != nil {
		return nil, fmt.Errorf("transparency log entry: %w", err)
	}
	vm := pb.GetVerificationMaterial()
	vm.TlogEntries = append(vm.TlogEntries, &e)
	return protojson.Marshal(pb)
}
