// Package firewall is custody's dependency firewall: the one place that
// decides whether a version of a package may be served from a feed
// (docs/feeds.md). It implements feed.Gate, judging each version against
// the offline vulnerability database (internal/vuln) with the feed's
// policy (config.FeedFirewall: block at or above a severity, block
// unpinned requests, an allow-list) and the feed's waivers: OpenVEX
// statements with an expiry, stored in the feed (see Waivers).
package firewall

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/ecosystem"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/vuln"
)

// maxCached bounds the findings remembered per database revision.
const maxCached = 100_000

// Firewall decides for every feed. It is safe for concurrent use.
type Firewall struct {
	db      *vuln.DB
	waivers *Waivers
	now     func() time.Time

	mu       sync.Mutex
	revision int64
	findings map[string][]vuln.Finding // by purl, for revision
}

var _ feed.Gate = (*Firewall)(nil)

// New returns the firewall judging with db and the waivers in w; now is
// its clock (time.Now when nil).
func New(db *vuln.DB, w *Waivers, now func() time.Time) *Firewall {
	if now == nil {
		now = time.Now
	}
	return &Firewall{db: db, waivers: w, now: now, findings: map[string][]vuln.Finding{}}
}

// PURL is the package URL of version of package name in ecosystem eco
// (a config.FeedEcosystem*), or "" for an ecosystem without one.
func PURL(eco, name, version string) string {
	typ := map[string]string{config.FeedEcosystemNPM: ecosystem.TypeNPM, config.FeedEcosystemPyPI: ecosystem.TypePyPI,
		config.FeedEcosystemGo: ecosystem.TypeGolang, config.FeedEcosystemMaven: ecosystem.TypeMaven}[eco]
	if typ == "" {
		return ""
	}
	return ecosystem.PURL(typ, name, version)
}

// Allowed reports whether the allow-list names the package ("name") or
// the version ("name@version"). PyPI names compare PEP 503 normalised.
func Allowed(f config.Feed, name, version string) bool {
	same := func(a, b string) bool { return a == b }
	if f.Ecosystem == config.FeedEcosystemPyPI {
		same = func(a, b string) bool { return ecosystem.NormalizePyPIName(a) == ecosystem.NormalizePyPIName(b) }
	}
	for _, a := range f.Firewall.Allow {
		n, v := a, ""
		// The version follows the last '@' that does not start the name
		// (npm scopes start with '@').
		if i := strings.LastIndex(a, "@"); i > 0 {
			n, v = a[:i], a[i+1:]
		}
		if same(n, name) && (v == "" || v == version) {
			return true
		}
	}
	return false
}

// blocks reports whether a finding of severity s reaches threshold (a
// config severity word). An advisory without a usable severity counts as
// low: it blocks only where everything known does.
func blocks(s vuln.Severity, threshold string) bool {
	want := vuln.Severity(strings.ToUpper(threshold)).Rank()
	have := s.Rank()
	if s == vuln.SeverityUnknown {
		have = vuln.SeverityLow.Rank()
	}
	return want > 0 && have >= want
}

// Admit implements feed.Gate: nil unless the feed's policy blocks
// version of name for an advisory at or above its blockSeverity that no
// allow-list entry and no unexpired waiver sets aside.
func (fw *Firewall) Admit(ctx context.Context, f config.Feed, name, version string) error {
	if f.Firewall.BlockSeverity == "" || Allowed(f, name, version) {
		return nil
	}
	purl := PURL(f.Ecosystem, name, version)
	if purl == "" {
		return nil
	}
	found, err := fw.match(ctx, purl)
	if err != nil {
		return fmt.Errorf("firewall: matching %s: %w", purl, err)
	}
	var hit []vuln.Finding
	for _, x := range found {
		if blocks(x.Severity, f.Firewall.BlockSeverity) {
			hit = append(hit, x)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	docs, err := fw.waivers.Documents(ctx, f.Name)
	if err != nil {
		return fmt.Errorf("firewall: reading the waivers of feed %s: %w", f.Name, err)
	}
	kept, _ := vuln.ApplyWaivers(hit, docs, fw.now())
	if len(kept) == 0 {
		return nil
	}
	// The worst first; its advisory is the one to waive first.
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Severity.Rank() > kept[j].Severity.Rank() })
	w := kept[0]
	reason := fmt.Sprintf("%s (%s", w.ID, strings.ToLower(string(w.Severity)))
	if w.Score > 0 {
		reason += fmt.Sprintf(" %.1f", w.Score)
	}
	reason += ")"
	if w.Summary != "" {
		reason += ": " + w.Summary
	}
	if w.Fixed != "" {
		reason += "; fixed in " + w.Fixed
	}
	if len(kept) > 1 {
		reason += fmt.Sprintf(" (and %d more advisories at or above %s)", len(kept)-1, f.Firewall.BlockSeverity)
	}
	return &feed.Blocked{Feed: f.Name, Package: name, Version: version, Reason: reason,
		Waive: WaiveCommand(f.Name, PURL(f.Ecosystem, name, version), w.ID, fw.now())}
}

// AdmitUnpinned implements feed.Gate: a *feed.Blocked when the feed's
// policy blocks unpinned requests (blockUnpinned), naming the query.
func (fw *Firewall) AdmitUnpinned(_ context.Context, f config.Feed, name, query string) error {
	if !f.Firewall.BlockUnpinned {
		return nil
	}
	return &feed.Blocked{Feed: f.Name, Package: name, Version: strings.TrimPrefix(query, "@"),
		Reason: "the feed blocks unpinned requests (blockUnpinned): ask for one exact version instead of " + query}
}

// WaiveCommand is the command that waives advisory for purl in feed
// until 30 days after now (the date can be changed; the reason should be).
func WaiveCommand(feedName, purl, advisory string, now time.Time) string {
	expires := now.UTC().AddDate(0, 0, 30).Format(time.DateOnly)
	return fmt.Sprintf("custody firewall waive --feed %s %s --advisory %s --expires %s --reason %q",
		feedName, purl, advisory, expires, "reviewed: not affected")
}

// match returns the findings of purl, remembered until the database's
// revision changes.
func (fw *Firewall) match(ctx context.Context, purl string) ([]vuln.Finding, error) {
	rev, err := fw.db.Revision(ctx)
	if err != nil {
		return nil, err
	}
	fw.mu.Lock()
	if rev != fw.revision || len(fw.findings) >= maxCached {
		fw.revision, fw.findings = rev, map[string][]vuln.Finding{}
	}
	found, ok := fw.findings[purl]
	fw.mu.Unlock()
	if ok {
		return found, nil
	}
	found, err = fw.db.Match(ctx, []vuln.Package{{PURL: purl}})
	if err != nil {
		return nil, err
	}
	var vulns []vuln.Finding
	for _, x := range found {
		if x.Kind == vuln.KindVulnerability || x.Kind == "" {
			vulns = append(vulns, x)
		}
	}
	fw.mu.Lock()
	if fw.revision == rev {
		fw.findings[purl] = vulns
	}
	fw.mu.Unlock()
	return vulns, nil
}
