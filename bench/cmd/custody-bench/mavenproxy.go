package main

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/config"
)

// mavenProxyRows compare a Maven resolution through a proxy feed with the
// same resolution straight from its upstream (a custody hosted feed on the
// same machine), as the npm-proxy-* rows do for npm: the custody column
// resolves through the proxy, the reference column from the upstream.
// maven-proxy-warm has every file stored in the proxy already (one
// resolution before the measured one); maven-proxy-cold starts from an
// empty proxy, so every pom and jar is fetched, checked against
// upstream's .sha1 and sealed on the way.
var mavenProxyRows = []string{"maven-proxy-warm", "maven-proxy-cold"}

// mavenTreeArtifacts is how many artifacts the resolved dependency tree has.
const mavenTreeArtifacts = 200

// mavenDebianRepo is Debian's Maven repository (package maven-repo,
// installed with maven): plexus-utils comes from it, so mvn resolves
// nothing from Maven Central.
const mavenDebianRepo = "/usr/share/maven-repo"

// mavenTreeGroup is the tree's groupId, as a path.
const mavenTreeGroup = "com/example/bench"

// mavenTreeName is the i-th artifact of the tree; artifact i depends on
// artifacts 2i+1 and 2i+2 (a binary tree), so resolving artifact 0
// resolves all of them.
func mavenTreeName(i int) string { return fmt.Sprintf("bench-art-%03d", i) }

// mavenTreePOM is artifact i's POM. The root also depends on Debian's
// plexus-utils: Maven adds plexus-utils 1.1 (from Maven Central) to a
// build extension's class path that has none.
func mavenTreePOM(i int) []byte {
	var deps strings.Builder
	for _, c := range []int{2*i + 1, 2*i + 2} {
		if c < mavenTreeArtifacts {
			deps.WriteString("<dependency><groupId>com.example.bench</groupId><artifactId>" + mavenTreeName(c) + "</artifactId><version>1.0</version></dependency>")
		}
	}
	if i == 0 {
		deps.WriteString("<dependency><groupId>org.codehaus.plexus</groupId><artifactId>plexus-utils</artifactId><version>debian</version></dependency>")
	}
	return []byte(`<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>com.example.bench</groupId><artifactId>` + mavenTreeName(i) + `</artifactId><version>1.0</version><packaging>jar</packaging>
  <dependencies>` + deps.String() + `</dependencies>
</project>
`)
}

// mavenTreeJar is artifact i's jar: a manifest and one small resource.
func mavenTreeJar(i int) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range [][2]string{{"META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n"},
		{"bench/value.txt", fmt.Sprint(i) + "\n" + strings.Repeat("padding\n", 100)}} {
		w, _ := zw.Create(f[0])
		_, _ = w.Write([]byte(f[1]))
	}
	_ = zw.Close()
	return buf.Bytes()
}

// deployMavenTree deploys the tree's poms and jars to the hosted feed at
// repo (ending in /) with plain PUTs, as a deploy does.
func deployMavenTree(ctx context.Context, repo string) error {
	for i := range mavenTreeArtifacts {
		name := mavenTreeName(i)
		base := repo + mavenTreeGroup + "/" + name + "/1.0/" + name + "-1.0"
		for _, f := range []struct {
			ext  string
			body []byte
		}{{"jar", mavenTreeJar(i)}, {"pom", mavenTreePOM(i)}} {
			if err := send(ctx, http.MethodPut, base+"."+f.ext, f.body, http.StatusCreated, "deploy "+name+"."+f.ext, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// mvnResolve resolves the tree with the real mvn from repo: a project
// naming the tree's root as a build extension, which mvn validate
// resolves with its whole dependency tree (no plugin runs, so none is
// needed beyond what Debian ships). The local repository is empty, every
// repository but Debian's is mirrored to repo, so each pom and jar is
// fetched; it returns the seconds mvn took.
func mvnResolve(ctx context.Context, mvn, dir, repo string) (float64, error) {
	app := filepath.Join(dir, fmt.Sprintf("app-%d", time.Now().UnixNano()))
	local := app + "-repository"
	if err := os.MkdirAll(app, 0o755); err != nil {
		return 0, err
	}
	files := map[string]string{
		"pom.xml": `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId><artifactId>bench-app</artifactId><version>1</version><packaging>pom</packaging>
  <build><extensions><extension><groupId>com.example.bench</groupId><artifactId>` + mavenTreeName(0) + `</artifactId><version>1.0</version></extension></extensions></build>
</project>
`,
		"settings.xml": `<settings>
  <mirrors><mirror><id>custody</id><mirrorOf>*,!debian</mirrorOf><url>` + repo + `</url></mirror></mirrors>
  <profiles><profile><id>debian</id>
    <pluginRepositories><pluginRepository><id>debian</id><url>file://` + mavenDebianRepo + `</url>
      <releases><checksumPolicy>ignore</checksumPolicy></releases></pluginRepository></pluginRepositories>
  </profile></profiles>
  <activeProfiles><activeProfile>debian</activeProfile></activeProfiles>
</settings>
`,
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(app, n), []byte(c), 0o644); err != nil {
			return 0, err
		}
	}
	cmd := exec.CommandContext(ctx, mvn, "-B", "-s", filepath.Join(app, "settings.xml"), "-Dmaven.repo.local="+local, "validate")
	cmd.Dir = app
	cmd.Env = append(os.Environ(), "HOME="+app, "MAVEN_OPTS=-Xmx256m -XX:TieredStopAtLevel=1", "NO_PROXY=127.0.0.1,localhost")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	secs := time.Since(start).Seconds()
	if err != nil {
		return 0, fmt.Errorf("mvn validate: %w\n%s", err, out)
	}
	n := 0
	err = filepath.WalkDir(filepath.Join(local, filepath.FromSlash(mavenTreeGroup)), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".jar") {
			n++
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	if n != mavenTreeArtifacts {
		return 0, fmt.Errorf("mvn resolved %d of %d jars\n%s", n, mavenTreeArtifacts, out)
	}
	return secs, nil
}

// measureMavenProxy runs one maven-proxy-* row once: the custody target
// resolves through a proxy feed (warmed first by one resolution for the
// warm row), the reference target straight from the upstream hosted feed.
func (h *harness) measureMavenProxy(row, target string) (sample, error) {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return sample{}, fmt.Errorf("the %s row runs mvn: %w", row, err)
	}
	if _, err := os.Stat(filepath.Join(mavenDebianRepo, "org/codehaus/plexus/plexus-utils/debian")); err != nil {
		return sample{}, fmt.Errorf("the %s row takes plexus-utils from Debian's Maven repository: %w", row, err)
	}
	return h.measureProxy(row, target, proxyRows{ecosystem: config.FeedEcosystemMaven, mount: "/maven/", name: "mvn", warm: "maven-proxy-warm",
		fill:    deployMavenTree,
		install: func(ctx context.Context, dir, repo string) (float64, error) { return mvnResolve(ctx, mvn, dir, repo) },
		items:   mavenTreeArtifacts, unit: "artifacts/s"})
}
