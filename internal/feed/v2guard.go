package feed

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/sign"
)

// V2Guard returns the registry's Front check (registry.Options.Front) that
// keeps the OCI API from writing what only a feed's protocol may: in the
// repositories of a package feed (npm, pypi, go, maven), a request over
// /v2/ may upload blobs and push manifests by digest or under evidence
// tags (cosign's sha256-<hex>.sig, .att, .sbom and the referrers
// fallback), so packages are signed, attested and given SBOMs as images
// are; it may not create, move or delete version or label tags, or delete
// anything, since those would skip the protocol's checks (hashes, archive
// paths, immutability, label rules). A refusal is OCI DENIED, audited
// feed.v2_write.
func V2Guard(feeds []config.Feed, auditor audit.Auditor) func(w http.ResponseWriter, r *http.Request, kind, repo, ref string) bool {
	names := map[string]string{}
	for _, f := range feeds {
		if f.Ecosystem != config.FeedEcosystemOCI {
			names[f.Name] = f.Ecosystem
		}
	}
	return func(w http.ResponseWriter, r *http.Request, kind, repo, ref string) bool {
		name, _, _ := strings.Cut(repo, "/")
		eco, ok := names[name]
		if !ok || r.Method == http.MethodGet || r.Method == http.MethodHead {
			return true
		}
		switch {
		case (kind == "upload" || kind == "uploads") && r.Method != http.MethodDelete:
			return true
		case kind == "manifest" && r.Method == http.MethodPut && (strings.HasPrefix(ref, "sha256:") || strings.HasPrefix(ref, "sha512:") || evidenceTag(ref)):
			return true
		}
		reason := fmt.Sprintf("%s belongs to the %s feed %s: its versions and labels are published with the ecosystem's own client (docs/feeds.md); over /v2/ only signatures, attestations and SBOMs may be pushed here", repo, eco, name)
		if auditor != nil {
			auditor.Record(r.Context(), audit.Event{Action: "feed.v2_write", Repo: repo, Result: "denied", Reason: reason, Request: r})
		}
		registry.WriteError(w, r, &registry.Error{Status: http.StatusForbidden, Code: registry.CodeDenied, Message: reason})
		return false
	}
}

// evidenceTag reports whether tag is one of cosign's evidence tags:
// sha256-<hex> followed by .sig, .att, .sbom or nothing.
func evidenceTag(tag string) bool {
	_, suffix, _ := strings.Cut(tag, ".")
	return sign.IsEvidenceTag(tag) && (suffix == "" || suffix == "sig" || suffix == "att" || suffix == "sbom")
}
