package maven

import (
	"context"
	"crypto/md5"  //nolint:gosec // Maven's .md5
	"crypto/sha1" //nolint:gosec // Maven's .sha1
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/testserver"
)

func TestParsePath(t *testing.T) {
	for rest, want := range map[string]Path{
		"com/example/demo/1.0/demo-1.0.jar": {Group: []string{"com", "example"}, Artifact: "demo", Version: "1.0",
			File: "demo-1.0.jar", Extension: "jar"},
		"com/example/demo/1.0/demo-1.0-sources.jar.sha1": {Group: []string{"com", "example"}, Artifact: "demo", Version: "1.0",
			File: "demo-1.0-sources.jar", Checksum: "sha1", Classifier: "sources", Extension: "jar"},
		"org/x/a-b/2.0.0-rc.1/a-b-2.0.0-rc.1.tar.gz": {Group: []string{"org", "x"}, Artifact: "a-b", Version: "2.0.0-rc.1",
			File: "a-b-2.0.0-rc.1.tar.gz", Extension: "tar.gz"},
		"com/example/demo/1.0/demo-1.0.jar.asc.md5": {Group: []string{"com", "example"}, Artifact: "demo", Version: "1.0",
			File: "demo-1.0.jar.asc", Checksum: "md5", Extension: "jar.asc"},
		"com/example/demo/maven-metadata.xml": {Group: []string{"com", "example"}, Artifact: "demo",
			File: MetadataName, Metadata: true},
		"com/example/demo/maven-metadata.xml.sha512": {Group: []string{"com", "example"}, Artifact: "demo",
			File: MetadataName, Metadata: true, Checksum: "sha512"},
		"com/example/demo/1.1-SNAPSHOT/maven-metadata.xml": {Group: []string{"com", "example"}, Artifact: "demo", Version: "1.1-SNAPSHOT",
			File: MetadataName, Metadata: true},
		"com/example/demo/1.1-SNAPSHOT/demo-1.1-20240101.120000-3-tests.jar.sha256": {Group: []string{"com", "example"}, Artifact: "demo",
			Version: "1.1-SNAPSHOT", File: "demo-1.1-20240101.120000-3-tests.jar", Checksum: "sha256",
			Snapshot: "1.1-20240101.120000-3", Classifier: "tests", Extension: "jar"},
		"com/example/demo/1.1-SNAPSHOT/demo-1.1-SNAPSHOT.pom": {Group: []string{"com", "example"}, Artifact: "demo",
			Version: "1.1-SNAPSHOT", File: "demo-1.1-SNAPSHOT.pom", Plain: true, Extension: "pom"},
	} {
		got, err := ParsePath(rest)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", rest, got, err, want)
		}
	}
	for _, rest := range []string{
		"", "demo-1.0.jar", "com/demo/1.0", "com/example/../../x/1.0/x-1.0.jar", "com/./demo/1.0/demo-1.0.jar",
		"com//demo/1.0/demo-1.0.jar", "com/example/demo/1.0/other-1.0.jar", "com/example/demo/1.0/demo-1.1.jar",
		"com/example/demo/1.0/demo-1.0.1.jar", "com/example/demo/1.0/demo-1.0", "com/example/demo/1.0/demo-1.0.",
		"com/example/demo/1.0/demo-1.0-.jar", "Com/example/demo/1.0/demo-1.0.jar", "com/example/Demo/1.0/Demo-1.0.jar",
		"com/example/demo/1.0/%2e%2e", "com/example/demo/..%2f/demo-..%2f.jar", "com/example/demo/1.0/demo-1.0.jar/",
		"com/example/demo/1.0 1/demo-1.0 1.jar", "com/example/demo/.1/demo-.1.jar",
		"com/example/demo/1.1-SNAPSHOT/demo-1.1-2024010.120000-3.jar", "com/example/demo/1.1-SNAPSHOT/demo-1.1-20240101.120000-.jar",
		"com/example/demo/1.0/demo-1.0-20240101.120000-1.jar", "com/example/demo/1.0/demo-1.0-a.b.c.jar/x",
	} {
		if p, err := ParsePath(rest); err == nil {
			t.Errorf("ParsePath(%q) = %+v; want an error", rest, p)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"com/example/demo/1.0/demo-1.0.jar", "com/example/demo/maven-metadata.xml.sha1",
		"com/example/demo/1.1-SNAPSHOT/demo-1.1-20240101.120000-3-tests.jar.md5", "com/example/../x/1/x-1.jar",
		"a/b/1.1-SNAPSHOT/b-1.1-SNAPSHOT.pom", "a/b/c/maven-metadata.xml"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		repo, err := p.Repository("f")
		if err != nil {
			return
		}
		if !registry.ValidName(repo) || strings.Contains(repo, "..") {
			t.Fatalf("ParsePath(%q): repository %q", s, repo)
		}
		if segs, ok := feed.Segments("f", repo); !ok || len(segs) != len(p.Group)+1 {
			t.Fatalf("ParsePath(%q): repository %q does not reverse", s, repo)
		}
		if !p.Metadata {
			if !feed.ValidFilename(p.File) || !strings.HasPrefix(p.File, p.Artifact+"-") || p.Extension == "" {
				t.Fatalf("ParsePath(%q) = %+v: a file that does not belong", s, p)
			}
			if p.Snapshot != "" && !IsSnapshot(p.Version) {
				t.Fatalf("ParsePath(%q) = %+v: a timestamp outside a SNAPSHOT", s, p)
			}
		}
		if strings.Contains(p.Version, "/") || p.Version == ".." || p.Version == "." {
			t.Fatalf("ParsePath(%q): version %q", s, p.Version)
		}
	})
}

func TestParseMetadata(t *testing.T) {
	m, err := ParseMetadata([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<metadata modelVersion="1.1.0" xmlns="http://maven.apache.org/METADATA/1.1.0">
  <groupId>com.example</groupId><artifactId>demo</artifactId>
  <versioning><release>1.0</release><versions><version>1.0</version><version>1.1-SNAPSHOT</version></versions>
    <lastUpdated>20240101120000</lastUpdated></versioning>
</metadata>`))
	if err != nil || m.GroupID != "com.example" || m.ArtifactID != "demo" || m.Versioning == nil ||
		!reflect.DeepEqual(m.Versioning.Versions, []string{"1.0", "1.1-SNAPSHOT"}) {
		t.Fatalf("ParseMetadata = %+v, %v", m, err)
	}
	for _, doc := range []string{"", "<metadata>", "<metadata><groupId>g</groupId></metadata>", "<other/>",
		`<!DOCTYPE metadata [<!ENTITY x "y">]><metadata><groupId>&x;</groupId><artifactId>a</artifactId></metadata>`,
		"<metadata><groupId>g</groupId><artifactId>a</artifactId>" + strings.Repeat(" ", MaxMetadata) + "</metadata>"} {
		if m, err := ParseMetadata([]byte(doc)); err == nil {
			t.Errorf("ParseMetadata(%.60q) = %+v; want an error", doc, m)
		}
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`<metadata><groupId>g</groupId><artifactId>a</artifactId><versioning><versions><version>1</version></versions></versioning></metadata>`))
	f.Add([]byte(`<metadata modelVersion="1.1.0"><groupId>g</groupId><artifactId>a</artifactId><version>1-SNAPSHOT</version><versioning><snapshot><timestamp>20240101.120000</timestamp><buildNumber>2</buildNumber></snapshot></versioning></metadata>`))
	f.Add([]byte(`<!DOCTYPE x><metadata/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		// What parses encodes and parses back to the same names.
		back, err := ParseMetadata(m.Encode())
		if err != nil || back.GroupID != m.GroupID || back.ArtifactID != m.ArtifactID {
			t.Fatalf("round trip of %q: %+v, %v", b, back, err)
		}
	})
}

func TestGeneratedMetadata(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	files := []Stored{
		{Version: "1.1-SNAPSHOT", Snapshot: "1.1-20240101.120500-2", Extension: "jar", Created: t0.Add(5 * time.Minute)},
		{Version: "1.0", Extension: "jar", Created: t0},
		{Version: "1.0", Extension: "pom", Created: t0},
		{Version: "1.1-SNAPSHOT", Snapshot: "1.1-20240101.120100-1", Extension: "jar", Created: t0.Add(time.Minute)},
		{Version: "1.1-SNAPSHOT", Snapshot: "1.1-20240101.120100-1", Classifier: "sources", Extension: "jar", Created: t0.Add(time.Minute)},
		{Version: "1.1-SNAPSHOT", Snapshot: "1.1-20240101.120500-2", Extension: "pom", Created: t0.Add(5 * time.Minute)},
	}
	a := ArtifactMetadata("com.example", "demo", files)
	if a == nil || a.Versioning.Release != "1.0" || a.Versioning.Latest != "1.1-SNAPSHOT" ||
		!reflect.DeepEqual(a.Versioning.Versions, []string{"1.0", "1.1-SNAPSHOT"}) || a.Versioning.LastUpdated != "20240101120500" {
		t.Fatalf("ArtifactMetadata = %+v", a.Versioning)
	}
	s := SnapshotMetadata("com.example", "demo", "1.1-SNAPSHOT", files)
	want := []SnapshotVersion{
		{Extension: "jar", Value: "1.1-20240101.120500-2", Updated: "20240101120500"},
		{Classifier: "sources", Extension: "jar", Value: "1.1-20240101.120100-1", Updated: "20240101120100"},
		{Extension: "pom", Value: "1.1-20240101.120500-2", Updated: "20240101120500"},
	}
	if s == nil || *s.Versioning.Snapshot != (Snapshot{Timestamp: "20240101.120500", BuildNumber: 2}) ||
		!reflect.DeepEqual(s.Versioning.SnapshotVersions, want) || s.Version != "1.1-SNAPSHOT" {
		t.Fatalf("SnapshotMetadata = %+v", s.Versioning)
	}
	if m, err := ParseMetadata(s.Encode()); err != nil || m.Versioning.Snapshot.BuildNumber != 2 {
		t.Fatalf("the generated document does not read back: %+v, %v\n%s", m, err, s.Encode())
	}
	if ArtifactMetadata("g", "a", nil) != nil || SnapshotMetadata("g", "a", "1.0", files) != nil {
		t.Fatal("metadata of nothing stored")
	}
}

// recorder keeps audit events.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) has(action, result string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Action == action && e.Result == result {
			return true
		}
	}
	return false
}

// blockVersion is a dependency firewall that blocks one version.
type blockVersion struct{ pkg, version string }

func (blockVersion) AdmitUnpinned(context.Context, config.Feed, string, string) error { return nil }

func (b blockVersion) Admit(_ context.Context, f config.Feed, name, version string) error {
	if name == b.pkg && version == b.version {
		return &feed.Blocked{Feed: f.Name, Package: name, Version: version, Reason: "GHSA-test (critical): a test advisory", Waive: "custody waive it"}
	}
	return nil
}

type fixture struct {
	url   string
	h     *Handler
	md    *sqlite.Store
	audit *recorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	blobs, md := storetest.Embedded(t)
	rec := &recorder{}
	h := New([]config.Feed{{Name: "f", Ecosystem: "maven"} /* kind omitted: hosted, the default */, {Name: "p", Ecosystem: "maven", Kind: "proxy"}},
		blobs, md, registry.Options{Auditor: rec})
	h.Gate = blockVersion{"com.example:bad", "6.6"}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return &fixture{url: s.URL + "/maven/f/", h: h, md: md, audit: rec}
}

func (x *fixture) do(t *testing.T, method, path string, body []byte) (int, string, http.Header) {
	t.Helper()
	resp, b := testserver.Do(t, method, x.url+path, "", body)
	return resp.StatusCode, string(b), resp.Header
}

// tags lists what repo holds; nil when it does not exist.
func (x *fixture) tags(t *testing.T, repo string) []string {
	t.Helper()
	tags, err := x.h.Store.Tags(context.Background(), repo)
	if err != nil {
		return nil
	}
	return tags
}

func hexOf(sum []byte) string { return hex.EncodeToString(sum) }

// TestRefusals: each bad deploy is refused natively (status + text, never
// problem JSON), audited, and stores nothing.
func TestRefusals(t *testing.T) {
	x := newFixture(t)
	jar := []byte("PK jar bytes")
	const base = "com/example/demo/1.0/demo-1.0.jar"
	if code, body, _ := x.do(t, "PUT", base, jar); code != http.StatusCreated || !x.audit.has("maven.deploy", "ok") {
		t.Fatalf("deploy: %d %s (audited: %v)", code, body, x.audit.has("maven.deploy", "ok"))
	}
	s1 := sha1.Sum(jar) //nolint:gosec // Maven's .sha1
	m5 := md5.Sum(jar)  //nolint:gosec // Maven's .md5
	for _, c := range []struct{ path, body string }{{base + ".sha1", hexOf(s1[:])}, {base + ".md5", hexOf(m5[:]) + "  demo-1.0.jar\n"}} {
		if code, body, _ := x.do(t, "PUT", c.path, []byte(c.body)); code != http.StatusCreated {
			t.Fatalf("PUT %s with the right checksum: %d %s", c.path, code, body)
		}
	}
	before := x.tags(t, "f/com/example/demo")
	for _, c := range []struct {
		name, method, path, body string
		code                     int
		action                   string
	}{
		{"checksum mismatch", "PUT", base + ".sha1", strings.Repeat("0", 40), 400, "maven.checksum"},
		{"checksum not hex", "PUT", base + ".sha256", "nope", 400, "maven.checksum"},
		{"checksum of no file", "PUT", "com/example/demo/1.0/demo-1.0-sources.jar.sha1", hexOf(s1[:]), 400, "maven.checksum"},
		{"overwrite a release", "PUT", base, "other bytes", 409, "maven.deploy"},
		{"path traversal", "PUT", "com/example/demo/../../../x/1.0/x-1.0.jar", "x", 400, "maven.deploy"},
		{"escaped traversal", "PUT", "com/example/demo/1.0/%2e%2e%2fdemo-1.0.jar", "x", 400, "maven.deploy"},
		{"file of another artifact", "PUT", "com/example/demo/1.0/other-1.0.jar", "x", 400, "maven.deploy"},
		{"file of another version", "PUT", "com/example/demo/1.0/demo-2.0.jar", "x", 400, "maven.deploy"},
		{"uppercase groupId", "PUT", "com/Example/demo/1.0/demo-1.0.jar", "x", 400, "maven.deploy"},
		{"plain SNAPSHOT name", "PUT", "com/example/demo/1.1-SNAPSHOT/demo-1.1-SNAPSHOT.jar", "x", 400, "maven.deploy"},
		{"metadata of another artifact", "PUT", "com/example/demo/maven-metadata.xml",
			"<metadata><groupId>com.example</groupId><artifactId>other</artifactId></metadata>", 400, "maven.metadata"},
		{"metadata not XML", "PUT", "com/example/demo/maven-metadata.xml", "{}", 400, "maven.metadata"},
	} {
		code, body, hdr := x.do(t, c.method, c.path, []byte(c.body))
		if code != c.code || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %s (%s); want %d in plain text", c.name, code, body, hdr.Get("Content-Type"), c.code)
		}
		if c.code == 409 && !x.audit.has(c.action, "denied") || c.code == 400 && !x.audit.has(c.action, "invalid") {
			t.Errorf("%s: no %s audit event", c.name, c.action)
		}
	}
	// Nothing changed: the same files, the same bytes, no other repository.
	if after := x.tags(t, "f/com/example/demo"); !reflect.DeepEqual(after, before) {
		t.Fatalf("tags changed: %v -> %v", before, after)
	}
	for _, repo := range []string{"f/x", "f/com/example/other", "f/com/example/x"} {
		if tags := x.tags(t, repo); tags != nil {
			t.Fatalf("%s holds %v", repo, tags)
		}
	}
	if code, body, _ := x.do(t, "GET", base, nil); code != 200 || body != string(jar) {
		t.Fatalf("GET after the refusals: %d %q", code, body)
	}
	if code, body, _ := x.do(t, "GET", base+".sha1", nil); code != 200 || body != hexOf(s1[:]) {
		t.Fatalf("GET .sha1 after the refusals: %d %q", code, body)
	}
	// The same bytes again: success, nothing changed.
	if code, body, _ := x.do(t, "PUT", base, jar); code != http.StatusOK {
		t.Fatalf("deploy of the same bytes again: %d %s", code, body)
	}
	if after := x.tags(t, "f/com/example/demo"); !reflect.DeepEqual(after, before) {
		t.Fatalf("tags changed by the same bytes: %v -> %v", before, after)
	}
	// A metadata upload is accepted and not stored: the served document
	// is generated.
	if code, body, _ := x.do(t, "PUT", "com/example/demo/maven-metadata.xml",
		[]byte("<metadata><groupId>com.example</groupId><artifactId>demo</artifactId><versioning><release>9.9</release></versioning></metadata>")); code != http.StatusCreated {
		t.Fatalf("PUT maven-metadata.xml: %d %s", code, body)
	}
	code, doc, _ := x.do(t, "GET", "com/example/demo/maven-metadata.xml", nil)
	if code != 200 || !strings.Contains(doc, "<release>1.0</release>") || strings.Contains(doc, "9.9") {
		t.Fatalf("GET maven-metadata.xml: %d\n%s", code, doc)
	}
	s := sha1.Sum([]byte(doc)) //nolint:gosec // Maven's .sha1
	if code, sum, _ := x.do(t, "GET", "com/example/demo/maven-metadata.xml.sha1", nil); code != 200 || sum != hexOf(s[:]) {
		t.Fatalf("GET maven-metadata.xml.sha1: %d %q, want %s", code, sum, hexOf(s[:]))
	}
	// Only GET, HEAD and PUT.
	if code, _, _ := x.do(t, "DELETE", base, nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d", code)
	}
}

// TestFirewallBlocksDownload: a blocked version's file is refused, 403
// with the advisory and the waiver command, and audited; its checksum
// and metadata stay readable; other versions are served.
func TestFirewallBlocksDownload(t *testing.T) {
	x := newFixture(t)
	for _, p := range []string{"com/example/bad/6.6/bad-6.6.jar", "com/example/bad/6.7/bad-6.7.jar"} {
		if code, body, _ := x.do(t, "PUT", p, []byte(p)); code != http.StatusCreated {
			t.Fatalf("deploy %s: %d %s", p, code, body)
		}
	}
	code, body, hdr := x.do(t, "GET", "com/example/bad/6.6/bad-6.6.jar", nil)
	if code != http.StatusForbidden || !strings.Contains(body, "GHSA-test") || !strings.Contains(body, "custody waive it") ||
		!strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || strings.Contains(body, "com/example/bad/6.6/bad-6.6.jar") {
		t.Fatalf("GET a blocked version: %d %q", code, body)
	}
	if !x.audit.has("feed.blocked", "denied") {
		t.Fatal("no feed.blocked audit event")
	}
	if code, body, _ := x.do(t, "HEAD", "com/example/bad/6.6/bad-6.6.jar", nil); code != http.StatusForbidden {
		t.Fatalf("HEAD a blocked version: %d %q", code, body)
	}
	if code, body, _ := x.do(t, "GET", "com/example/bad/6.7/bad-6.7.jar", nil); code != 200 || body != "com/example/bad/6.7/bad-6.7.jar" {
		t.Fatalf("GET another version: %d %q", code, body)
	}
}
