package policy

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/repopattern"
)

func TestVersionTagPattern(t *testing.T) {
	re := regexp.MustCompile(VersionTagPattern)
	for tag, want := range map[string]bool{
		"v1.2.3": true, "1.2.3": true, "0.0.0": true, "1.2.3-rc.1": true, "1.2.3+build.5": true,
		"1.2.3_build.5": true, "v10.20.30-alpha-1_sha.abc": true,
		"latest": false, "v1.2": false, "01.2.3": false, "1.2.3.4": false, "main": false, "v1.2.3-": false,
	} {
		if got := re.MatchString(tag); got != want {
			t.Errorf("%q: %v, want %v", tag, got, want)
		}
	}
}

func TestMatchRepo(t *testing.T) {
	for _, c := range []struct {
		pattern, repo string
		want          bool
	}{
		{"**", "a", true}, {"**", "a/b/c", true},
		{"team/*", "team/app", true}, {"team/*", "team/a/b", false}, {"team/*", "team", false},
		{"team/**", "team", true}, {"team/**", "team/a/b", true}, {"team/**/x", "team/a/b/x", true},
		{"team/app", "team/app", true}, {"team/app", "team/app2", false}, {"*/app", "x/app", true},
	} {
		if got := repopattern.Match(c.pattern, c.repo); got != c.want {
			t.Errorf("MatchRepo(%q, %q) = %v", c.pattern, c.repo, got)
		}
	}
	if !moreSpecific("team/app", "team/*") || !moreSpecific("team/*", "team/**") || !moreSpecific("team/**", "**") {
		t.Error("specificity order")
	}
}

func TestValidate(t *testing.T) {
	bad := []Policy{
		{ImmutableTags: []string{"^("}},
		{ImmutableTags: []string{"["}},
		{MaxArtifactSize: -1},
		{Retention: &DefaultRetention{Mode: "strict", Period: 1}},
		{Retention: &DefaultRetention{Mode: ModeCompliance}},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
	for _, p := range []string{"", "a//b", "A/b", "a/b c"} {
		if repopattern.Validate(p) == nil {
			t.Errorf("pattern %q validated", p)
		}
	}
}

// TestDefaultRetentionPeriod: a period up to the longest duration loads
// as written (the retention date it gives is stored exactly, see
// internal/retention); a longer one is refused with the limit named.
func TestDefaultRetentionPeriod(t *testing.T) {
	var p Policy
	if err := json.Unmarshal([]byte(`{"retention":{"mode":"compliance","period":"2500000h"}}`), &p); err != nil || p.Validate() != nil ||
		time.Duration(p.Retention.Period) != 2500000*time.Hour {
		t.Fatalf("2500000h: %+v, %v", p.Retention, err)
	}
	err := json.Unmarshal([]byte(`{"retention":{"mode":"compliance","period":"3000000h"}}`), &p)
	if err == nil || !strings.Contains(err.Error(), "the longest is 2562047h47m16.854775807s") {
		t.Fatalf("3000000h: %v; want a refusal naming the longest duration", err)
	}
}
