// Package tlog is custody's tamper-evident audit log: an append-only log
// whose entries are the leaves of an RFC 6962 Merkle tree, with
// checkpoints in the C2SP tlog-checkpoint format signed as C2SP signed
// notes (Ed25519). See docs/audit.md.
package tlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Entry is one audit record. Its leaf in the Merkle tree is its canonical
// JSON encoding (see Canonical).
//
// The fields are declared in the byte order of their JSON names, so that
// encoding/json writes the keys sorted; keep it that way when adding one.
type Entry struct {
	Action    string `json:"action"`
	Actor     string `json:"actor"`
	Auth      string `json:"auth"`
	Client    string `json:"client,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Repo      string `json:"repo,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	Result    string `json:"result"`
	Tag       string `json:"tag,omitempty"`
	Time      string `json:"time"`
}

// TimeFormat is the format of Entry.Time: RFC 3339 with nanoseconds, UTC.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// FormatTime formats t for Entry.Time.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Canonical returns the canonical JSON encoding of e: an object with the
// keys in byte order, no insignificant whitespace, empty optional fields
// left out, strings escaped as encoding/json does without HTML escaping
// (only '"', '\\', control characters, U+2028 and U+2029 are escaped), and
// no trailing newline.
func (e Entry) Canonical() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		panic(err) // Entry holds only strings.
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// ParseEntry decodes an entry and checks that data is its canonical
// encoding.
func ParseEntry(data []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("entry is not valid JSON: %w", err)
	}
	if !bytes.Equal(e.Canonical(), data) {
		return e, fmt.Errorf("entry is not in canonical form")
	}
	return e, nil
}

// LeafHash returns the RFC 6962 leaf hash of an entry's bytes:
// SHA-256(0x00 || data).
func LeafHash(data []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(data) }

// RootFromLeafHashes returns the RFC 6962 root hash of the tree with these
// leaf hashes.
func RootFromLeafHashes(hashes [][]byte) []byte {
	rng := factory.NewEmptyRange(0)
	for _, h := range hashes {
		_ = rng.Append(h, nil) // cannot fail on a range built by appends
	}
	root, _ := rootOf(rng)
	return root
}
