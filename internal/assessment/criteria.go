package assessment

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/gate"
)

// Criterion is one row of the assessment: a requirement of a stage of the
// maturity model or of a SLSA build level, the model's own sentence for
// it, what custody counts as evidence, and the check.
type Criterion struct {
	ID    string
	Model string // Maturity or SLSA
	// Rank is the stage (2-5; stage 1 needs nothing) or the level (1-3).
	Rank  int
	Title string
	// Counts says what evidence meets the criterion (docs/assessment.md).
	Counts string
	// Quote is the sentence of the model the criterion stands for,
	// verbatim from the seed text (Markdown emphasis removed).
	Quote string
	// Closes is the command (or setting) that closes the gap, as the
	// documentation shows it.
	Closes string
	check  func(s subject) Result
}

// The seed texts the criteria quote.
const (
	MaturitySource = "How does your organization handle the creation and storage of build artifacts? (five-stage artifact-management maturity model)"
	SLSASource     = "Securely Managing Artifacts in CI/CD Pipelines (SLSA build levels)"
)

// defaultRetentionFor is the period the retention command proposes: the
// model's "2+ years".
const defaultRetentionFor = "2y"

// Criteria is the assessment, one criterion per row, in stage and level
// order.
var Criteria = []Criterion{
	{
		ID: "shared-storage", Model: Maturity, Rank: 2, Title: "Build outputs kept in shared storage",
		Counts: "the repository holds at least one tagged artifact; an environment runs an artifact custody stores",
		Quote:  `Set up a simple "build artifacts" bucket or file share for your compiled binaries or container images:`,
		Closes: "`crane push IMAGE.tar HOST/REPO:1.0.0`; for an environment `custody promote HOST/REPO@DIGEST --to ENV`",
		check:  checkStored,
	},
	{
		ID: "version-control", Model: Maturity, Rank: 2, Title: "Built from version control",
		Counts: "every examined artifact names its source commit: in trusted SLSA provenance, or in its `org.opencontainers.image.revision` annotation",
		Quote:  "Even a minimal pipeline can automatically build code from a version control system:",
		Closes: "`custody attest provenance --from-env HOST/REPO@DIGEST` in the CI job",
		check:  checkSource,
	},
	{
		ID: "versioned", Model: Maturity, Rank: 3, Title: "Artifacts tagged with a version or commit",
		Counts: "every examined artifact carries a tag other than `latest` and the environment tags",
		Quote:  "Tag the artifact with a version or Git commit hash.",
		Closes: "`crane tag HOST/REPO@DIGEST 1.0.0`",
		check:  checkVersioned,
	},
	{
		ID: "build-once", Model: Maturity, Rank: 3, Title: "Built once, promoted unchanged",
		Counts: "the repository belongs to a project; every environment that runs an artifact got that very digest by a promotion record signed by the server, and at least one environment runs one",
		Quote:  `Instead of rebuilding, you "promote" the tested artifact from dev to test to production:`,
		Closes: "`custody promote HOST/REPO@DIGEST --to ENV` (with the repository in `projects:`)",
		check:  checkPromoted,
	},
	{
		ID: "immutable-tags", Model: Maturity, Rank: 4, Title: "Version tags cannot be moved or deleted",
		Counts: "every examined artifact has a version tag that the repository's policy makes immutable (by default the semver-like tags)",
		Quote:  "Adopt Write-Once-Read-Many (WORM) or Immutable Storage",
		Closes: "`crane tag HOST/REPO@DIGEST 1.0.0` (a semver tag), or `immutableTags` in the repository's policy",
		check:  checkImmutable,
	},
	{
		ID: "access-audit", Model: Maturity, Rank: 4, Title: "Access control and a log of every change",
		Counts: "authentication is on, the tamper-evident audit log is on and holds entries about the repository, and a checkpoint is signed",
		Quote:  "Restrict who can modify or delete artifacts. Log all changes:",
		Closes: "`auth.mode: builtin`, no `audit.disableUnsafe`; `custody audit checkpoint`",
		check:  checkAudit,
	},
	{
		ID: "integrity-checks", Model: Maturity, Rank: 4, Title: "Stored bytes checked against their digests",
		Counts: "artifacts are named by their SHA-256 digest (always, in custody), a scrub is scheduled (`scrub.schedule`) and the last in-server scrub found nothing damaged",
		Quote:  "Even if you don’t have full cryptographic signatures, consider generating checksums (e.g., SHA256) for each artifact to detect accidental corruption.",
		Closes: "`scrub: {schedule: 24h}` in the configuration",
		check:  checkIntegrity,
	},
	{
		ID: "pinned-dependencies", Model: Maturity, Rank: 4, Title: "Dependencies pinned by digest",
		Counts: "every examined artifact has trusted SLSA provenance whose resolved dependencies (at least one) all carry a digest",
		Quote:  "All dependencies in build artifacts are tightly pinned to specific versions, with cryptographic signing or hashes to ensure integrity.",
		Closes: "`custody attest provenance --from-env --workspace . HOST/REPO@DIGEST` (lockfile dependencies), or platform provenance",
		check:  checkPinned,
	},
	{
		ID: "signed", Model: Maturity, Rank: 5, Title: "Artifacts signed",
		Counts: "every examined artifact has a signature by a key of the trust root that was valid when it signed",
		Quote:  "Every production artifact is sealed (signed), ensuring no one can alter it post-build.",
		Closes: "`custody sign --key KEY HOST/REPO@DIGEST`, or `signing.onPush`",
		check:  checkSigned,
	},
	{
		ID: "sbom", Model: Maturity, Rank: 5, Title: "A software bill of materials for each build",
		Counts: "every examined artifact has a trusted SPDX or CycloneDX attestation",
		Quote:  "Generate a Software Bill of Materials for each build, listing all dependencies and their checksums:",
		Closes: "`custody attest sbom HOST/REPO@DIGEST`, or `signing.sbomOnPush`",
		check:  checkSBOM,
	},
	{
		ID: "vulnerability-gate", Model: Maturity, Rank: 5, Title: "Known vulnerabilities stop promotion",
		Counts: "the vulnerability database holds records, and the promotion records of the environments' artifacts show the `no_findings_at_or_above` gate rule passed",
		Quote:  "If a library has a known CVE, your pipeline rejects builds that rely on that version.",
		Closes: "`custody vulndb import FILE`; the gate rule `no_findings_at_or_above`; `custody promote HOST/REPO@DIGEST --to ENV`",
		check:  checkVulnGate,
	},
	{
		ID: "retention", Model: Maturity, Rank: 5, Title: "Kept immutable for a defined period",
		Counts: "every examined artifact is under a running retention lock (or a legal hold)",
		Quote:  "All artifacts are stored in immutable storage for a defined period for audit purposes, with a clear process to recreate environments for thorough audits or criminal investigations.",
		Closes: "`custody retention set HOST/REPO@DIGEST --mode compliance --for 2y`, or a default `retention` in the repository's policy",
		check:  checkRetention,
	},
	{
		ID: "chain-of-custody", Model: Maturity, Rank: 5, Title: "Chain of custody for what runs",
		Counts: "every environment that runs an artifact got it by a server-signed promotion record that passed a gate, the last environment with at least two approvers, and promotions are in the audit log",
		Quote:  "If part of your remit includes potential criminal investigations (e.g., digital forensics for certain public sector services), the chain of custody for your artifacts is guaranteed.",
		Closes: "a `gate` on each environment and `approvals: 2` on the last; `custody promote HOST/REPO@DIGEST --to ENV` by two promoters",
		check:  checkChain,
	},
	{
		ID: "forensic-reenactment", Model: Maturity, Rank: 5, Title: "Environments rebuilt from the store in a drill",
		Counts: "every environment that runs an artifact has a successful, server-signed drill report (`https://custody.dev/attestation/drill/v1`) of a drill started in the last 365 days",
		Quote:  `Conduct a "forensic reenactment" once or twice a year:`,
		Closes: "`custody drill ENV --project PROJECT --into DIR`",
		check:  checkDrill,
	},
	{
		ID: "slsa-provenance", Model: SLSA, Rank: 1, Title: "Provenance exists",
		Counts: "every examined artifact has an SLSA provenance attestation (its signature need not verify)",
		Quote:  "SLSA Level 1: Focuses on basic documentation and automation to ensure a consistent and secure build process, producing provenance like a Software Bill of Materials (SBOM).",
		Closes: "`custody attest provenance --from-env HOST/REPO@DIGEST`",
		check:  checkProvenance,
	},
	{
		ID: "slsa-signed-provenance", Model: SLSA, Rank: 2, Title: "Signed provenance from a hosted build platform",
		Counts: "every examined artifact has SLSA provenance signed by a trusted key (the server's or `promotion.trustRoot`'s) that names a hosted build platform (not the generic `CUSTODY_BUILD_*` shape)",
		Quote:  "SLSA Level 2: Introduces signed artifacts to prevent tampering after the build process, using a private key accessible only to the build platform.",
		Closes: "`custody attest provenance --from-env --key CI_KEY HOST/REPO@DIGEST` in GitHub Actions or GitLab CI, with the key in `promotion.trustRoot`",
		check:  checkSignedProvenance,
	},
	{
		ID: "slsa-platform-provenance", Model: SLSA, Rank: 3, Title: "Provenance written by the platform",
		Counts: "every examined artifact has SLSA provenance signed by the server's own key and naming the server (`signing.builderID`) as builder: written from the job's verified OIDC claims (platform mode), with a key no tenant holds",
		Quote:  "This involves using a security control plane (like Sigstore) that provides an ephemeral signing key for a runner using workload identity.",
		Closes: "`curl -X POST -H \"Authorization: Bearer $OIDC_TOKEN\" https://HOST/api/v1/provenance/REPO/@DIGEST` from the CI job",
		check:  checkPlatformProvenance,
	},
}

func checkStored(s subject) Result {
	if s.env != nil {
		if s.env.Digest == "" {
			return Result{Evidence: Evidence{Summary: "the environment runs nothing"},
				Command: "custody promote " + s.ref(s.newest()) + " --to " + s.env.Env.Name}
		}
		return Result{Pass: true, Evidence: Evidence{Summary: "runs " + s.env.Digest, Count: 1, Total: 1, Example: s.env.Digest}}
	}
	if s.tagged == 0 {
		return Result{Evidence: Evidence{Summary: "no tagged artifact in " + s.repo},
			Command: "crane push IMAGE.tar " + s.host + "/" + s.repo + ":1.0.0"}
	}
	return Result{Pass: true, Evidence: Evidence{Summary: fmt.Sprintf("%d tagged artifact(s)", s.tagged), Count: s.tagged, Total: s.tagged, Example: s.newest()}}
}

// newest is the digest of the newest examined artifact, or "".
func (s subject) newest() string {
	for _, a := range s.facts.arts {
		return a.Digest
	}
	return ""
}

// provenances returns the trusted SLSA provenance attestations of a.
func provenances(a *artifact) []evidence.Attestation {
	var out []evidence.Attestation
	for _, at := range a.Set.Attestations {
		if at.Trusted() && at.Provenance != nil {
			out = append(out, at)
		}
	}
	return out
}

func checkSource(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		for _, p := range provenances(a) {
			if c := p.Provenance.SourceCommit(); c != "" {
				return true, "commit " + c + " of " + p.Provenance.SourceURI() + " (provenance)"
			}
		}
		if c := a.Annotations["org.opencontainers.image.revision"]; c != "" {
			return true, "commit " + c + " (annotation)"
		}
		return false, a.Digest + " names no source commit"
	})
	return Result{Pass: ok, Evidence: ev, Command: "custody attest provenance --from-env " + s.ref(ev.Example)}
}

func checkVersioned(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		if v := s.versionTags(a); len(v) > 0 {
			return true, "tags " + strings.Join(v, ", ")
		}
		return false, a.Digest + " has no version tag (" + strings.Join(a.Tags, ", ") + ")"
	})
	return Result{Pass: ok, Evidence: ev, Command: "crane tag " + s.ref(ev.Example) + " 1.0.0"}
}

// projectSetting is the configuration that puts the repository in a project.
func (s subject) projectSetting() string {
	return fmt.Sprintf("projects: [{repositories: %q, environments: [{name: dev}, {name: prod}]}]", s.repo)
}

func checkPromoted(s subject) Result {
	if s.project == nil {
		return Result{Evidence: Evidence{Summary: s.repo + " belongs to no project: nothing is promoted"},
			Setting: s.projectSetting(), Command: "custody promote " + s.ref(s.newest()) + " --to dev"}
	}
	ev := Evidence{Config: "project " + s.project.Title()}
	var missing []string
	firstMissing := ""
	for _, e := range s.environments() {
		if e.Digest == "" {
			continue
		}
		ev.Total++
		if r := promotionInto(s.artifact(e.Digest), e.Env.Name); r != nil {
			ev.Count++
			if ev.Example == "" {
				ev.Example = e.Digest
			}
		} else {
			missing = append(missing, e.Env.Name)
			if firstMissing == "" {
				firstMissing, ev.Example = e.Env.Name, e.Digest
			}
		}
	}
	if ev.Total == 0 {
		env := s.project.Environments[0].Name
		if s.env != nil {
			env = s.env.Env.Name
		}
		ev.Summary = "no environment runs an artifact yet"
		return Result{Evidence: ev, Command: "custody promote " + s.ref(s.newest()) + " --to " + env}
	}
	ev.Summary = fmt.Sprintf("%d of %d environment(s) run a promoted digest", ev.Count, ev.Total)
	if len(missing) > 0 {
		ev.Summary += "; no promotion record for " + strings.Join(missing, ", ")
		return Result{Evidence: ev, Command: "custody promote " + s.ref(ev.Example) + " --to " + firstMissing}
	}
	return Result{Pass: true, Evidence: ev}
}

func checkImmutable(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		for _, t := range s.versionTags(a) {
			if s.policies != nil {
				if rule := s.policies.ImmutableRule(s.repo, t); rule != "" {
					return true, "tag " + t + " is immutable (" + rule + ")"
				}
			}
		}
		return false, a.Digest + " has no immutable tag (" + strings.Join(a.Tags, ", ") + ")"
	})
	ev.Config = "immutableTags: default version tags"
	r := Result{Pass: ok, Evidence: ev}
	if s.policy.ImmutableTags != nil {
		ev.Config = fmt.Sprintf("policy %q immutableTags %q", s.pattern, s.policy.ImmutableTags)
		r.Evidence = ev
		r.Setting = fmt.Sprintf("policies: [{repository: %q, immutableTags: [\"v*\", \"^[0-9]\"]}] (or PUT /api/v1/policies/%s)", s.repo, s.repo)
	}
	r.Command = "crane tag " + s.ref(ev.Example) + " 1.0.0"
	return r
}

func checkAudit(s subject) Result {
	srv := s.server
	ev := Evidence{Count: s.auditTotal, Total: s.auditTotal,
		Config: fmt.Sprintf("auth.mode: %s; audit log: %s", srv.AuthMode, onOff(srv.AuditLog))}
	at := "at least "
	if s.auditTotal < MaxAuditEntries {
		at = ""
	}
	ev.Summary = fmt.Sprintf("%s%d audit-log entries about %s; log size %d, last signed checkpoint %d", at, s.auditTotal, s.repo, srv.AuditSize, srv.Checkpoint)
	r := Result{Evidence: ev}
	switch {
	case srv.AuthMode == "none":
		r.Setting = "auth: {mode: builtin}"
	case !srv.AuditLog:
		r.Setting = "remove audit.disableUnsafe"
	case s.auditTotal == 0:
		r.Command = "crane push IMAGE.tar " + s.host + "/" + s.repo + ":1.0.0"
	case srv.Checkpoint == 0:
		r.Command = "custody audit checkpoint"
	default:
		r.Pass = true
	}
	return r
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func checkIntegrity(s subject) Result {
	srv := s.server
	ev := Evidence{Count: len(s.arts), Total: len(s.arts), Example: s.newest(), Config: "scrub.schedule: " + cmpOr(srv.ScrubSchedule, "off")}
	ev.Summary = "every artifact is named by its digest"
	if !srv.LastScrub.IsZero() {
		ev.Summary += fmt.Sprintf("; last in-server scrub %s found %d damaged object(s)", srv.LastScrub.Format(time.RFC3339), srv.ScrubDamaged)
	}
	r := Result{Evidence: ev}
	switch {
	case srv.ScrubDamaged > 0:
		r.Command = "custody scrub --config CONFIG"
	case srv.ScrubSchedule == "":
		r.Setting = "scrub: {schedule: 24h}"
	default:
		r.Pass = true
	}
	return r
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func checkPinned(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		best := a.Digest + " has no trusted provenance"
		for _, p := range provenances(a) {
			deps := p.Provenance.BuildDefinition.ResolvedDependencies
			pinned := 0
			for _, d := range deps {
				if len(d.Digest) > 0 {
					pinned++
				}
			}
			if len(deps) > 0 && pinned == len(deps) {
				return true, fmt.Sprintf("%d dependencies, all pinned by digest", len(deps))
			}
			best = fmt.Sprintf("%s: %d of %d dependencies pinned by digest", a.Digest, pinned, len(deps))
		}
		return false, best
	})
	return Result{Pass: ok, Evidence: ev, Command: "custody attest provenance --from-env --workspace . " + s.ref(ev.Example)}
}

func checkSigned(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		if sigs := a.Set.TrustedSignatures(); len(sigs) > 0 {
			d := "signed by key " + sigs[0].KeyID
			if !sigs[0].SignedAt.IsZero() {
				d += " at " + sigs[0].SignedAt.Format(time.RFC3339)
			}
			return true, d
		}
		return false, a.Digest + " has no signature by a trusted key"
	})
	return Result{Pass: ok, Evidence: ev, Command: "custody sign --key KEY " + s.ref(ev.Example),
		Setting: fmt.Sprintf("signing: {onPush: [%q]}", s.repo)}
}

func checkSBOM(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		for _, at := range a.Set.Attestations {
			if at.Trusted() && slices.Contains(evidence.SBOMTypes, at.PredicateType) {
				return true, at.PredicateType + " signed by key " + at.KeyID
			}
		}
		return false, a.Digest + " has no trusted SBOM"
	})
	return Result{Pass: ok, Evidence: ev, Command: "custody attest sbom " + s.ref(ev.Example)}
}

// gateRulePassed reports whether rec's gate results include rule, passed.
func gateRulePassed(rec *evidence.Record, rule string) bool {
	return rec != nil && slices.ContainsFunc(rec.Gate, func(r gate.RuleResult) bool { return r.Name == rule && r.Pass })
}

func checkVulnGate(s subject) Result {
	srv := s.server
	ev := Evidence{Config: fmt.Sprintf("vulnerability database: %d record(s)", srv.VulnRecords)}
	if !srv.VulnUpdated.IsZero() {
		ev.Config += ", updated " + srv.VulnUpdated.Format(time.RFC3339)
	}
	if srv.VulnRecords == 0 {
		ev.Summary = "the vulnerability database is empty"
		return Result{Evidence: ev, Command: "custody vulndb import FILE"}
	}
	if s.project == nil {
		ev.Summary = s.repo + " belongs to no project: no gate checks its findings"
		return Result{Evidence: ev, Setting: s.projectSetting()}
	}
	firstEnv := ""
	for _, e := range s.environments() {
		if e.Digest == "" {
			continue
		}
		ev.Total++
		a := s.artifact(e.Digest)
		gated := false
		if a != nil {
			for i := range a.Set.Promotions {
				if gateRulePassed(&a.Set.Promotions[i], gate.RuleNoFindingsAtOrAbove) {
					gated = true
				}
			}
		}
		if gated {
			ev.Count++
		} else if firstEnv == "" {
			firstEnv, ev.Example = e.Env.Name, e.Digest
		}
	}
	ev.Summary = fmt.Sprintf("%d of %d environment(s) run an artifact that passed the %s rule", ev.Count, ev.Total, gate.RuleNoFindingsAtOrAbove)
	if ev.Total > 0 && ev.Count == ev.Total {
		return Result{Pass: true, Evidence: ev}
	}
	env := firstEnv
	if env == "" {
		env = s.project.Environments[len(s.project.Environments)-1].Name
	}
	return Result{Evidence: ev, Command: "custody promote " + s.ref(cmpOr(ev.Example, s.newest())) + " --to " + env,
		Setting: fmt.Sprintf("projects[%s].environments[%s].gate.rules: [{use: %s, params: {severity: HIGH}}]", s.project.Title(), env, gate.RuleNoFindingsAtOrAbove)}
}

func checkRetention(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		l := a.Lock
		switch {
		case l != nil && l.Retained(s.now):
			d := fmt.Sprintf("%s retention until %s", l.Mode, l.RetainUntil.Format(time.RFC3339))
			if l.LegalHold {
				d += " and a legal hold"
			}
			return true, d
		case l != nil && l.LegalHold:
			return true, "a legal hold"
		}
		return false, a.Digest + " has no running retention lock"
	})
	if d := s.policy.Retention; d != nil {
		ev.Config = fmt.Sprintf("policy %q retention: %s for %s", s.pattern, d.Mode, time.Duration(d.Period))
	}
	return Result{Pass: ok, Evidence: ev, Command: "custody retention set " + s.ref(ev.Example) + " --mode compliance --for " + defaultRetentionFor,
		Setting: fmt.Sprintf("policies: [{repository: %q, retention: {mode: compliance, period: 17520h}}]", s.repo)}
}

func checkChain(s subject) Result {
	if s.project == nil {
		return Result{Evidence: Evidence{Summary: s.repo + " belongs to no project: nothing records who moved what where"}, Setting: s.projectSetting()}
	}
	ev := Evidence{Config: fmt.Sprintf("%d promotion(s) of %s in the audit log", s.audit["promote"], s.repo)}
	var problems []string
	var fix Result
	for _, e := range s.environments() {
		if e.Digest == "" {
			continue
		}
		ev.Total++
		rec := promotionInto(s.artifact(e.Digest), e.Env.Name)
		problem, command, setting := "", "custody promote "+s.ref(e.Digest)+" --to "+e.Env.Name, ""
		switch {
		case rec == nil:
			problem = e.Env.Name + ": no promotion record"
		case len(rec.Gate) == 0 || e.Env.Gate == nil:
			problem = e.Env.Name + ": promoted without a gate"
			setting = fmt.Sprintf("projects[%s].environments[%s].gate.rules: [{use: %s}, {use: %s}]", s.project.Title(), e.Env.Name, gate.RuleSignedByTrustedKey, gate.RuleNotRevoked)
		case e.Last && len(rec.Approvers) < 2:
			problem = fmt.Sprintf("%s: %d approver(s), the last environment needs 2", e.Env.Name, len(rec.Approvers))
			setting = fmt.Sprintf("projects[%s].environments[%s].approvals: 2", s.project.Title(), e.Env.Name)
			command += "  # by two promoters"
		}
		if problem != "" && len(problems) == 0 {
			fix.Command, fix.Setting = command, setting
		}
		if problem == "" {
			ev.Count++
			if ev.Example == "" {
				ev.Example = e.Digest
			}
			continue
		}
		if len(problems) == 0 {
			ev.Example = e.Digest
		}
		problems = append(problems, problem)
	}
	ev.Summary = fmt.Sprintf("%d of %d environment(s) run an artifact promoted through a gate with its approvals", ev.Count, ev.Total)
	if len(problems) > 0 {
		ev.Summary += "; " + strings.Join(problems, "; ")
	}
	switch {
	case ev.Total == 0:
		ev.Summary = "no environment runs an artifact yet"
		fix.Command = "custody promote " + s.ref(s.newest()) + " --to " + s.project.Environments[0].Name
	case len(problems) == 0 && s.audit["promote"] == 0:
		ev.Summary += "; no promotion in the audit log"
		fix.Setting = "remove audit.disableUnsafe"
	case len(problems) == 0:
		return Result{Pass: true, Evidence: ev}
	}
	fix.Evidence = ev
	return fix
}

func checkDrill(s subject) Result {
	if s.project == nil {
		return Result{Evidence: Evidence{Summary: s.repo + " belongs to no project: it has no environment to rebuild"}, Setting: s.projectSetting()}
	}
	ev := Evidence{}
	firstEnv := ""
	for _, e := range s.environments() {
		if e.Digest == "" {
			continue
		}
		ev.Total++
		var last time.Time
		if a := s.artifact(e.Digest); a != nil {
			for _, d := range a.Set.Drills {
				if d.OK && d.Environment == e.Env.Name && d.Started.After(last) {
					last = d.Started
				}
			}
		}
		if !last.IsZero() && s.now.Sub(last) <= DrillWindow {
			ev.Count++
			if ev.Example == "" {
				ev.Example = e.Digest
			}
		} else if firstEnv == "" {
			firstEnv = e.Env.Name
		}
	}
	ev.Summary = fmt.Sprintf("%d of %d environment(s) rebuilt in a successful drill within %d days", ev.Count, ev.Total, int(DrillWindow.Hours()/24))
	if ev.Total > 0 && ev.Count == ev.Total {
		return Result{Pass: true, Evidence: ev}
	}
	if firstEnv == "" {
		firstEnv = s.project.Environments[len(s.project.Environments)-1].Name
	}
	return Result{Evidence: ev, Command: fmt.Sprintf("custody drill %s --project %s --into DIR", firstEnv, shellQuote(s.project.Title()))}
}

// shellQuote quotes a project pattern for a shell.
func shellQuote(s string) string {
	if strings.ContainsAny(s, "*?[ ") {
		return "'" + s + "'"
	}
	return s
}

// provenanceTypes are the predicate types of SLSA provenance.
var provenanceTypes = []string{attest.PredicateSLSAProvenanceV1, "https://slsa.dev/provenance/v0.2"}

func checkProvenance(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		for _, at := range a.Set.Attestations {
			switch {
			case at.Trusted() && slices.Contains(provenanceTypes, at.PredicateType):
				return true, "provenance signed by key " + at.KeyID
			case !at.Trusted() && slices.Contains(provenanceTypes, at.ClaimedType):
				return true, "provenance whose signature does not verify"
			}
		}
		return false, a.Digest + " has no provenance"
	})
	return Result{Pass: ok, Evidence: ev, Command: "custody attest provenance --from-env " + s.ref(ev.Example)}
}

func checkSignedProvenance(s subject) Result {
	ev, ok := s.each(func(a *artifact) (bool, string) {
		for _, p := range provenances(a) {
			if p.Provenance.Hosted() {
				return true, "provenance by builder " + p.Provenance.RunDetails.Builder.ID + " signed by key " + p.KeyID
			}
		}
		if len(provenances(a)) > 0 {
			return false, a.Digest + ": trusted provenance, but from no hosted build platform"
		}
		return false, a.Digest + " has no provenance signed by a trusted key"
	})
	return Result{Pass: ok, Evidence: ev, Command: "custody attest provenance --from-env --key CI_KEY " + s.ref(ev.Example),
		Setting: "promotion: {trustRoot: ci-trust-root.json}"}
}

func checkPlatformProvenance(s subject) Result {
	builder := s.server.BuilderID
	ev, ok := s.each(func(a *artifact) (bool, string) {
		for _, p := range provenances(a) {
			if p.ByServer && p.Provenance.Hosted() && p.Provenance.RunDetails.Builder.ID == builder {
				return true, "platform provenance of " + p.Provenance.SourceURI() + "@" + p.Provenance.SourceCommit()
			}
		}
		return false, a.Digest + " has no provenance written by the server"
	})
	ev.Config = "signing.builderID: " + builder
	return Result{Pass: ok, Evidence: ev,
		Command: fmt.Sprintf(`curl -X POST -H "Authorization: Bearer $OIDC_TOKEN" https://%s/api/v1/provenance/%s/@%s`, s.host, s.repo, cmpOr(ev.Example, "sha256:..."))}
}
