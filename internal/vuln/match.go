package vuln

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/custody-dev/custody/internal/ecosystem"
)

// Package is one installed package to check.
type Package struct {
	// PURL is the package URL. Supported: pkg:golang, pkg:npm, pkg:pypi,
	// pkg:maven, pkg:deb/debian and pkg:deb/ubuntu (with a "distro"
	// qualifier such as "debian-12", "bookworm" or "ubuntu-22.04"), and
	// pkg:apk/alpine (with "distro=alpine-3.19.1"). For deb and apk the
	// "upstream" qualifier names the source package advisories are filed
	// under; without it the binary package name is used.
	PURL string
	// Version is the installed version; when empty, the PURL's version.
	Version string
	// Subject optionally names what the package was found in (an image
	// digest "sha256:..." or an image purl); it is copied into findings
	// and lets VEX statements about that product waive them.
	Subject string
}

// Kind says what a finding is about.
type Kind string

// The finding kinds.
const (
	// KindVulnerability is a known vulnerability in an installed version.
	KindVulnerability Kind = "vulnerability"
	// KindUnpinned is a dependency that is not pinned to one immutable
	// version (see Unpinned).
	KindUnpinned Kind = "unpinned"
)

// Finding is one problem with one package.
type Finding struct {
	Kind Kind `json:"kind"`
	// ID is the advisory ID ("GHSA-...", "DSA-...", "CVE-..."); for
	// KindUnpinned it is "UNPINNED-" followed by the reason in upper case.
	ID string `json:"id"`
	// Aliases are the advisory's other IDs, CVE IDs among them: its
	// "aliases" followed by its "upstream" IDs.
	Aliases []string `json:"aliases,omitempty"`
	// PURL is the package as given to Match (or the dependency as given to
	// Unpinned), and Version its installed (or declared) version.
	PURL    string `json:"purl"`
	Version string `json:"version"`
	// Ecosystem is the OSV ecosystem matched ("Debian:12").
	Ecosystem string `json:"ecosystem,omitempty"`
	// Fixed is the first version that fixes the vulnerability for the
	// installed version's range, empty when no fix is known.
	Fixed string `json:"fixed,omitempty"`
	// Severity is the rating: from the CVSS v3.x base score when the
	// advisory (or its entry for this package) carries a CVSS v3 vector,
	// which custody scores itself. Otherwise, for CVSS v4 vectors (not
	// scored by custody) and for advisories without a vector, it is the
	// textual rating the database gives, looked for in this order: an
	// "Ubuntu" severity entry, the package entry's ecosystem_specific and
	// database_specific "severity", the advisory's database_specific
	// "severity" (GitHub's LOW/MODERATE/HIGH/CRITICAL; "moderate" maps to
	// MEDIUM, Debian's "unimportant" and Ubuntu's "negligible" to LOW,
	// "important" to HIGH). Failing all that it is SeverityUnknown.
	Severity Severity `json:"severity"`
	// Score is the CVSS v3 base score, 0 when there is none.
	Score float64 `json:"score,omitzero"`
	// Vector is the CVSS vector the severity comes from, if any.
	Vector string `json:"vector,omitempty"`
	// Summary is the advisory's one-line summary (or, for KindUnpinned, the
	// explanation).
	Summary string `json:"summary,omitempty"`
	// Subject is Package.Subject.
	Subject string `json:"subject,omitempty"`
	// Reason and Location are set for KindUnpinned.
	Reason   UnpinnedReason `json:"reason,omitempty"`
	Location string         `json:"location,omitempty"`
	// Waiver is set on findings ApplyWaivers waived.
	Waiver *Waiver `json:"waiver,omitempty"`
}

// target is where a package's advisories are filed.
type target struct {
	ecosystems []string // candidates, the first the canonical one
	name       string
}

var debianCodenames = map[string]string{
	"jessie": "8", "stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
}

// PackageEcosystem returns the OSV ecosystem ("npm", "Debian:12",
// "Alpine:v3.19") and the package name advisories use for purl, or an
// error saying why the purl cannot be matched (malformed, an unsupported
// type, a distribution package without a usable "distro" qualifier).
// Match skips such packages.
func PackageEcosystem(purl string) (ecosystem, name string, err error) {
	t, err := targetFor(purl)
	if err != nil {
		return "", "", err
	}
	return t.ecosystems[0], t.name, nil
}

func targetFor(purl string) (target, error) {
	if len(purl) > 4096 {
		return target{}, errors.New("package URL longer than 4096 bytes")
	}
	p, err := packageurl.FromString(purl)
	if err != nil {
		return target{}, fmt.Errorf("package URL %q: %w", purl, err)
	}
	q := p.Qualifiers.Map()
	join := func(sep string) string {
		if p.Namespace == "" {
			return p.Name
		}
		return p.Namespace + sep + p.Name
	}
	source := func() string {
		if u := q["upstream"]; u != "" {
			// "upstream" may carry a version after a space or "@".
			u, _, _ = strings.Cut(u, " ")
			u, _, _ = strings.Cut(u, "@")
			return u
		}
		return p.Name
	}
	distro := q["distro"]
	switch p.Type {
	case "golang":
		return target{[]string{"Go"}, strings.ToLower(join("/"))}, nil
	case "npm":
		return target{[]string{"npm"}, join("/")}, nil
	case "pypi":
		return target{[]string{"PyPI"}, ecosystem.NormalizePyPIName(p.Name)}, nil
	case "maven":
		if p.Namespace == "" {
			return target{}, fmt.Errorf("package URL %q: a Maven purl needs the group as its namespace", purl)
		}
		return target{[]string{"Maven"}, join(":")}, nil
	case "deb":
		switch strings.ToLower(p.Namespace) {
		case "debian":
			rel := strings.TrimPrefix(strings.ToLower(distro), "debian-")
			if n, ok := debianCodenames[rel]; ok {
				rel = n
			}
			rel, _, _ = strings.Cut(rel, ".")
			if !allDigits(rel) {
				return target{}, fmt.Errorf("package URL %q: a Debian purl needs a distro qualifier such as distro=debian-12 or distro=bookworm", purl)
			}
			return target{[]string{"Debian:" + rel}, source()}, nil
		case "ubuntu":
			rel := strings.TrimPrefix(strings.ToLower(distro), "ubuntu-")
			if !ubuntuRelease().MatchString(rel) {
				return target{}, fmt.Errorf("package URL %q: an Ubuntu purl needs a distro qualifier such as distro=ubuntu-22.04", purl)
			}
			return target{[]string{"Ubuntu:" + rel, "Ubuntu:" + rel + ":LTS"}, source()}, nil
		}
	case "apk":
		if strings.ToLower(p.Namespace) == "alpine" {
			rel := strings.TrimPrefix(strings.ToLower(distro), "alpine-")
			parts := strings.Split(strings.TrimPrefix(rel, "v"), ".")
			if len(parts) < 2 || !allDigits(parts[0]) || !allDigits(parts[1]) {
				return target{}, fmt.Errorf("package URL %q: an Alpine purl needs a distro qualifier such as distro=alpine-3.19.1", purl)
			}
			return target{[]string{"Alpine:v" + parts[0] + "." + parts[1]}, source()}, nil
		}
	}
	return target{}, fmt.Errorf("package URL %q: ecosystem %s/%s is not supported", purl, p.Type, p.Namespace)
}

var ubuntuRelease = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]+\.[0-9]+$`) })

// normalizeName is the form of an advisory's package name the affected
// index keys on.
//
// Go module paths are compared without case: package URLs of type golang
// are lower-cased by the purl library (and by many SBOM tools), while OSV
// keeps the module path's case ("github.com/BurntSushi/toml").
func normalizeName(eco, name string) string {
	switch eco {
	case "PyPI":
		return ecosystem.NormalizePyPIName(name)
	case "Go":
		return strings.ToLower(name)
	}
	return name
}

// Match returns the known vulnerabilities of pkgs, at most one finding per
// advisory and package, sorted by severity (highest first), then ID and
// PURL. Withdrawn advisories are ignored. Packages PackageEcosystem refuses
// are skipped, as are ranges whose versions do not parse under the
// ecosystem's rules (see Compare); a version listed verbatim in an
// advisory's "versions" still matches. Match reads one consistent snapshot
// of the database.
func (db *DB) Match(ctx context.Context, pkgs []Package) ([]Finding, error) {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("vuln: match: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `SELECT a.id, a.doc FROM affected f JOIN advisories a ON a.id = f.advisory_id
		WHERE f.ecosystem = ? AND f.name = ? AND a.withdrawn = 0`)
	if err != nil {
		return nil, fmt.Errorf("vuln: match: %w", err)
	}
	defer stmt.Close()
	cache := map[string]*advisory{}
	byName := map[[2]string][]string{}
	seen := map[[3]string]bool{}
	var out []Finding
	for _, pkg := range pkgs {
		t, err := targetFor(pkg.PURL)
		if err != nil {
			continue
		}
		version := pkg.Version
		if version == "" {
			if p, err := packageurl.FromString(pkg.PURL); err == nil {
				version = p.Version
			}
		}
		if version == "" {
			continue
		}
		for _, eco := range t.ecosystems {
			// Binary packages built from one source share their advisories.
			ids, ok := byName[[2]string{eco, t.name}]
			if !ok {
				if ids, err = lookup(ctx, stmt, eco, t.name, cache); err != nil {
					return nil, err
				}
				byName[[2]string{eco, t.name}] = ids
			}
			for _, id := range ids {
				key := [3]string{id, pkg.PURL, pkg.Subject}
				if seen[key] {
					continue
				}
				a := cache[id]
				f, ok := a.match(eco, t.name, version)
				if !ok {
					continue
				}
				seen[key] = true
				f.PURL, f.Version, f.Subject = pkg.PURL, version, pkg.Subject
				out = append(out, f)
			}
		}
	}
	sortFindings(out)
	return out, nil
}

func lookup(ctx context.Context, stmt *sql.Stmt, eco, name string, cache map[string]*advisory) ([]string, error) {
	rows, err := stmt.QueryContext(ctx, eco, name)
	if err != nil {
		return nil, fmt.Errorf("vuln: match: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, fmt.Errorf("vuln: match: %w", err)
		}
		if _, ok := cache[id]; !ok {
			var a advisory
			if err := json.Unmarshal(doc, &a); err != nil {
				return nil, fmt.Errorf("vuln: match: stored advisory %s is corrupt: %w", id, err)
			}
			cache[id] = &a
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vuln: match: %w", err)
	}
	return ids, nil
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity.Rank() != b.Severity.Rank() {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		if a.PURL != b.PURL {
			return a.PURL < b.PURL
		}
		return a.Subject < b.Subject
	})
}

// match checks version of package name in ecosystem eco against the
// advisory. The returned finding lacks the package fields.
func (a *advisory) match(eco, name, version string) (Finding, bool) {
	for i := range a.Affected {
		af := &a.Affected[i]
		if af.Package.Ecosystem != eco || normalizeName(eco, af.Package.Name) != name {
			continue
		}
		hit, fixed := af.affects(eco, version)
		if !hit {
			continue
		}
		f := Finding{
			Kind:      KindVulnerability,
			ID:        a.ID,
			Aliases:   a.aliases(),
			Ecosystem: eco,
			Fixed:     fixed,
			Summary:   a.Summary,
		}
		f.Severity, f.Score, f.Vector = a.severity(af)
		return f, true
	}
	return Finding{}, false
}

// aliases returns the advisory's aliases followed by its upstream IDs
// (Debian, Ubuntu and Alpine records name their CVEs there), without
// duplicates.
func (a *advisory) aliases() []string {
	var out []string
	seen := map[string]bool{a.ID: true}
	for _, id := range append(append([]string(nil), a.Aliases...), a.Upstream...) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// affects reports whether version is affected by this entry, and the
// fixing version when a range says so.
func (af *osvAffected) affects(eco, version string) (bool, string) {
	base, _, _ := strings.Cut(eco, ":")
	ecoCmp := comparatorFor(base)
	for _, v := range af.Versions {
		if v == version {
			return true, af.firstFix(base, version)
		}
		if ecoCmp != nil {
			if c, err := ecoCmp(v, version); err == nil && c == 0 {
				return true, af.firstFix(base, version)
			}
		}
	}
	for _, r := range af.Ranges {
		cmp := rangeComparator(r.Type, base)
		if cmp == nil {
			continue
		}
		if hit, fixed, err := inRange(cmp, version, r.Events); err == nil && hit {
			return true, fixed
		}
	}
	return false, ""
}

// firstFix finds a fixed version for a version matched by the "versions"
// list: the fix closing the range that contains it, if any.
func (af *osvAffected) firstFix(base, version string) string {
	for _, r := range af.Ranges {
		cmp := rangeComparator(r.Type, base)
		if cmp == nil {
			continue
		}
		if hit, fixed, err := inRange(cmp, version, r.Events); err == nil && hit {
			return fixed
		}
	}
	return ""
}

func rangeComparator(typ, base string) comparator {
	switch typ {
	case "SEMVER":
		if base == "Go" {
			return compareGo
		}
		return compareSemver
	case "ECOSYSTEM":
		return comparatorFor(base)
	}
	return nil // GIT ranges name commits, not versions
}

// event kinds in the order events at the same version are applied.
const (
	evIntroduced = iota
	evLastAffected
	evFixed
	evLimit
)

type event struct {
	kind    int
	version string
}

// inRange evaluates one OSV range (https://ossf.github.io/osv-schema/#evaluation):
// events are sorted by version (at equal versions introduced, then
// last_affected, then fixed, then limit), and walked up to version; an
// introduced event at or below it opens the range, a fixed event at or
// below it or a last_affected event below it closes it. "introduced: 0"
// is below every version. When limit events are present the version must
// also be below one of them. It returns whether version is in the range
// and, if so, the fixed version that closes it ("" when none does, or a
// last_affected event closes it).
func inRange(cmp comparator, version string, events []osvEvent) (bool, string, error) {
	if _, err := cmp(version, version); err != nil {
		return false, "", err
	}
	evs := make([]event, 0, len(events))
	for _, e := range events {
		switch {
		case e.Introduced != "":
			evs = append(evs, event{evIntroduced, e.Introduced})
		case e.LastAffected != "":
			evs = append(evs, event{evLastAffected, e.LastAffected})
		case e.Fixed != "":
			evs = append(evs, event{evFixed, e.Fixed})
		case e.Limit != "":
			evs = append(evs, event{evLimit, e.Limit})
		}
	}
	for _, e := range evs {
		if e.kind == evIntroduced && e.version == "0" {
			continue
		}
		if e.kind == evLimit && e.version == "*" {
			continue
		}
		if _, err := cmp(e.version, e.version); err != nil {
			return false, "", err
		}
	}
	order := func(e event, v string) int { // e.version vs v
		if e.kind == evIntroduced && e.version == "0" {
			return -1
		}
		c, _ := cmp(e.version, v)
		return c
	}
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		var c int
		switch {
		case a.kind == evIntroduced && a.version == "0":
			c = -1
			if b.kind == evIntroduced && b.version == "0" {
				c = 0
			}
		case b.kind == evIntroduced && b.version == "0":
			c = 1
		case a.kind == evLimit && a.version == "*", b.kind == evLimit && b.version == "*":
			c = 0
		default:
			c, _ = cmp(a.version, b.version)
		}
		if c != 0 {
			return c < 0
		}
		return a.kind < b.kind
	})
	affected := false
	i := 0
walk:
	for ; i < len(evs); i++ {
		e := evs[i]
		switch e.kind {
		case evIntroduced:
			if order(e, version) > 0 {
				break walk
			}
			affected = true
		case evLastAffected:
			if order(e, version) >= 0 {
				break walk
			}
			affected = false
		case evFixed:
			if order(e, version) > 0 {
				break walk
			}
			affected = false
		case evLimit:
		}
	}
	if !affected {
		return false, "", nil
	}
	limited, below := false, false
	for _, e := range evs {
		if e.kind == evLimit && e.version != "*" {
			limited = true
			if order(e, version) > 0 {
				below = true
			}
		}
	}
	if limited && !below {
		return false, "", nil
	}
	for ; i < len(evs); i++ {
		switch evs[i].kind {
		case evFixed:
			return true, evs[i].version, nil
		case evLastAffected, evIntroduced:
			return true, "", nil
		}
	}
	return true, "", nil
}

// severity picks the finding's severity for entry af (see
// Finding.Severity).
func (a *advisory) severity(af *osvAffected) (Severity, float64, string) {
	for _, list := range [][]osvSeverity{af.Severity, a.Severity} {
		best, bestVec := -1.0, ""
		for _, s := range list {
			if s.Type != "CVSS_V3" {
				continue
			}
			score, err := CVSS3BaseScore(s.Score)
			if err == nil && score > best {
				best, bestVec = score, s.Score
			}
		}
		if best >= 0 {
			return SeverityForScore(best), best, bestVec
		}
	}
	vector := ""
	for _, list := range [][]osvSeverity{af.Severity, a.Severity} {
		for _, s := range list {
			if s.Type == "CVSS_V4" && vector == "" && checkCVSS4(s.Score) == nil {
				vector = s.Score
			}
		}
	}
	for _, list := range [][]osvSeverity{af.Severity, a.Severity} {
		for _, s := range list {
			if s.Type == "Ubuntu" {
				if sev := severityWord(s.Score); sev != SeverityUnknown {
					return sev, 0, vector
				}
			}
		}
	}
	for _, raw := range []json.RawMessage{af.EcosystemSpecific, af.DatabaseSpecific, a.DatabaseSpecific} {
		var ds struct {
			Severity json.RawMessage `json:"severity"`
		}
		if len(raw) == 0 || json.Unmarshal(raw, &ds) != nil || len(ds.Severity) == 0 {
			continue
		}
		var word string
		if json.Unmarshal(ds.Severity, &word) != nil {
			continue
		}
		if sev := severityWord(word); sev != SeverityUnknown {
			return sev, 0, vector
		}
	}
	return SeverityUnknown, 0, vector
}

// severityWord maps a database's textual rating to a Severity.
func severityWord(w string) Severity {
	switch strings.ToLower(strings.TrimSpace(w)) {
	case "critical":
		return SeverityCritical
	case "high", "important":
		return SeverityHigh
	case "moderate", "medium":
		return SeverityMedium
	case "low", "negligible", "unimportant":
		return SeverityLow
	case "none":
		return SeverityNone
	}
	return SeverityUnknown
}
