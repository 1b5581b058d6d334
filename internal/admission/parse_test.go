package admission

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestParseImage(t *testing.T) {
	d := digest.FromString("x")
	cases := []struct {
		ref      string
		repo     string
		tag      string
		digest   digest.Digest
		tagOnly  bool
		wantFail string
	}{
		{ref: "nginx", repo: "index.docker.io/library/nginx", tag: "latest", tagOnly: true},
		{ref: "nginx:1.27", repo: "index.docker.io/library/nginx", tag: "1.27", tagOnly: true},
		{ref: "docker.io/library/nginx@" + string(d), repo: "index.docker.io/library/nginx", digest: d},
		{ref: "ghcr.io/org/team/app:v1.2.3", repo: "ghcr.io/org/team/app", tag: "v1.2.3", tagOnly: true},
		{ref: "registry.example.com:5000/team/app", repo: "registry.example.com:5000/team/app", tag: "latest", tagOnly: true},
		{ref: "registry.example.com:5000/team/app:1.4", repo: "registry.example.com:5000/team/app", tag: "1.4", tagOnly: true},
		{ref: "registry.example.com:5000/team/app@" + string(d), repo: "registry.example.com:5000/team/app", digest: d},
		{ref: "registry.example.com:5000/team/app:1.4@" + string(d), repo: "registry.example.com:5000/team/app", tag: "1.4", digest: d},
		{ref: "localhost:5000/app:dev@" + string(d), repo: "localhost:5000/app", tag: "dev", digest: d},
		{ref: "[::1]:5000/app:dev", repo: "[::1]:5000/app", tag: "dev", tagOnly: true},
		{ref: "app@sha512:" + strings.Repeat("ab", 64), repo: "index.docker.io/library/app", digest: digest.Digest("sha512:" + strings.Repeat("ab", 64))},
		{ref: "", wantFail: "empty"},
		{ref: "UPPER/case", wantFail: "could not parse"},
		{ref: "app@sha256:1234", wantFail: "could not parse"},
		{ref: "app@md5:" + strings.Repeat("a", 32), wantFail: "could not parse"},
		{ref: "https://registry.example.com/app:1", wantFail: "URL scheme"},
		{ref: "app name:1", wantFail: "could not parse"},
		{ref: "app:1@" + string(d) + "@" + string(d), wantFail: "could not parse"},
	}
	for _, c := range cases {
		img, tag, err := parseImage(container{kind: Container, name: "c", path: "spec.containers[0].image", reference: c.ref})
		if c.wantFail != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantFail) {
				t.Errorf("%q: error %v, want one saying %q", c.ref, err, c.wantFail)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.ref, err)
			continue
		}
		if img.Repository != c.repo || img.Tag != c.tag || img.Digest != c.digest || img.Reference != c.ref || (tag != nil) != c.tagOnly {
			t.Errorf("%q: got repo %q tag %q digest %q tag-only %v, want %q %q %q %v", c.ref, img.Repository, img.Tag, img.Digest, tag != nil, c.repo, c.tag, c.digest, c.tagOnly)
		}
		if c.tagOnly && tag != nil && tag.Name() != c.repo+":"+c.tag {
			t.Errorf("%q: tag to resolve %q", c.ref, tag.Name())
		}
	}
}

// FuzzParseImage checks that any string either fails to parse or yields a
// repository and, when it has a digest, a valid one; and never panics.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{"nginx", "nginx:1.27", "registry.example.com:5000/team/app:1.4@" + string(digest.FromString("x")),
		"localhost:5000", "[::1]:5000/a:b", "a@sha256:", "a:b:c", "a/b/", ":", "@", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		img, tag, err := parseImage(container{kind: Container, name: "c", reference: ref})
		if err != nil {
			return
		}
		if img.Repository == "" {
			t.Fatalf("%q: no repository", ref)
		}
		if (img.Digest == "") != (tag != nil) {
			t.Fatalf("%q: digest %q and tag %v", ref, img.Digest, tag)
		}
		if img.Digest != "" && img.Digest.Validate() != nil {
			t.Fatalf("%q: invalid digest %q", ref, img.Digest)
		}
	})
}
