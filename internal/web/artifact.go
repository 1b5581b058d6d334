package web

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
	"github.com/custody-dev/custody/internal/retention"
	"github.com/custody-dev/custody/internal/sbom"
)

// The Artifact page: one digest of one repository, at
// /artifacts/<repository>@<digest> (the pull reference's own shape). Its
// manifest and everything verified about it come from
// GET /api/v1/evidence (trust is decided there, by internal/evidence),
// its retention lock from GET /api/v1/retention/<repository>/@<digest>,
// its audit events from GET /api/v1/history.

// artifactRoutes registers the Artifact page (called from New).
func (s *Site) artifactRoutes() {
	s.page("GET /artifacts/{ref...}", s.artifact)
}

// artifactPath is the Artifact page of repo@dgst.
func artifactPath(repo, dgst string) string {
	return "/artifacts/" + urlPathEscape(repo) + "@" + url.PathEscape(dgst)
}

// packagesShown bounds the SBOM packages listed at once; a search narrows
// them.
const packagesShown = 200

type artifactView struct {
	Repository, Digest string
	Self               string // this page
	Pull               string // docker pull HOST/REPO@DIGEST
	Evidence           promotionhttp.ArtifactEvidence
	// Manifest is the manifest, indented for reading.
	Manifest string
	Parsed   manifestView
	// Verified counts the signatures that count now.
	Verified int
	// Chains are the provenance chains, one per trusted provenance.
	Chains []chainStep
	// HasSBOM is true when a trusted SBOM attestation was found.
	HasSBOM bool
	// Package search (?pkg=) and the packages it matches.
	PackageQuery  string
	Packages      []sbom.PackageRef
	PackagesTotal int
	PackagesMore  bool
	// Findings, most severe first; Open counts those not waived.
	Findings []findingView
	Open     int
	// Retention is the lock; RetentionErr says why it could not be read.
	Retention    *retention.Lock
	RetentionErr string
	// History are the audit events; HistoryErr says why they are not
	// shown (no audit permission).
	History    []promotion.Event
	HistoryErr string
}

type findingView struct {
	ID, Severity, Package, Version, Fixed, Kind, WaiverReason string
	Score                                                     float64
	Waived                                                    bool
	Class                                                     string // badge class
}

// chainStep is one link of a provenance chain.
type chainStep struct {
	Label, Value, Detail, Link string
	Code                       bool
	Environments               []string
}

// manifestView is what the page lists of a manifest or index.
type manifestView struct {
	MediaType   string            `json:"mediaType"`
	Config      *descriptor       `json:"config"`
	Layers      []descriptor      `json:"layers"`
	Manifests   []descriptor      `json:"manifests"`
	Annotations map[string]string `json:"annotations"`
	// AnnotationKeys are Annotations' keys, sorted.
	AnnotationKeys []string
	// Total is the sum of the layers' sizes.
	Total int64
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
		OSVersion    string `json:"os.version"`
	} `json:"platform"`
	Link string `json:"-"`
}

// artifact shows repo@digest.
func (s *Site) artifact(w http.ResponseWriter, r *Request) error {
	ref := r.PathValue("ref")
	i := strings.LastIndex(ref, "@")
	if i <= 0 {
		return NotFound("Open an artifact as /artifacts/REPOSITORY@sha256:DIGEST.")
	}
	repo, dgst := ref[:i], ref[i+1:]
	if _, err := digest.Parse(dgst); err != nil {
		return BadRequest("The digest " + dgst + " is not a valid digest (sha256:...).")
	}
	v := artifactView{Repository: repo, Digest: dgst, Self: artifactPath(repo, dgst), Pull: "docker pull " + r.Host + "/" + repo + "@" + dgst}
	q := url.Values{"repository": {repo}, "digest": {dgst}}.Encode()
	// The evidence answer also proves the caller may read the artifact:
	// a refusal here is the page's.
	if err := r.Get("/api/v1/evidence?"+q, &v.Evidence); err != nil {
		return err
	}
	var ind bytes.Buffer
	if json.Indent(&ind, v.Evidence.Manifest, "", "  ") == nil {
		v.Manifest = ind.String()
	}
	if err := json.Unmarshal(v.Evidence.Manifest, &v.Parsed); err == nil {
		if v.Parsed.MediaType == "" {
			v.Parsed.MediaType = v.Evidence.MediaType
		}
		for _, l := range v.Parsed.Layers {
			v.Parsed.Total += l.Size
		}
		for i := range v.Parsed.Manifests {
			v.Parsed.Manifests[i].Link = artifactPath(repo, v.Parsed.Manifests[i].Digest)
		}
		for k := range v.Parsed.Annotations {
			v.Parsed.AnnotationKeys = append(v.Parsed.AnnotationKeys, k)
		}
		sort.Strings(v.Parsed.AnnotationKeys)
	}
	for _, sg := range v.Evidence.Signatures {
		if sg.Verified {
			v.Verified++
		}
	}
	for _, a := range v.Evidence.Attestations {
		v.HasSBOM = v.HasSBOM || a.Verified && slices.Contains(evidence.SBOMTypes, a.PredicateType)
	}
	v.Chains = provenanceChain(v)
	v.PackageQuery = strings.TrimSpace(r.URL.Query().Get("pkg"))
	for _, p := range v.Evidence.Packages {
		if v.PackageQuery == "" || packageMatches(p, v.PackageQuery) {
			v.PackagesTotal++
			if len(v.Packages) < packagesShown {
				v.Packages = append(v.Packages, p)
			}
		}
	}
	v.PackagesMore = v.PackagesTotal > len(v.Packages)
	v.Findings, v.Open = findings(v.Evidence)

	var lock retention.Lock
	if err := r.Get("/api/v1/retention/"+urlPathEscape(repo)+"/@"+dgst, &lock); err != nil {
		v.RetentionErr = sectionError(err)
	} else {
		v.Retention = &lock
	}
	var h promotion.History
	err := r.Get("/api/v1/history?"+q, &h)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
	case err != nil:
		v.HistoryErr = sectionError(err)
	default:
		v.History = h.Events
	}
	return r.Render(w, http.StatusOK, "artifact.html", repo+"@"+shortDigest(dgst), v)
}

// sectionError is what a page section says when the API refused or failed
// its part; a failure that is not a refusal names no internal detail.
func sectionError(err error) string {
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		if ae.Status == http.StatusForbidden {
			return "Your account may not read this."
		}
		return cmp.Or(ae.Detail, ae.Title, http.StatusText(ae.Status))
	}
	return "It could not be read."
}

// provenanceChain is each trusted provenance as a readable chain: source
// and commit, workflow, builder, this digest, the environments it entered.
func provenanceChain(v artifactView) []chainStep {
	var envs []string
	for _, p := range v.Evidence.Promotions {
		if !slices.Contains(envs, p.Environment) {
			envs = append(envs, p.Environment)
		}
	}
	var out []chainStep
	for _, p := range v.Evidence.Provenance {
		src := chainStep{Label: "Source", Value: cmp.Or(p.SourceURI, "unknown source"), Detail: p.SourceCommit, Code: true}
		if strings.HasPrefix(p.SourceURI, "https://") {
			src.Link = p.SourceURI
		}
		wf := chainStep{Label: "Workflow", Value: cmp.Or(p.WorkflowPath, p.BuildType, "not named"), Detail: p.SourceRef}
		b := chainStep{Label: "Builder", Value: cmp.Or(p.BuilderID, "not named"), Detail: p.InvocationID}
		out = append(out, src, wf, b, chainStep{Label: "Artifact", Value: v.Digest, Code: true},
			chainStep{Label: "Environments", Environments: envs})
	}
	return out
}

// packageMatches reports whether an SBOM package's name, version, purl
// or licences contain q (case-insensitive).
func packageMatches(p sbom.PackageRef, q string) bool {
	q = strings.ToLower(q)
	for _, s := range append([]string{p.Name, p.Version, p.PURL}, p.Licenses...) {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

var severityRank = map[string]int{"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "NONE": 4}

// findings are the findings, open before waived, most severe first.
func findings(e promotionhttp.ArtifactEvidence) ([]findingView, int) {
	var out []findingView
	open := 0
	for _, f := range e.Findings {
		fv := findingView{ID: f.ID, Severity: cmp.Or(f.Severity, "UNKNOWN"), Package: f.Package, Version: f.Version, Fixed: f.Fixed,
			Kind: f.Kind, Waived: f.Waived, WaiverReason: f.WaiverReason, Score: f.Score, Class: "warn"}
		if strings.HasSuffix(f.Package, "@"+f.Version) { // a purl names its version
			fv.Version = ""
		}
		switch {
		case f.Waived:
			fv.Class = "ok"
		case f.Severity == "CRITICAL" || f.Severity == "HIGH":
			fv.Class = "bad"
		}
		if !f.Waived {
			open++
		}
		out = append(out, fv)
	}
	rank := func(f findingView) int {
		r, ok := severityRank[f.Severity]
		if !ok {
			r = 5
		}
		if f.Waived {
			r += 10
		}
		return r
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out, open
}
