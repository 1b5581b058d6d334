// Package bundle is custody's evidence bundle: one deterministic tar file
// that is an OCI image layout (every manifest and blob of a set of
// artifacts, their signatures and attestations) plus a custody/ directory
// (the trust root, the audit entries about the artifacts with their
// Merkle proofs, a summary), signed as a whole by the server's audit-log
// key. docs/bundle.md describes the format for auditors writing their own
// verifier.
//
// Write produces a bundle; Open checks one's structure, names, sizes,
// hashes and signature while reading it once; Bundle.Verify runs the
// whole offline verification, reusing internal/evidence (over
// Bundle.Transport) and internal/tlog for every trust decision.
package bundle

import (
	"time"

	"github.com/custody-dev/custody/internal/key"
)

// Format identifies version 1 of the bundle format (manifest.json's
// "format").
const Format = "https://custody.dev/bundle/v1"

// SignatureContext is the first line of the signed note in manifest.sig;
// the second is "sha256:<hex of manifest.json>".
const SignatureContext = "custody-bundle/v1"

// The fixed files of a bundle, in tar order (the blobs follow, sorted).
const (
	ManifestPath   = "custody/manifest.json"
	SignaturePath  = "custody/manifest.sig"
	LayoutPath     = "oci-layout"
	IndexPath      = "index.json"
	TrustPath      = "custody/trust.json"
	AuditPath      = "custody/audit.json"
	SummaryPath    = "custody/summary.json"
	SummaryMDPath  = "custody/summary.md"
	BlobsDirectory = "blobs/"
)

// fixedFiles are the files after manifest.sig, before the blobs, in order.
var fixedFiles = []string{LayoutPath, IndexPath, TrustPath, AuditPath, SummaryPath, SummaryMDPath}

// Annotations custody puts on index.json's descriptors. cosign's "kind"
// annotation (cosign save's layout) is added too, so that cosign verify
// --local-image finds the first artifact and its signatures.
const (
	// AnnotationRefName is the OCI layout's name of a manifest:
	// <repository with "/" as "+">@<digest> (the name skopeo's
	// oci-archive:FILE:NAME takes).
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationRepository is the repository the manifest was exported from.
	AnnotationRepository = "dev.custody.repository"
	// AnnotationRole says what the manifest is: artifact, signature
	// (cosign .sig image), attestation (cosign .att image) or referrer
	// (OCI 1.1 referrer, e.g. a Sigstore bundle).
	AnnotationRole = "dev.custody.role"
	// AnnotationTag is the tag that named the manifest in its repository
	// (one artifact tag, or the cosign sha256-<hex>.sig/.att tag);
	// AnnotationTags lists every tag of an artifact, comma-separated.
	AnnotationTag  = "dev.custody.tag"
	AnnotationTags = "dev.custody.tags"
	// AnnotationSubject is the artifact digest a signature, attestation or
	// referrer is about.
	AnnotationSubject = "dev.custody.subject"

	cosignKind         = "kind"
	cosignImage        = "dev.cosignproject.cosign/image"
	cosignImageIndex   = "dev.cosignproject.cosign/imageIndex"
	cosignSignatures   = "dev.cosignproject.cosign/sigs"
	cosignAttestations = "dev.cosignproject.cosign/atts"
	ociLayoutContent   = `{"imageLayoutVersion":"1.0.0"}`
	indexMediaType     = "application/vnd.oci.image.index.v1+json"
)

// Roles of index.json's descriptors (AnnotationRole).
const (
	RoleArtifact    = "artifact"
	RoleSignature   = "signature"
	RoleAttestation = "attestation"
	RoleReferrer    = "referrer"
)

// Manifest is custody/manifest.json: what was asked, the audit log's
// checkpoint the bundle is proved against, and every other file in tar
// order (manifest.json and manifest.sig themselves excepted).
type Manifest struct {
	Format  string  `json:"format"`
	Request Request `json:"request"`
	Log     LogRef  `json:"log"`
	Files   []File  `json:"files"`
}

// Request is what the export was asked for.
type Request struct {
	// Refs are the artifacts named (repository@digest or
	// repository:tag as given, resolved to digests in the summary).
	Refs []string `json:"refs,omitempty"`
	// Environment, Project and At: an environment's artifacts at an
	// instant (At zero: now).
	Environment  string    `json:"environment,omitempty"`
	Project      string    `json:"project,omitempty"`
	At           time.Time `json:"at,omitzero"`
	MetadataOnly bool      `json:"metadataOnly,omitempty"`
}

// LogRef names the signed checkpoint of the audit log the bundle's
// inclusion proofs lead to.
type LogRef struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	// Root is the checkpoint's root hash, lowercase hex.
	Root string `json:"root"`
}

// File is one file of the bundle.
type File struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// SHA256 is the lowercase hex SHA-256 of the file's content.
	SHA256 string `json:"sha256"`
	// Omitted marks a layer left out by --metadata-only: listed, not in
	// the tar.
	Omitted bool `json:"omitted,omitempty"`
}

// Trust is custody/trust.json: the keys a verifier trusts, each with its
// validity window, and the audit log's verifier key. The trust-root
// fingerprint is the lowercase hex SHA-256 of the file's exact bytes
// (GET /api/v1/keys/trust serves the same bytes).
type Trust struct {
	TrustRoot key.TrustRoot `json:"trustRoot"`
	// Recorders are the IDs of the server's own keys: only their
	// promotion, approval and revocation records count.
	Recorders []string `json:"recorders"`
	Log       LogKey   `json:"log"`
}

// LogKey is the audit log's origin and its note verifier key.
type LogKey struct {
	Origin string `json:"origin"`
	Key    string `json:"key"`
}

// Audit is custody/audit.json: the audit entries about the bundle's
// digests, each with its inclusion proof to Checkpoint, and the
// consistency proof from Checkpoint to Latest (empty when they are the
// same checkpoint).
type Audit struct {
	// Checkpoint is the signed checkpoint note the proofs lead to.
	Checkpoint string `json:"checkpoint"`
	// Entries are ordered by index.
	Entries []AuditEntry `json:"entries"`
	// Latest is the latest signed checkpoint note when the bundle was
	// written; Consistency proves it extends Checkpoint.
	Latest      string   `json:"latest"`
	Consistency [][]byte `json:"consistency"`
}

// AuditEntry is one audit-log entry: its exact canonical bytes, its index
// and its RFC 6962 inclusion proof (hashes, base64 in JSON).
type AuditEntry struct {
	Index     uint64   `json:"index"`
	Entry     string   `json:"entry"`
	Inclusion [][]byte `json:"inclusion"`
}

// Summary is custody/summary.json: what the bundle holds, for people and
// for import (which carries retention from it). It is what the server
// found when it wrote the bundle; Verify recomputes the evidence from
// the bundle's own content and reports any difference.
type Summary struct {
	Artifacts []Artifact `json:"artifacts"`
}

// Artifact is one artifact of the bundle.
type Artifact struct {
	Repository string   `json:"repository"`
	Digest     string   `json:"digest"`
	MediaType  string   `json:"mediaType"`
	Tags       []string `json:"tags"`
	// Environments are where the artifact ran at the bundle's instant
	// (environment exports), with the time it started.
	Environments []Deployment `json:"environments,omitempty"`
	// Pushed is the first successful push of the digest in the audit log.
	Pushed       *Event        `json:"pushed,omitempty"`
	Signatures   []Signature   `json:"signatures"`
	Attestations []Attestation `json:"attestations"`
	Promotions   []Promotion   `json:"promotions"`
	Approvals    []Approval    `json:"approvals"`
	Revocations  []Revocation  `json:"revocations"`
	Source       *Source       `json:"source,omitempty"`
	// Evidence lists the signature, attestation and referrer manifests
	// in the bundle about this artifact.
	Evidence []string `json:"evidence"`
	// Retention is the retention lock and legal hold.
	Retention *Retention `json:"retention,omitempty"`
	// LayersOmitted is true when --metadata-only left layer bytes out.
	LayersOmitted bool `json:"layersOmitted,omitempty"`
}

// Deployment is one environment the artifact ran in.
type Deployment struct {
	Environment string    `json:"environment"`
	Since       time.Time `json:"since,omitzero"`
	AuditIndex  *uint64   `json:"auditIndex,omitempty"`
}

// Event is who did something and when, with its audit-log index.
type Event struct {
	By         string    `json:"by"`
	At         time.Time `json:"at"`
	AuditIndex uint64    `json:"auditIndex"`
}

// Signature is one signature that counts.
type Signature struct {
	KeyID    string    `json:"keyId"`
	SignedAt time.Time `json:"signedAt,omitzero"`
	Source   string    `json:"source"`
}

// Attestation is one trusted attestation.
type Attestation struct {
	PredicateType string `json:"predicateType"`
	KeyID         string `json:"keyId"`
}

// Promotion is one promotion or rollback record that counts.
type Promotion struct {
	Environment string    `json:"environment"`
	Previous    string    `json:"previousDigest,omitempty"`
	By          string    `json:"by"`
	Approvers   []string  `json:"approvers,omitempty"`
	At          time.Time `json:"at"`
	Rollback    bool      `json:"rollback,omitempty"`
}

// Approval is one approval record that counts.
type Approval struct {
	Environment string    `json:"environment"`
	By          string    `json:"by"`
	At          time.Time `json:"at"`
}

// Revocation is one revocation record that counts.
type Revocation struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Source is what the SLSA provenance says about the build.
type Source struct {
	Repository string `json:"repository,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Builder    string `json:"builder,omitempty"`
}

// Retention is an artifact's retention lock and legal hold.
type Retention struct {
	Mode        string    `json:"mode,omitempty"`
	RetainUntil time.Time `json:"retainUntil,omitzero"`
	LegalHold   bool      `json:"legalHold"`
}

// Caps on what Open reads; a bundle beyond them is refused.
const (
	// MaxManifestSize caps custody/manifest.json.
	MaxManifestSize = 64 << 20
	// MaxSignatureSize caps custody/manifest.sig.
	MaxSignatureSize = 64 << 10
	// MaxMetadataSize caps each of the other custody/ files and
	// index.json, which Open keeps in memory.
	MaxMetadataSize = 256 << 20
	// MaxFiles caps the files a manifest lists.
	MaxFiles = 1 << 20
	// MaxManifestBlobSize caps a manifest blob read to serve or walk it.
	MaxManifestBlobSize = 4 << 20
)
