package promotionhttp

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/sbom"
)

// ArtifactEvidence is the answer of GET /api/v1/evidence: the artifact's
// manifest and everything verified about it NOW against the server's
// trust root, by internal/evidence's rules (the same the gates, custody
// verify and the admission webhook apply). Readers show it; they decide
// nothing from it themselves.
type ArtifactEvidence struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	MediaType  string `json:"mediaType"`
	// Manifest is the manifest (or index) as stored.
	Manifest json.RawMessage `json:"manifest"`
	// CheckedAt is when the evidence was verified.
	CheckedAt time.Time `json:"checkedAt"`
	// Signatures are the signatures found: those a trusted key verifies
	// (Verified true when they count, Problem when not) and those none
	// does (Verified false).
	Signatures []EvidenceSignature `json:"signatures"`
	// Attestations are the attestations found, trusted or not.
	Attestations []EvidenceAttestation `json:"attestations"`
	// Provenance are the trusted SLSA provenance predicates, parsed.
	Provenance []gate.Provenance `json:"provenance"`
	// Promotions are the server's promotion records that count, oldest
	// first: the environments the digest entered.
	Promotions []evidence.Record `json:"promotions"`
	// Revoked is the revocation record, when the digest was revoked.
	Revoked *evidence.Revocation `json:"revoked,omitempty"`
	// Packages are the packages the trusted SBOM attestations list.
	Packages []sbom.PackageRef `json:"packages"`
	// Findings are the vulnerability findings, waivers (VEX) applied.
	Findings []gate.Finding `json:"findings"`
	// Problems are the reasons evidence was not trusted or not read.
	Problems []string `json:"problems"`
}

// EvidenceSignature is one signature found on the artifact.
type EvidenceSignature struct {
	KeyID string `json:"keyId,omitempty"`
	// KeyStatus is the trust root's status of the key (active, retired).
	KeyStatus string `json:"keyStatus,omitempty"`
	// Source is where it was found: "tag" or "referrer".
	Source string `json:"source"`
	// Container is the signature manifest's digest.
	Container string `json:"container,omitempty"`
	// SignedAt is the signing time the signature claims (zero when none).
	SignedAt time.Time `json:"signedAt,omitzero"`
	// Claims are the signer's signed annotations (besides the signing
	// time) and the repository it names.
	Claims          map[string]string `json:"claims,omitempty"`
	DockerReference string            `json:"dockerReference,omitempty"`
	// Verified is true when the signature counts now.
	Verified bool   `json:"verified"`
	Problem  string `json:"problem,omitempty"`
}

// EvidenceAttestation is one attestation found on the artifact.
type EvidenceAttestation struct {
	PredicateType string `json:"predicateType,omitempty"`
	KeyID         string `json:"keyId,omitempty"`
	KeyStatus     string `json:"keyStatus,omitempty"`
	Container     string `json:"container,omitempty"`
	Verified      bool   `json:"verified"`
	Problem       string `json:"problem,omitempty"`
}

// sbomLimit bounds the SBOM a reader is shown the packages of.
const sbomLimit = 64 << 20

// evidenceOf answers GET /api/v1/evidence?repository=R&digest=D (pull on R).
func (p *Handler) evidenceOf(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	repo, dgst := q.Get("repository"), q.Get("digest")
	if !ValidArtifact(w, repo, dgst) {
		return
	}
	r, _, ok := p.authz.Require(w, r, "evidence.read", repo, auth.PermPull)
	if !ok {
		return
	}
	f, err := p.svc.Gather(r.Context(), repo, dgst)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		problem.Write(w, problem.NotFound, "no artifact "+repo+"@"+dgst)
		return
	}
	if err != nil {
		p.LookupError(w, r, err)
		return
	}
	set := f.Evidence
	out := ArtifactEvidence{Repository: repo, Digest: dgst, MediaType: f.Input.Artifact.MediaType, Manifest: f.Manifest,
		CheckedAt: time.Now().UTC(), Signatures: []EvidenceSignature{}, Attestations: []EvidenceAttestation{},
		Provenance: f.Input.Provenance, Promotions: f.Promotions, Revoked: f.Revoked, Packages: []sbom.PackageRef{},
		Findings: f.Input.Findings, Problems: slices.Clone(f.Problems)}
	if out.Provenance == nil {
		out.Provenance = []gate.Provenance{}
	}
	if out.Promotions == nil {
		out.Promotions = []evidence.Record{}
	}
	if out.Problems == nil {
		out.Problems = []string{}
	}
	for _, s := range set.Signatures {
		es := EvidenceSignature{KeyID: s.KeyID, KeyStatus: string(s.KeyStatus), Source: string(s.Source), Container: s.Container,
			SignedAt: s.SignedAt, DockerReference: s.DockerReference, Verified: s.Trusted()}
		for k, v := range s.Annotations {
			if k != evidence.SignedAtAnnotation {
				if es.Claims == nil {
					es.Claims = map[string]string{}
				}
				es.Claims[k] = v
			}
		}
		if s.Err != nil {
			es.Problem = s.Err.Error()
		}
		out.Signatures = append(out.Signatures, es)
	}
	for _, rj := range set.Rejected {
		es := EvidenceSignature{Source: string(rj.Source), Container: rj.Container}
		if rj.Err != nil {
			es.Problem = rj.Err.Error()
		}
		out.Signatures = append(out.Signatures, es)
	}
	for _, a := range set.Attestations {
		ea := EvidenceAttestation{PredicateType: a.PredicateType, KeyID: a.KeyID, KeyStatus: string(a.KeyStatus), Container: a.Container, Verified: a.Trusted()}
		if a.Err != nil {
			ea.Problem = a.Err.Error()
		}
		out.Attestations = append(out.Attestations, ea)
	}
	for _, doc := range set.Predicates(evidence.SBOMTypes...) {
		pkgs, err := sbom.Packages(doc, sbomLimit)
		if err != nil {
			out.Problems = append(out.Problems, "SBOM: "+err.Error())
			continue
		}
		out.Packages = append(out.Packages, pkgs...)
	}
	if out.Findings == nil {
		out.Findings = []gate.Finding{}
	}
	problem.JSON(w, http.StatusOK, out)
}
