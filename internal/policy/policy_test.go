package policy

import (
	"regexp"
	"testing"
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
		if got := MatchRepo(c.pattern, c.repo); got != c.want {
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
		if ValidatePattern(p) == nil {
			t.Errorf("pattern %q validated", p)
		}
	}
}
