package vulnhttp

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/custody-dev/custody/internal/ecosystem"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/sbom"
	"github.com/custody-dev/custody/internal/vuln"
)

// Findings supplies promotion gates with findings: the packages of an
// artifact's verified SBOMs matched against the database, minus what its
// verified OpenVEX attestations waive.
type Findings struct{ DB *vuln.DB }

var _ promotion.Findings = Findings{}

// Findings implements promotion.Findings.
//
// Unpinned dependencies are findings too: a base image the image's
// org.opencontainers.image.base.name annotation names by tag rather than
// digest, and SBOM packages whose version is a range rather than one
// version.
func (v Findings) Findings(ctx context.Context, art gate.Artifact, sboms, vex [][]byte) ([]gate.Finding, error) {
	dgst := art.Digest
	var pkgs []vuln.Package
	var deps []vuln.Dependency
	for _, b := range sboms {
		refs, err := sbom.Packages(b, 64<<20)
		if err != nil {
			continue // a verified but unreadable SBOM adds nothing
		}
		for _, r := range refs {
			pkgs = append(pkgs, vuln.Package{PURL: r.PURL, Version: r.Version, Subject: dgst})
			if ecosystem.IsVersionConstraint(r.Version) {
				deps = append(deps, vuln.Dependency{PURL: r.PURL, Constraint: r.Version, Location: "SBOM"})
			}
		}
	}
	if base := art.Annotations["org.opencontainers.image.base.name"]; base != "" {
		deps = append(deps, vuln.Dependency{Image: base, Location: "annotation org.opencontainers.image.base.name"})
	}
	fs, err := v.DB.Match(ctx, pkgs)
	if err != nil {
		return nil, err
	}
	fs = append(fs, vuln.Unpinned(deps)...)
	var docs []*vuln.VEXDocument
	for _, b := range vex {
		if d, err := vuln.ParseVEX(bytes.NewReader(b)); err == nil {
			docs = append(docs, d)
		}
	}
	kept, waived := vuln.ApplyWaivers(fs, docs, time.Now())
	out := make([]gate.Finding, 0, len(kept)+len(waived))
	for _, f := range kept {
		out = append(out, gateFinding(f))
	}
	for _, f := range waived {
		g := gateFinding(f)
		g.Waived = true
		if f.Waiver != nil {
			g.WaiverReason = fmt.Sprintf("%s by %s: %s%s", f.Waiver.Status, f.Waiver.Author, f.Waiver.Justification, f.Waiver.ImpactStatement)
		}
		out = append(out, g)
	}
	return out, nil
}

func gateFinding(f vuln.Finding) gate.Finding {
	return gate.Finding{ID: f.ID, Aliases: f.Aliases, Severity: string(f.Severity), Score: f.Score,
		Package: f.PURL, Version: f.Version, Fixed: f.Fixed, Kind: string(f.Kind)}
}
