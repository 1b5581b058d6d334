package vuln

import (
	"strings"
	"testing"
)

func TestUnpinned(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		dep  Dependency
		want UnpinnedReason // "" when pinned
	}{
		{Dependency{Image: "alpine:3.19", Location: "Dockerfile:1"}, ReasonTag},
		{Dependency{Image: "docker.io/library/alpine"}, ReasonTag},
		{Dependency{Image: "alpine:3.19@" + digest}, ""},
		{Dependency{Image: "scratch"}, ""},
		{Dependency{PURL: "pkg:npm/lodash@4.17.21"}, ReasonUnlocked}, // version from the purl
		{Dependency{PURL: "pkg:npm/lodash@4.17.21", Locked: true}, ""},
		{Dependency{Image: "ghcr.io/x/y@sha256:abc"}, ReasonTag}, // not a digest
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "^4.17.0"}, ReasonRange},
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "4.17"}, ReasonRange}, // npm reads it as 4.17.x
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "latest"}, ReasonRange},
		{Dependency{PURL: "pkg:npm/lodash", Constraint: ""}, ReasonRange},
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "4.17.21"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "^4.17.0", Locked: true}, ""},
		{Dependency{PURL: "pkg:pypi/django", Constraint: ">=4.2,<5"}, ReasonRange},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "==4.2.*"}, ReasonRange},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "~=4.2"}, ReasonRange},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "!=4.2"}, ReasonRange},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "==4.2.7"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "===4.2.7"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "===4.2,<5"}, ReasonRange},
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "=4.17.21"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:npm/lodash", Constraint: "==4.17.21"}, ReasonRange},
		{Dependency{PURL: "pkg:cargo/serde", Constraint: "1.0.215"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:cargo/serde", Constraint: "!1.0"}, ReasonRange},
		{Dependency{PURL: "pkg:pypi/django", Constraint: "==4.2.7", Locked: true}, ""},
		{Dependency{PURL: "pkg:maven/org.example/lib", Constraint: "[1.0,2.0)"}, ReasonRange},
		{Dependency{PURL: "pkg:maven/org.example/lib", Constraint: "LATEST"}, ReasonRange},
		{Dependency{PURL: "pkg:maven/org.example/lib", Constraint: "1.0-SNAPSHOT"}, ReasonRange},
		{Dependency{PURL: "pkg:maven/org.example/lib", Constraint: "1.0.3"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:golang/github.com/x/y", Constraint: "v1.2.3"}, ReasonUnlocked},
		{Dependency{PURL: "pkg:golang/github.com/x/y", Constraint: "v0.0.0-20240101000000-abcdefabcdef", Locked: true}, ""},
	} {
		got := Unpinned([]Dependency{tc.dep})
		if tc.want == "" {
			if len(got) != 0 {
				t.Errorf("Unpinned(%+v) = %+v, want nothing", tc.dep, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("Unpinned(%+v) = %d findings, want 1", tc.dep, len(got))
			continue
		}
		f := got[0]
		if f.Kind != KindUnpinned || f.Reason != tc.want || f.ID != "UNPINNED-"+strings.ToUpper(string(tc.want)) ||
			(tc.dep.Constraint != "" && f.Version != tc.dep.Constraint) || f.Location != tc.dep.Location || f.Summary == "" || f.Severity != SeverityLow {
			t.Errorf("Unpinned(%+v) = %+v, want reason %s", tc.dep, f, tc.want)
		}
		if tc.dep.Image != "" && f.PURL != tc.dep.Image {
			t.Errorf("image finding names %q, want %q", f.PURL, tc.dep.Image)
		}
	}
}
