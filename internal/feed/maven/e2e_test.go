package maven_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha1" //nolint:gosec // Maven's .sha1
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/testserver"
)

// debianRepo is Debian's Maven repository: maven-deploy-plugin (package
// libmaven-deploy-plugin-java) and plexus-utils come from it, so mvn runs
// without Maven Central.
const (
	debianRepo   = "/usr/share/maven-repo"
	deployPlugin = "org.apache.maven.plugins:maven-deploy-plugin:3.0.0:deploy-file"
)

// e2e is a running custody with one hosted Maven feed, "mvnfeed", and auth.
type e2e struct {
	t              *testing.T
	s              *testserver.Server
	mvn            string
	writer, reader string // API tokens on mvnfeed/**
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	return startWith(t, "feeds:\n  - name: mvnfeed\n    ecosystem: maven\n    kind: hosted\n")
}

// startWith starts custody with auth and config, whose feed mvnfeed the
// tokens and settings name.
func startWith(t *testing.T, config string) *e2e {
	t.Helper()
	mvn := testserver.Client(t, "mvn")
	if _, err := os.Stat(filepath.Join(debianRepo, "org/apache/maven/plugins/maven-deploy-plugin/3.0.0")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("maven-deploy-plugin is not installed: run scripts/install-clients.sh (CI must not skip client tests)")
		}
		t.Skip("maven-deploy-plugin (Debian's libmaven-deploy-plugin-java) not installed; run scripts/install-clients.sh")
	}
	s := testserver.Start(t, testserver.Options{Auth: true, Config: config})
	e := &e2e{t: t, s: s, mvn: mvn}
	e.writer = e.token(auth.RoleWriter)
	e.reader = e.token(auth.RoleReader)
	return e
}

func (e *e2e) token(role auth.Role) string {
	e.t.Helper()
	return e.s.Token(e.t, string(role), "mvnfeed/**")
}

// call sends a request straight to custody with Basic credentials (a
// POST as JSON).
func (e *e2e) call(method, path, user, pw string, body []byte) (int, []byte) {
	e.t.Helper()
	ctype := ""
	if method == "POST" {
		ctype = "application/json"
	}
	resp, b := e.s.Call(e.t, method, path, testserver.Basic(user, pw), body, "Content-Type", ctype)
	return resp.StatusCode, b
}

// settings writes a settings.xml for token: a fresh local repository,
// custody as the mirror of every repository but Debian's (plugins), and
// the token as the <server>'s password; SNAPSHOTs are enabled for the
// custody repository (Maven Central's definition disables them).
func (e *e2e) settings(token string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	doc := `<settings>
  <localRepository>` + filepath.Join(dir, "repository") + `</localRepository>
  <servers><server><id>custody</id><username>token</username><password>` + token + `</password></server></servers>
  <mirrors><mirror><id>custody</id><mirrorOf>*,!debian</mirrorOf><url>` + e.s.URL + `/maven/mvnfeed/</url></mirror></mirrors>
  <profiles><profile><id>debian</id>
    <repositories><repository><id>custody-snapshots</id><url>` + e.s.URL + `/maven/mvnfeed/</url>
      <snapshots><enabled>true</enabled></snapshots></repository></repositories>
    <pluginRepositories><pluginRepository><id>debian</id><url>file://` + debianRepo + `</url>
      <releases><checksumPolicy>ignore</checksumPolicy></releases></pluginRepository>
      <pluginRepository><id>custody-snapshots</id><url>` + e.s.URL + `/maven/mvnfeed/</url>
      <snapshots><enabled>true</enabled></snapshots></pluginRepository></pluginRepositories>
  </profile></profiles>
  <activeProfiles><activeProfile>debian</activeProfile></activeProfiles>
</settings>
`
	p := filepath.Join(dir, "settings.xml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *e2e) run(dir, settings string, args ...string) (string, error) {
	e.t.Helper()
	cmd := exec.Command(e.mvn, append([]string{"-B", "-s", settings}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "MAVEN_OPTS=-Xmx256m -XX:TieredStopAtLevel=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// deploy runs maven-deploy-plugin's deploy-file: file with pom.
func (e *e2e) deploy(token string, file, pom []byte, ext string) (string, error) {
	e.t.Helper()
	dir := e.t.TempDir()
	f := writeFile(e.t, dir, "artifact."+ext, file)
	p := writeFile(e.t, dir, "pom.xml.in", pom)
	return e.run(dir, e.settings(token), deployPlugin, "-Dfile="+f, "-DpomFile="+p, "-Dpackaging="+ext,
		"-Durl="+e.s.URL+"/maven/mvnfeed/", "-DrepositoryId=custody")
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jar is a small jar whose one resource holds value.
func jar(t *testing.T, value string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range [][2]string{{"META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n"}, {"custody/value.txt", value}} {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(f[1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pom is a jar's POM. It depends on plexus-utils (from Debian's
// repository), so Maven, loading the jar as a build extension, adds no
// plexus-utils 1.1 from Maven Central.
func pom(artifact, version, packaging string) []byte {
	return []byte(`<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId><artifactId>` + artifact + `</artifactId><version>` + version + `</version><packaging>` + packaging + `</packaging>
  <dependencies><dependency><groupId>org.codehaus.plexus</groupId><artifactId>plexus-utils</artifactId><version>debian</version></dependency></dependencies>
</project>
`)
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b) //nolint:gosec // Maven's .sha1
	return hex.EncodeToString(s[:])
}

// TestMavenDeployAndResolve deploys with the real maven-deploy-plugin
// (releases, a release again with the same bytes, SNAPSHOTs) and resolves
// with a real mvn build: a parent by version range (artifact-level
// maven-metadata.xml), a release jar and a SNAPSHOT jar (version-level
// metadata) as build extensions. A reader cannot deploy and a release
// cannot be replaced with other bytes; neither changes anything.
func TestMavenDeployAndResolve(t *testing.T) {
	e := startE2E(t)
	demo := jar(t, "demo 1.0")
	if out, err := e.deploy(e.writer, demo, pom("demo", "1.0", "jar"), "jar"); err != nil {
		t.Fatalf("mvn deploy: %v\n%s", err, out)
	}
	// mvn retries a deploy: the same bytes again succeed.
	if out, err := e.deploy(e.writer, demo, pom("demo", "1.0", "jar"), "jar"); err != nil {
		t.Fatalf("mvn deploy of the same bytes again: %v\n%s", err, out)
	}
	// Other bytes for the release are refused, 409, and change nothing.
	out, err := e.deploy(e.writer, jar(t, "other"), pom("demo", "1.0", "jar"), "jar")
	if err == nil || !strings.Contains(out, "409") {
		t.Fatalf("mvn deploy over a release with other bytes: %v, want a 409\n%s", err, out)
	}
	// A reader may resolve but not deploy.
	out, err = e.deploy(e.reader, jar(t, "reader"), pom("demo", "2.0", "jar"), "jar")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("mvn deploy as a reader: %v, want a 403\n%s", err, out)
	}
	// Without credentials: 401 with a Basic challenge, which mvn answers
	// with its <server>'s; errors are plain text, never problem JSON.
	resp, err := http.Get(e.s.URL + "/maven/mvnfeed/com/example/demo/1.0/demo-1.0.jar")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("anonymous GET: %d %v", resp.StatusCode, resp.Header)
	}
	// A path leaving the artifact's directory is refused by the running
	// server too (no path cleaning before the feed), and stores nothing.
	if code, body := e.call("PUT", "/maven/mvnfeed/com/example/demo/1.0/../../../../x/1.0/x-1.0.jar", "token", e.writer, demo); code != http.StatusBadRequest {
		t.Fatalf("PUT with ..: %d %s", code, body)
	}
	if code, _ := e.call("GET", "/v2/mvnfeed/x/tags/list", "admin", e.s.AdminPassword(), nil); code != http.StatusNotFound {
		t.Fatalf("the refused PUT created mvnfeed/x: %d", code)
	}
	code, body := e.call("GET", "/maven/mvnfeed/com/example/demo/1.0/demo-1.0.jar", "token", e.reader, nil)
	if code != http.StatusOK || !bytes.Equal(body, demo) { // still the first bytes
		t.Fatalf("GET demo-1.0.jar: %d, the deployed bytes: %v", code, bytes.Equal(body, demo))
	}
	code, body = e.call("GET", "/maven/mvnfeed/com/example/demo/1.0/demo-1.0.jar.sha1", "token", e.reader, nil)
	if code != http.StatusOK || string(body) != sha1Hex(demo) {
		t.Fatalf("GET demo-1.0.jar.sha1: %d %q, want %s", code, body, sha1Hex(demo))
	}
	code, body = e.call("GET", "/maven/mvnfeed/com/example/demo/maven-metadata.xml", "token", e.reader, nil)
	if code != http.StatusOK || !strings.Contains(string(body), "<release>1.0</release>") || strings.Contains(string(body), "2.0") {
		t.Fatalf("GET maven-metadata.xml: %d\n%s", code, body)
	}
	// Parents 1.0 and 1.2 (packaging pom), and two builds of a SNAPSHOT.
	for _, v := range []string{"1.0", "1.2"} {
		p := []byte(`<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId><artifactId>parent</artifactId><version>` + v + `</version><packaging>pom</packaging>
  <properties><parent.version>` + v + `</parent.version></properties></project>
`)
		if out, err := e.deploy(e.writer, p, p, "pom"); err != nil {
			t.Fatalf("mvn deploy parent %s: %v\n%s", v, err, out)
		}
	}
	snap2 := jar(t, "snapshot build 2")
	for _, b := range [][]byte{jar(t, "snapshot build 1"), snap2} {
		if out, err := e.deploy(e.writer, b, pom("snap", "1.1-SNAPSHOT", "jar"), "jar"); err != nil {
			t.Fatalf("mvn deploy SNAPSHOT: %v\n%s", err, out)
		}
	}
	code, body = e.call("GET", "/maven/mvnfeed/com/example/snap/1.1-SNAPSHOT/maven-metadata.xml", "token", e.reader, nil)
	if code != http.StatusOK || !strings.Contains(string(body), "<buildNumber>2</buildNumber>") {
		t.Fatalf("GET the SNAPSHOT's maven-metadata.xml: %d\n%s", code, body)
	}
	// The plain -SNAPSHOT name is the newest build.
	code, body = e.call("GET", "/maven/mvnfeed/com/example/snap/1.1-SNAPSHOT/snap-1.1-SNAPSHOT.jar", "token", e.reader, nil)
	if code != http.StatusOK || !bytes.Equal(body, snap2) {
		t.Fatalf("GET snap-1.1-SNAPSHOT.jar: %d, the newest build: %v", code, bytes.Equal(body, snap2))
	}

	// Resolve with a real build, as a reader, from a fresh local repository.
	dir := t.TempDir()
	writeFile(t, dir, "pom.xml", []byte(`<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>com.example</groupId><artifactId>parent</artifactId><version>[1.0,2.0)</version><relativePath/></parent>
  <artifactId>consumer</artifactId><version>1</version><packaging>pom</packaging>
  <build><extensions>
    <extension><groupId>com.example</groupId><artifactId>demo</artifactId><version>1.0</version></extension>
    <extension><groupId>com.example</groupId><artifactId>snap</artifactId><version>1.1-SNAPSHOT</version></extension>
  </extensions></build>
</project>
`))
	settings := e.settings(e.reader)
	out, err = e.run(dir, settings, "validate")
	if err != nil {
		t.Fatalf("mvn validate resolving from custody: %v\n%s", err, out)
	}
	local := filepath.Join(filepath.Dir(settings), "repository", "com", "example")
	if b, err := os.ReadFile(filepath.Join(local, "demo", "1.0", "demo-1.0.jar")); err != nil || !bytes.Equal(b, demo) {
		t.Fatalf("resolved demo-1.0.jar: %v, the deployed bytes: %v\n%s", err, bytes.Equal(b, demo), out)
	}
	if _, err := os.Stat(filepath.Join(local, "parent", "1.2", "parent-1.2.pom")); err != nil {
		t.Fatalf("the parent range did not resolve to 1.2: %v\n%s", err, out)
	}
	jars, _ := filepath.Glob(filepath.Join(local, "snap", "1.1-SNAPSHOT", "snap-1.1-*.jar"))
	found := false
	for _, j := range jars {
		b, _ := os.ReadFile(j)
		found = found || bytes.Equal(b, snap2)
		if !bytes.Equal(b, snap2) {
			t.Errorf("resolved %s is not the newest SNAPSHOT build", filepath.Base(j))
		}
	}
	if !found {
		t.Fatalf("the SNAPSHOT did not resolve to its newest build (%v)\n%s", jars, out)
	}
}

// TestMavenProxyResolve: a real mvn build resolves through a proxy feed
// whose upstream is another custody (playing Maven Central, without
// auth): a parent by version range (upstream's maven-metadata.xml) and a
// jar, each fetched once and checked against upstream's .sha1. With
// upstream gone, a build from a fresh local repository still resolves
// from what custody stored.
func TestMavenProxyResolve(t *testing.T) {
	testserver.Client(t, "mvn")
	up := testserver.Start(t, testserver.Options{Config: "feeds:\n  - name: central\n    ecosystem: maven\n    kind: hosted\n"})
	demo := jar(t, "demo from upstream")
	parent := func(v string) []byte {
		return []byte(`<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId><artifactId>parent</artifactId><version>` + v + `</version><packaging>pom</packaging></project>
`)
	}
	for path, body := range map[string][]byte{
		"com/example/demo/1.0/demo-1.0.jar":     demo,
		"com/example/demo/1.0/demo-1.0.pom":     pom("demo", "1.0", "jar"),
		"com/example/parent/1.0/parent-1.0.pom": parent("1.0"),
		"com/example/parent/1.2/parent-1.2.pom": parent("1.2"),
		"com/example/parent/1.3/parent-1.3.pom": parent("1.3"),
	} {
		req, _ := http.NewRequest("PUT", up.URL+"/maven/central/"+path, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s upstream: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	e := startWith(t, "feeds:\n  - name: mvnfeed\n    ecosystem: maven\n    kind: proxy\n    upstream: "+up.URL+"/maven/central/\n")
	dir := t.TempDir()
	writeFile(t, dir, "pom.xml", []byte(`<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>com.example</groupId><artifactId>parent</artifactId><version>[1.0,1.3)</version><relativePath/></parent>
  <artifactId>consumer</artifactId><version>1</version><packaging>pom</packaging>
  <build><extensions>
    <extension><groupId>com.example</groupId><artifactId>demo</artifactId><version>1.0</version></extension>
  </extensions></build>
</project>
`))
	resolve := func(what string) {
		t.Helper()
		settings := e.settings(e.reader)
		out, err := e.run(dir, settings, "validate")
		if err != nil {
			t.Fatalf("mvn validate through the proxy (%s): %v\n%s", what, err, out)
		}
		local := filepath.Join(filepath.Dir(settings), "repository", "com", "example")
		if b, err := os.ReadFile(filepath.Join(local, "demo", "1.0", "demo-1.0.jar")); err != nil || !bytes.Equal(b, demo) {
			t.Fatalf("resolved demo-1.0.jar (%s): %v, upstream's bytes: %v\n%s", what, err, bytes.Equal(b, demo), out)
		}
		if _, err := os.Stat(filepath.Join(local, "parent", "1.2", "parent-1.2.pom")); err != nil {
			t.Fatalf("the parent range did not resolve to 1.2 (%s): %v\n%s", what, err, out)
		}
	}
	resolve("upstream up")
	// The files are sealed in the proxy feed, with their source.
	code, body := e.call("GET", "/v2/mvnfeed/com/example/demo/tags/list", "admin", e.s.AdminPassword(), nil)
	if code != http.StatusOK || !strings.Contains(string(body), "demo-1.0.jar") {
		t.Fatalf("proxied files: %d %s", code, body)
	}
	up.Kill()
	resolve("upstream gone")
	// Deploying to a proxy feed is refused.
	if code, body := e.call("PUT", "/maven/mvnfeed/com/example/demo/2.0/demo-2.0.jar", "token", e.writer, demo); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT to the proxy: %d %s", code, body)
	}
}
