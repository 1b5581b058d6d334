package sbom

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// rootfsPURLs is every package in testdata/rootfs, as syft would name it.
var rootfsPURLs = []string{
	// var/lib/dpkg/status: 5 installed of 6 paragraphs (oldpkg is config-files only)
	"pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12",
	"pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12&upstream=glibc",
	"pkg:deb/debian/libssl3@3.0.13-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl",
	"pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12",
	"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib",
	// var/lib/dpkg/status.d (distroless)
	"pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12",
	// app/package-lock.json (root project and workspace link skipped)
	"pkg:npm/%40types/node@20.11.5",
	"pkg:npm/inner@0.1.0",
	"pkg:npm/left-pad@1.3.0",
	// app/requirements.txt (numpy>=1.26 is not a pin)
	"pkg:pypi/flask@3.0.2",
	"pkg:pypi/requests@2.31.0",
	"pkg:pypi/urllib3@2.2.1",
	// app/poetry.lock
	"pkg:pypi/certifi@2024.2.2",
	"pkg:pypi/idna@3.6",
	// app/Cargo.lock
	"pkg:cargo/itoa@1.0.10",
	"pkg:cargo/myapp@0.1.0",
	"pkg:cargo/serde@1.0.197",
	// app/go.mod + go.sum
	"pkg:golang/github.com/google/uuid@v1.6.0",
	"pkg:golang/golang.org/x/text@v0.14.0",
	// app/META-INF/maven/org.example/demo/pom.properties
	"pkg:maven/org.example/demo@1.2.3",
}

var alpinePURLs = []string{
	"pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1",
	"pkg:apk/alpine/ca-certificates-bundle@20240226-r0?arch=x86_64&distro=alpine-3.19.1&upstream=ca-certificates",
	"pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1",
	"pkg:apk/alpine/ssl_client@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1&upstream=busybox",
}

func purls(inv *Inventory) []string {
	var out []string
	for _, p := range inv.Packages {
		out = append(out, p.PURL)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func findPURL(t *testing.T, inv *Inventory, purl string) Package {
	t.Helper()
	for _, p := range inv.Packages {
		if p.PURL == purl {
			return p
		}
	}
	t.Fatalf("no package %s in %v", purl, purls(inv))
	return Package{}
}

func checkRootfs(t *testing.T, inv *Inventory) {
	t.Helper()
	if diff := cmp.Diff(sorted(rootfsPURLs), purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	if inv.OS == nil || inv.OS.ID != "debian" || inv.OS.VersionID != "12" || inv.OS.VersionCodename != "bookworm" {
		t.Errorf("OS = %+v, want debian 12 bookworm", inv.OS)
	}
	libc := findPURL(t, inv, "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12&upstream=glibc")
	if libc.Name != "libc6" || libc.Version != "2.36-9+deb12u7" || libc.Arch != "amd64" || libc.Upstream != "glibc" ||
		!cmp.Equal(libc.Locations, []string{"/var/lib/dpkg/status"}) {
		t.Errorf("libc6 = %+v", libc)
	}
	lp := findPURL(t, inv, "pkg:npm/left-pad@1.3.0")
	sum := sha512Hex("left-pad-1.3.0.tgz")
	if lp.Hashes[HashSHA512] != sum || !cmp.Equal(lp.Licenses, []string{"WTFPL"}) {
		t.Errorf("left-pad = %+v, want sha512 %s and license WTFPL", lp, sum)
	}
	uu := findPURL(t, inv, "pkg:golang/github.com/google/uuid@v1.6.0")
	if uu.Hashes[HashGoH1] != "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=" || !cmp.Equal(uu.Locations, []string{"/app/go.mod", "/app/go.sum"}) {
		t.Errorf("uuid = %+v", uu)
	}
	serde := findPURL(t, inv, "pkg:cargo/serde@1.0.197")
	if serde.Hashes[HashSHA256] != "3fb1c873e1b9b056a4dc4c0c198b24c3ffa059243875552b2bd0933b1aee4ce2" {
		t.Errorf("serde = %+v", serde)
	}
	if m := findPURL(t, inv, "pkg:maven/org.example/demo@1.2.3"); m.Name != "org.example:demo" {
		t.Errorf("maven = %+v", m)
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings: %v", inv.Warnings)
	}
}

func sha512Hex(s string) string {
	h := sha512.New()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFromDirectory(t *testing.T) {
	inv, err := FromFile(context.Background(), "testdata/rootfs", Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkRootfs(t, inv)
	if inv.Subject.Kind != KindDirectory || inv.Subject.Digest != "" || inv.Subject.Name != "rootfs" {
		t.Errorf("subject = %+v", inv.Subject)
	}
	// Every regular file is listed (default for directories), hashed.
	var want []string
	filepath.WalkDir("testdata/rootfs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel("testdata/rootfs", p)
			want = append(want, "/"+filepath.ToSlash(rel))
		}
		return err
	})
	var got []string
	for _, f := range inv.Files {
		got = append(got, f.Path)
	}
	if diff := cmp.Diff(sorted(want), got); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
	for _, f := range inv.Files {
		if f.Path == "/var/lib/dpkg/status" {
			if w := fileSHA256(t, "testdata/rootfs/var/lib/dpkg/status"); f.SHA256 != w || len(f.SHA1) != 40 {
				t.Errorf("status file = %+v, want sha256 %s", f, w)
			}
		}
	}
}

func TestFromAlpineDirectory(t *testing.T) {
	inv, err := FromFile(context.Background(), "testdata/alpine", Options{Files: FilesNone})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(alpinePURLs), purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	ca := findPURL(t, inv, alpinePURLs[1])
	if !cmp.Equal(ca.Licenses, []string{"MPL-2.0 AND MIT"}) || ca.Version != "20240226-r0" {
		t.Errorf("ca-certificates-bundle = %+v", ca)
	}
	if len(inv.Files) != 0 {
		t.Errorf("FilesNone listed %d files", len(inv.Files))
	}
}

// tarEntry is an extra entry for test tarballs.
type tarEntry struct {
	name    string
	body    string
	mode    int64
	symlink string
}

// makeTar writes the regular files under root (those keep reports true
// for) and extra entries to a tar.
func makeTar(t testing.TB, root string, keep func(rel string) bool, extra ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if root != "" {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if rel == "." || (keep != nil && !keep(rel)) {
				return nil
			}
			if d.IsDir() {
				return tw.WriteHeader(&tar.Header{Name: "./" + rel + "/", Typeflag: tar.TypeDir, Mode: 0o755})
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: "./" + rel, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		if e.symlink != "" {
			if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeSymlink, Linkname: e.symlink, Mode: 0o777}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeZip(t testing.TB, root string, extra ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if root != "" {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			w, err := zw.Create(filepath.ToSlash(rel))
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFromArchives(t *testing.T) {
	dir := t.TempDir()
	tarBytes := makeTar(t, "testdata/rootfs", nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBytes)
	zw.Close()
	files := map[string][]byte{
		"rootfs.tar":    tarBytes,
		"rootfs.tar.gz": gz.Bytes(),
		"rootfs.zip":    makeZip(t, "testdata/rootfs"),
		// The kind comes from the content, not the name.
		"misnamed.bin": gz.Bytes(),
	}
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			inv, err := FromFile(context.Background(), p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkRootfs(t, inv)
			sum := sha256.Sum256(b)
			if inv.Subject.Kind != KindArchive || inv.Subject.Digest != "sha256:"+hex.EncodeToString(sum[:]) || inv.Subject.Name != name {
				t.Errorf("subject = %+v", inv.Subject)
			}
			if len(inv.Files) != 11 {
				t.Errorf("%d files listed, want the 11 of testdata/rootfs", len(inv.Files))
			}
		})
	}
}

func TestFromFileRefusesUnknown(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(p, []byte("just text\n"), 0o644)
	_, err := FromFile(context.Background(), p, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a Go binary, .tar") {
		t.Fatalf("err = %v, want a not-recognised error", err)
	}
	if _, err := FromFile(context.Background(), filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
		t.Fatal("missing file: no error")
	}
}

var (
	goBinOnce sync.Once
	goBinPath string
	goBinErr  error
)

// buildGoBin builds testdata/gobin (inside this module, so its
// dependencies and their go.sum checksums are this module's) once.
func buildGoBin(t *testing.T) string {
	t.Helper()
	goBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sbom-gobin-")
		if err != nil {
			goBinErr = err
			return
		}
		goBinPath = filepath.Join(dir, "gobin")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-trimpath", "-o", goBinPath, "./testdata/gobin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			goBinErr = err
			goBinPath = string(out)
		}
	})
	if goBinErr != nil {
		t.Fatalf("go build ./testdata/gobin: %v\n%s", goBinErr, goBinPath)
	}
	return goBinPath
}

// goSumLine returns the h1 checksum go.sum records for mod@version.
func goSumLine(t *testing.T, mod, version string) string {
	t.Helper()
	f, err := os.Open("../../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) == 3 && fl[0] == mod && fl[1] == version {
			return fl[2]
		}
	}
	t.Fatalf("%s %s not in go.sum", mod, version)
	return ""
}

func goBinPURLs() []string {
	return []string{
		"pkg:golang/github.com/custody-dev/custody@%28devel%29",
		"pkg:golang/github.com/package-url/packageurl-go@v0.1.7",
		"pkg:golang/stdlib@" + strings.TrimPrefix(runtime.Version(), "go"),
	}
}

func TestFromGoBinary(t *testing.T) {
	bin := buildGoBin(t)
	inv, err := FromFile(context.Background(), bin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(goBinPURLs()), purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	main := findPURL(t, inv, goBinPURLs()[0])
	if !main.MainModule || main.Version != "(devel)" {
		t.Errorf("main module = %+v", main)
	}
	dep := findPURL(t, inv, goBinPURLs()[1])
	if want := goSumLine(t, "github.com/package-url/packageurl-go", "v0.1.7"); dep.Hashes[HashGoH1] != want {
		t.Errorf("dep h1 = %q, want %q from go.sum", dep.Hashes[HashGoH1], want)
	}
	std := findPURL(t, inv, goBinPURLs()[2])
	if std.Name != "stdlib" || std.Version != runtime.Version() {
		t.Errorf("stdlib = %+v", std)
	}
	if inv.Subject.Kind != KindBinary || inv.Subject.Digest != "sha256:"+fileSHA256(t, bin) {
		t.Errorf("subject = %+v", inv.Subject)
	}
	if len(inv.Files) != 1 || inv.Files[0].SHA256 != fileSHA256(t, bin) {
		t.Errorf("files = %+v", inv.Files)
	}
}

// TestFromTestBinary reads this test binary's own build information. The
// go command records no dependencies for test binaries, so only the main
// module and the standard library are expected.
func TestFromTestBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := FromFile(context.Background(), self, Options{Files: FilesNone})
	if err != nil {
		t.Fatal(err)
	}
	if p := findPURL(t, inv, "pkg:golang/github.com/custody-dev/custody@%28devel%29"); !p.MainModule {
		t.Errorf("main module = %+v", p)
	}
	findPURL(t, inv, "pkg:golang/stdlib@"+strings.TrimPrefix(runtime.Version(), "go"))
}

func layerOf(t *testing.T, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// debianImage builds a three-layer image in process:
//
//	layer 1: the OS part of testdata/rootfs, plus app/legacy (django), opt/x
//	         (attrs) and a status.d package that later layers remove;
//	layer 2: the lockfiles of testdata/rootfs/app, a whiteout of app/legacy
//	         and of the status.d package, an opaque opt/x with six, a Go
//	         binary and a jar;
//	layer 3: a symlink replacing srv/requirements.txt (pyyaml) from layer 1.
func debianImage(t *testing.T) (v1.Image, []string) {
	t.Helper()
	bin, err := os.ReadFile(buildGoBin(t))
	if err != nil {
		t.Fatal(err)
	}
	jar := makeZip(t, "", tarEntry{name: "META-INF/maven/org.example/jarred/pom.properties", body: "groupId=org.example\nartifactId=jarred\nversion=2.0.0\n"})
	l1 := makeTar(t, "testdata/rootfs", func(rel string) bool { return !strings.HasPrefix(rel, "app") },
		tarEntry{name: "app/legacy/requirements.txt", body: "django==4.2.11\n"},
		tarEntry{name: "opt/x/requirements.txt", body: "attrs==23.2.0\n"},
		tarEntry{name: "var/lib/dpkg/status.d/removed-pkg", body: "Package: removed-pkg\nVersion: 1.0\nArchitecture: amd64\n"},
		tarEntry{name: "srv/requirements.txt", body: "pyyaml==6.0.1\n"},
	)
	l2 := makeTar(t, "testdata/rootfs", func(rel string) bool { return rel == "app" || strings.HasPrefix(rel, "app/") },
		tarEntry{name: "app/.wh.legacy"},
		tarEntry{name: "var/lib/dpkg/status.d/.wh.removed-pkg"},
		tarEntry{name: "opt/x/.wh..wh..opq"},
		tarEntry{name: "opt/x/requirements.txt", body: "six==1.16.0\n"},
		tarEntry{name: "usr/local/bin/gobin", body: string(bin), mode: 0o755},
		tarEntry{name: "usr/share/java/jarred.jar", body: string(jar)},
	)
	l3 := makeTar(t, "", nil,
		// A symlink replacing a catalogued file removes what it contributed.
		tarEntry{name: "srv/requirements.txt", symlink: "/dev/null"},
	)
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, l1), layerOf(t, l2), layerOf(t, l3))
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]string(nil), rootfsPURLs...), goBinPURLs()...),
		"pkg:pypi/six@1.16.0",
		"pkg:maven/org.example/jarred@2.0.0",
	)
	return img, want
}

func TestFromImage(t *testing.T) {
	img, want := debianImage(t)
	dgst, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := FromImage(context.Background(), img, Subject{Name: "registry.example:5000/team/app:1.0"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(want), purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	if len(inv.Packages) != 25 {
		t.Errorf("%d packages, want 25", len(inv.Packages))
	}
	if inv.Subject.Digest != dgst.String() || inv.Subject.Kind != KindImage {
		t.Errorf("subject = %+v, want digest %s", inv.Subject, dgst)
	}
	if inv.OS == nil || inv.OS.ID != "debian" {
		t.Errorf("OS = %+v", inv.OS)
	}
	if p := findPURL(t, inv, "pkg:golang/github.com/package-url/packageurl-go@v0.1.7"); !cmp.Equal(p.Locations, []string{"/usr/local/bin/gobin"}) {
		t.Errorf("Go dep locations = %v", p.Locations)
	}
	if p := findPURL(t, inv, "pkg:pypi/six@1.16.0"); !cmp.Equal(p.Locations, []string{"/opt/x/requirements.txt"}) {
		t.Errorf("six locations = %v", p.Locations)
	}
	// Images list evidence files only by default: os-release, dpkg status
	// and status.d/libgcc-s1, the 7 app lockfiles, opt/x/requirements.txt,
	// the Go binary and the jar.
	var files []string
	for _, f := range inv.Files {
		files = append(files, f.Path)
	}
	wantFiles := []string{
		"/app/Cargo.lock", "/app/META-INF/maven/org.example/demo/pom.properties", "/app/go.mod", "/app/go.sum",
		"/app/package-lock.json", "/app/poetry.lock", "/app/requirements.txt", "/etc/os-release",
		"/opt/x/requirements.txt", "/usr/local/bin/gobin", "/usr/share/java/jarred.jar",
		"/var/lib/dpkg/status", "/var/lib/dpkg/status.d/libgcc-s1",
	}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	// FilesAll lists every regular file of the final filesystem.
	all, err := FromImage(context.Background(), img, Subject{Name: "app"}, Options{Files: FilesAll})
	if err != nil {
		t.Fatal(err)
	}
	// rootfs's 11, plus opt/x/requirements.txt, gobin and the jar; app/legacy,
	// removed-pkg, the attrs requirements and srv/requirements.txt are gone.
	if len(all.Files) != 11+3 {
		var got []string
		for _, f := range all.Files {
			got = append(got, f.Path)
		}
		t.Errorf("FilesAll listed %d files: %v", len(all.Files), got)
	}

	// Encoded both ways, deterministically, and accepted by Validate as
	// describing this image.
	for _, f := range []Format{FormatSPDXJSON, FormatCycloneDXJSON} {
		var a, b bytes.Buffer
		opts := EncodeOptions{Created: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC), ToolVersion: "test"}
		if err := inv.Encode(&a, f, opts); err != nil {
			t.Fatal(err)
		}
		if err := inv.Encode(&b, f, opts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: two encodings differ", f)
		}
		doc, err := Validate(bytes.NewReader(a.Bytes()), 16<<20)
		if err != nil {
			t.Fatalf("%s: Validate: %v", f, err)
		}
		if doc.Format != f || doc.PredicateType() != f.PredicateType() {
			t.Errorf("doc format = %s, want %s", doc.Format, f)
		}
		if !doc.DescribesDigest(dgst.String()) || !doc.DescribesDigest("sha256:"+strings.ToUpper(dgst.Hex)) {
			t.Errorf("%s: does not describe %s; subjects %v", f, dgst, doc.Subjects)
		}
		if doc.DescribesDigest("sha256:" + strings.Repeat("0", 64)) {
			t.Errorf("%s: describes an unrelated digest", f)
		}
		wantPkgs := 1 + 1 + 25 // root, OS, packages
		if f == FormatCycloneDXJSON {
			wantPkgs = 1 + 25 + len(wantFiles) // OS, packages, files
		}
		if doc.Packages != wantPkgs {
			t.Errorf("%s: %d packages in document, want %d", f, doc.Packages, wantPkgs)
		}
		for _, s := range []string{"pkg:pypi/six@1.16.0", "2026-11-22T06:00:00Z", "custody"} {
			if !bytes.Contains(a.Bytes(), []byte(s)) {
				t.Errorf("%s: output lacks %q", f, s)
			}
		}
	}
}

func TestFromAlpineImage(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, makeTar(t, "testdata/alpine", nil)))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := FromImage(context.Background(), img, Subject{Name: "alpine:3.19", Digest: "sha256:" + strings.Repeat("ab", 32)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(alpinePURLs), purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	if inv.Subject.Digest != "sha256:"+strings.Repeat("ab", 32) {
		t.Errorf("given digest not kept: %+v", inv.Subject)
	}
}

func TestFromImageLimits(t *testing.T) {
	big := "requests==2.31.0\n" + strings.Repeat("# padding\n", 200)
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, makeTar(t, "", nil,
		tarEntry{name: "app/requirements.txt", body: big},
		tarEntry{name: "b", body: "x"}, tarEntry{name: "c", body: "x"},
	)))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := FromImage(context.Background(), img, Subject{Name: "x"}, Options{MaxManifestBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 0 || len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "MaxManifestBytes") {
		t.Errorf("oversized lockfile: packages %v warnings %v", inv.Packages, inv.Warnings)
	}
	if _, err := FromImage(context.Background(), img, Subject{Name: "x"}, Options{MaxEntries: 2}); err == nil || !strings.Contains(err.Error(), "MaxEntries") {
		t.Errorf("MaxEntries: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FromImage(ctx, img, Subject{Name: "x"}, Options{}); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestEncodeUnknownFormat(t *testing.T) {
	inv := &Inventory{Subject: Subject{Name: "x"}}
	if err := inv.Encode(io.Discard, "spdx-tag-value", EncodeOptions{}); err == nil {
		t.Fatal("no error for an unknown format")
	}
}

func TestFromDirectoryWithGoBinary(t *testing.T) {
	b, err := os.ReadFile(buildGoBin(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "bin", "gobin"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	// The same bytes without the executable bit are not inspected.
	if err := os.WriteFile(filepath.Join(dir, "gobin.copy"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := FromFile(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(goBinPURLs()), purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	for _, p := range inv.Packages {
		if !cmp.Equal(p.Locations, []string{"/bin/gobin"}) {
			t.Errorf("%s locations = %v", p.PURL, p.Locations)
		}
	}
}

func TestSystemPackagePURLs(t *testing.T) {
	cases := []struct {
		os   *OS
		p    Package
		want string
	}{
		{&OS{ID: "ubuntu", VersionID: "22.04", IDLike: []string{"debian"}}, Package{Name: "bash", Version: "5.1-6ubuntu1", Type: TypeDeb, Arch: "amd64"},
			"pkg:deb/ubuntu/bash@5.1-6ubuntu1?arch=amd64&distro=ubuntu-22.04"},
		{&OS{ID: "linuxmint", VersionID: "21", IDLike: []string{"ubuntu", "debian"}}, Package{Name: "bash", Version: "5.1", Type: TypeDeb},
			"pkg:deb/debian/bash@5.1?distro=linuxmint-21"},
		{&OS{ID: "wolfi"}, Package{Name: "glibc", Version: "2.39-r1", Type: TypeApk, Arch: "x86_64"},
			"pkg:apk/wolfi/glibc@2.39-r1?arch=x86_64&distro=wolfi"},
		{nil, Package{Name: "musl", Version: "1.2.4-r2", Type: TypeApk}, "pkg:apk/alpine/musl@1.2.4-r2"},
	}
	for _, c := range cases {
		ps := []Package{c.p}
		finishSystemPackages(ps, c.os)
		if ps[0].PURL != c.want {
			t.Errorf("%s on %+v: purl %s, want %s", c.p.Name, c.os, ps[0].PURL, c.want)
		}
	}
}

// TestInstalledPackages covers packages installed rather than locked:
// Python dist-info/egg-info metadata, node_modules package.json files, and
// Debian licenses from usr/share/doc/<pkg>/copyright.
func TestInstalledPackages(t *testing.T) {
	inv, err := FromFile(context.Background(), "testdata/installed", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64",
		"pkg:deb/debian/coreutils@9.1-1?arch=amd64",
		"pkg:npm/%40scope/pkg@2.0.0",
		"pkg:npm/left-pad@1.3.0",
		"pkg:pypi/pyyaml@6.0.1",
		"pkg:pypi/six@1.16.0",
	}
	if diff := cmp.Diff(want, purls(inv)); diff != "" {
		t.Fatalf("packages (-want +got):\n%s", diff)
	}
	licenses := map[string][]string{}
	for _, p := range inv.Packages {
		licenses[p.Name] = p.Licenses
	}
	wantLic := map[string][]string{
		"bash":       {"BSD-2-clause", "GPL-3+"},
		"coreutils":  nil,
		"@scope/pkg": {"ISC"},
		"left-pad":   {"WTFPL"},
		"PyYAML":     {"MIT"},
		"six":        {"MIT"},
	}
	if diff := cmp.Diff(wantLic, licenses); diff != "" {
		t.Errorf("licenses (-want +got):\n%s", diff)
	}
	// "GPL-3+" is not an SPDX identifier: SPDX output must not claim it.
	var buf bytes.Buffer
	if err := inv.Encode(&buf, FormatSPDXJSON, EncodeOptions{Created: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(`"licenseDeclared": "GPL-3+`)) || !bytes.Contains(buf.Bytes(), []byte(`"licenseDeclared": "WTFPL"`)) {
		t.Errorf("SPDX licenseDeclared values wrong:\n%s", buf.String())
	}
}

// TestHostDpkgDatabase compares the dpkg cataloguer with dpkg itself on
// this machine's real database, when there is one.
func TestHostDpkgDatabase(t *testing.T) {
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Skip("no /var/lib/dpkg/status on this host")
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${binary:Package}\n").Output()
	if err != nil {
		t.Skipf("dpkg-query: %v", err)
	}
	installed := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ii") {
			installed++
		}
	}
	pkgs, err := parseDpkgStatus(status, "/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != installed {
		t.Fatalf("parsed %d installed packages, dpkg-query says %d", len(pkgs), installed)
	}
	t.Logf("host dpkg database: %d installed packages, matching dpkg-query", installed)
}

// rawTarHeader builds one ustar header block.
func rawTarHeader(name string, typ byte, size int64, mode int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], fmt.Sprintf("%07o\x00", mode))
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// TestSparseTarNotRead: a GNU sparse (PAX 1.0) entry whose map puts one
// byte at offset 1 TiB is skipped, not hashed through a terabyte of zeros
// the archive does not contain.
func TestSparseTarNotRead(t *testing.T) {
	const real = int64(1) << 40
	var recs string
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "usr/bin/huge"}, {"GNU.sparse.realsize", fmt.Sprint(real)}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		recs += fmt.Sprint(n) + rec
	}
	sparseMap := padBlock([]byte(fmt.Sprintf("1\n%d\n1\n", real-1)))
	data := append(sparseMap, padBlock([]byte("x"))...)
	var tarball []byte
	tarball = append(tarball, rawTarHeader("PaxHeaders/huge", 'x', int64(len(recs)), 0o644)...)
	tarball = append(tarball, padBlock([]byte(recs))...)
	tarball = append(tarball, rawTarHeader("GNUSparseFile.0/huge", '0', int64(len(sparseMap)+1), 0o755)...)
	tarball = append(tarball, data...)
	tarball = append(tarball, make([]byte, 1024)...)

	// Check the archive is what it claims: Go's reader sees a 1 TiB file.
	tr := tar.NewReader(bytes.NewReader(tarball))
	hdr, err := tr.Next()
	if err != nil || hdr.Size != real {
		t.Fatalf("crafted sparse tar: hdr %+v err %v", hdr, err)
	}

	p := filepath.Join(t.TempDir(), "sparse.tar")
	os.WriteFile(p, tarball, 0o644)
	done := make(chan struct{})
	var inv *Inventory
	go func() { inv, err = FromFile(context.Background(), p, Options{}); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("FromFile still reading a sparse entry after 20s")
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Files) != 0 || len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "sparse") {
		t.Errorf("files %+v warnings %v", inv.Files, inv.Warnings)
	}
}
