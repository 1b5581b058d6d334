package firewall

import (
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/vuln"
)

func TestAllowed(t *testing.T) {
	npm := config.Feed{Name: "n", Ecosystem: config.FeedEcosystemNPM, Firewall: config.FeedFirewall{Allow: []string{"left-pad", "@acme/util@2.0.0"}}}
	py := config.Feed{Name: "p", Ecosystem: config.FeedEcosystemPyPI, Firewall: config.FeedFirewall{Allow: []string{"Foo_Bar@1.0"}}}
	for _, c := range []struct {
		f             config.Feed
		name, version string
		want          bool
	}{
		{npm, "left-pad", "1.0.0", true},
		{npm, "left-pad-x", "1.0.0", false},
		{npm, "@acme/util", "2.0.0", true},
		{npm, "@acme/util", "2.0.1", false},
		{npm, "@acme", "util@2.0.0", false},
		{py, "foo-bar", "1.0", true},
		{py, "foo-bar", "1.1", false},
	} {
		if got := Allowed(c.f, c.name, c.version); got != c.want {
			t.Errorf("Allowed(%s, %s@%s) = %v", c.f.Name, c.name, c.version, got)
		}
	}
}

func TestBlocks(t *testing.T) {
	for _, c := range []struct {
		s    vuln.Severity
		at   string
		want bool
	}{
		{vuln.SeverityHigh, "high", true},
		{vuln.SeverityCritical, "high", true},
		{vuln.SeverityMedium, "high", false},
		{vuln.SeverityUnknown, "low", true},
		{vuln.SeverityUnknown, "medium", false},
		{vuln.SeverityCritical, "", false},
	} {
		if got := blocks(c.s, c.at); got != c.want {
			t.Errorf("blocks(%s, %q) = %v", c.s, c.at, got)
		}
	}
}

func TestParseWaiverRequest(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	goFeed := config.Feed{Name: "g", Ecosystem: config.FeedEcosystemGo}
	req, exp, err := ParseWaiverRequest(strings.NewReader(`{"package":"pkg:golang/example.com/a/b@v1.2.3","advisory":"GO-2026-0001","expires":"2027-01-01","reason":" r "}`), goFeed, now)
	if err != nil || req.Package != "pkg:golang/example.com/a/b@v1.2.3" || !exp.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || req.Reason != "r" {
		t.Fatalf("%+v %v %v", req, exp, err)
	}
	npm := config.Feed{Name: "n", Ecosystem: config.FeedEcosystemNPM}
	req, _, err = ParseWaiverRequest(strings.NewReader(`{"package":"pkg:npm/%40acme/util","advisory":"GHSA-1","expires":"2026-12-07T13:00:00+01:00","reason":"r"}`), npm, now)
	if err == nil {
		t.Errorf("an expiry equal to now was accepted: %+v", req)
	}
	req, _, err = ParseWaiverRequest(strings.NewReader(`{"package":"pkg:npm/%40acme/util","advisory":"GHSA-1","expires":"2026-12-07T14:00:00+01:00","reason":"r"}`), npm, now)
	if err != nil || req.Package != "pkg:npm/%40acme/util" {
		t.Errorf("%+v %v", req, err)
	}
	mvn := config.Feed{Name: "m", Ecosystem: config.FeedEcosystemMaven}
	req, _, err = ParseWaiverRequest(strings.NewReader(`{"package":"pkg:maven/org.x/y@1.0","advisory":"CVE-2026-1","expires":"2027-01-01","reason":"r"}`), mvn, now)
	if err != nil || req.Package != "pkg:maven/org.x/y@1.0" {
		t.Errorf("%+v %v", req, err)
	}
}

func FuzzParseWaiverRequest(f *testing.F) {
	f.Add(`{"package":"pkg:npm/left-pad@1.3.0","advisory":"GHSA-xxxx","expires":"2027-01-01","reason":"r"}`, "npm")
	f.Add(`{"package":"pkg:pypi/Foo_Bar","advisory":"PYSEC-1","expires":"2027-01-01T00:00:00Z","reason":"r"}`, "pypi")
	f.Add(`{"package":"pkg:golang/a/b@v1.0.0","advisory":"GO-1","expires":"x","reason":""}`, "go")
	f.Add(`{"package":"pkg:maven/g/a?x=1","advisory":"CVE-1","expires":"2027-01-01","reason":"r"}`, "maven")
	f.Add(`[]`, "npm")
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body, eco string) {
		fd := config.Feed{Name: "f", Ecosystem: eco}
		req, exp, err := ParseWaiverRequest(strings.NewReader(body), fd, now)
		if err != nil {
			return
		}
		if !exp.After(now) || req.Reason == "" || !advisoryID().MatchString(req.Advisory) {
			t.Fatalf("accepted %q: %+v %v", body, req, exp)
		}
		if !strings.HasPrefix(req.Package, "pkg:") {
			t.Fatalf("package %q", req.Package)
		}
		// Canonical: parsing the result again gives the same.
		again, _, err := ParseWaiverRequest(strings.NewReader(`{"package":`+quote(req.Package)+`,"advisory":"A","expires":"2099-01-01","reason":"r"}`), fd, now)
		if err != nil || again.Package != req.Package {
			t.Fatalf("%q does not parse to itself: %q %v", req.Package, again.Package, err)
		}
	})
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
