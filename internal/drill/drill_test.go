package drill

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const host = "registry.example:5000"

var (
	d1 = "sha256:" + strings.Repeat("a1", 32)
	d2 = "sha256:" + strings.Repeat("b2", 32)
	d3 = "sha256:" + strings.Repeat("c3", 32)
)

func TestSBOMDependencies(t *testing.T) {
	spdx := `{"spdxVersion":"SPDX-2.3","packages":[
	  {"name":"base","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:oci/base@` + strings.Replace(d1, ":", "%3A", 1) + `?repository_url=` + host + `/apps/base"}]},
	  {"name":"tool.tgz","downloadLocation":"https://` + host + `/generic/tools/tool/1.0/tool.tgz","checksums":[{"algorithm":"SHA256","checksumValue":"` + strings.TrimPrefix(d2, "sha256:") + `"}]},
	  {"name":"unpinned","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:oci/base@latest"}]}]}`
	cdx := `{"bomFormat":"CycloneDX","components":[
	  {"name":"alpine","purl":"pkg:docker/library/alpine@` + d3 + `"},
	  {"name":"lib","hashes":[{"alg":"SHA-256","content":"` + strings.TrimPrefix(d2, "sha256:") + `"}],
	   "externalReferences":[{"type":"distribution","url":"https://elsewhere.example/lib.tgz"}]}]}`
	got := append(sbomDependencies("x", []byte(spdx)), sbomDependencies("x", []byte(cdx))...)
	want := map[string]string{
		"pkg:oci/base@" + strings.Replace(d1, ":", "%3A", 1) + "?repository_url=" + host + "/apps/base": d1,
		"https://" + host + "/generic/tools/tool/1.0/tool.tgz":                                          d2,
		"pkg:docker/library/alpine@" + d3:                                                               d3,
		"https://elsewhere.example/lib.tgz":                                                             d2,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d dependencies, want %d: %+v", len(got), len(want), got)
	}
	for _, d := range got {
		if want[d.URI] != d.Digest || d.From != "sbom" {
			t.Errorf("unexpected %+v", d)
		}
	}
}

func TestLocate(t *testing.T) {
	for _, c := range []struct {
		uri  string
		want location
		ok   bool
	}{
		{"oci://" + host + "/apps/base@" + d1, location{repo: "apps/base"}, true},
		{host + "/apps/base@" + d1, location{repo: "apps/base"}, true},
		{"pkg:oci/base@" + d1 + "?repository_url=" + host + "/apps/base", location{repo: "apps/base"}, true},
		{"pkg:docker/apps/base@" + d1 + "?repository_url=" + host, location{repo: "apps/base"}, true},
		{"https://" + host + "/generic/tools/team/tool/1.0/tool.tgz", location{repo: "tools/team/tool", blob: true}, true},
		{"https://" + host + "/elsewhere/tool.tgz", location{}, false},
		{"pkg:docker/library/alpine@" + d1, location{}, false},
		{"oci://other.example/apps/base@" + d1, location{}, false},
		{"git+https://github.com/acme/app", location{}, false},
	} {
		got, ok := locate(c.uri, host)
		if got != c.want || ok != c.ok {
			t.Errorf("locate(%q) = %+v, %v; want %+v, %v", c.uri, got, ok, c.want, c.ok)
		}
	}
}

func TestIsDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "exists.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for into, want := range map[string]bool{
		"/tmp/restore": true, "./restore": true, "../restore": true, "restore": true, "exists.d": true,
		"10.0.0.9:5000": false, "registry.example/restore": false, "localhost/x": false, "": false,
	} {
		if got := IsDirectory(into); got != want {
			t.Errorf("IsDirectory(%q) = %v", into, got)
		}
	}
}

func TestServiceName(t *testing.T) {
	for repo, want := range map[string]string{
		"apps/web": "apps-web", "Team_A/svc.x": "team-a-svc-x", strings.Repeat("a", 80): strings.Repeat("a", 63), "__": "service",
	} {
		if got := serviceName(repo); got != want {
			t.Errorf("serviceName(%q) = %q, want %q", repo, got, want)
		}
	}
}

// FuzzSBOMDependencies: any SBOM and any URI are read without panicking,
// and every dependency found is pinned by a well-formed sha256 digest.
func FuzzSBOMDependencies(f *testing.F) {
	f.Add([]byte(`{"packages":[{"downloadLocation":"https://h/generic/a/b/1/f","checksums":[{"algorithm":"SHA256","checksumValue":"`+strings.Repeat("0", 64)+`"}]}]}`), "pkg:oci/x@sha256:"+strings.Repeat("0", 64)+"?repository_url=h/a/x")
	f.Add([]byte(`{"components":[{"purl":"pkg:docker/a/b@sha256:`+strings.Repeat("f", 64)+`"}]}`), "oci://h/a@sha256:"+strings.Repeat("0", 64))
	f.Add([]byte(`[[[{}]]]`), "https://h/generic/")
	f.Fuzz(func(t *testing.T, sbom []byte, uri string) {
		for _, d := range sbomDependencies("x", sbom) {
			if !strings.HasPrefix(d.Digest, "sha256:") || len(d.Digest) != 71 {
				t.Fatalf("dependency with digest %q", d.Digest)
			}
		}
		if loc, ok := locate(uri, "h"); ok && loc.repo == "" && !loc.blob {
			t.Fatalf("located %q with no repository", uri)
		}
	})
}
