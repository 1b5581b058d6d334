package feed_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/blob"
	"github.com/custody-dev/custody/internal/feed"
	"github.com/custody-dev/custody/internal/meta"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// recorder keeps the audit events.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) actions() string {
	var out []string
	for _, e := range r.events {
		out = append(out, e.Action+":"+e.Result)
	}
	return strings.Join(out, " ")
}

// denyTags refuses every tag whose name contains "denied".
type denyTags struct{ registry.AllowAll }

func (denyTags) CheckTag(_ context.Context, _, tag string, _, _ digest.Digest) error {
	if strings.Contains(tag, "denied") {
		return fmt.Errorf("%w: tag %s", registry.ErrDenied, tag)
	}
	return nil
}

func newStore(t *testing.T) (*feed.Store, meta.Store, *recorder) {
	t.Helper()
	blobs, md := storetest.Embedded(t)
	rec := &recorder{}
	return feed.NewStore(blobs, md, registry.Options{Auditor: rec, Policy: denyTags{}}), md, rec
}

// put stores content as a one-file version of repo.
func put(t *testing.T, s *feed.Store, repo, tag, name string, content []byte) (digest.Digest, error) {
	t.Helper()
	ctx := context.Background()
	h := sha512.New()
	b, unlock, err := s.PutBlob(ctx, bytes.NewReader(content), int64(len(content)), "", h)
	defer unlock()
	if err != nil {
		t.Fatal(err)
	}
	return s.Seal(ctx, httptest.NewRequest("PUT", "/", nil), feed.Spec{
		Repo: repo, Tag: tag, ArtifactType: feed.ArtifactType("test"),
		Config: &feed.Config{MediaType: "application/vnd.test+json", Data: []byte(`{"v":"` + tag + `"}`)},
		Files: []feed.File{{Name: name, MediaType: "application/octet-stream", Digest: b.Digest, Size: b.Size,
			Annotations: map[string]string{feed.AnnotationSHA512: hex.EncodeToString(h.Sum(nil))}}},
		Annotations: map[string]string{feed.AnnotationVersion: tag},
	})
}

func TestStoreSealReadList(t *testing.T) {
	ctx := context.Background()
	s, md, rec := newStore(t)
	content := []byte("package bytes")
	d, err := put(t, s, "f/pkg", "1.0.0", "pkg-1.0.0.tgz", content)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.actions(); got != "manifest.put:ok tag.set:ok" {
		t.Errorf("audit = %s", got)
	}
	v, err := s.Version(ctx, "f/pkg", "1.0.0")
	if err != nil || v.Manifest.Digest != d || v.Manifest.ArtifactType != "application/vnd.custody.feed.test.v1" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	f, ok := v.File("pkg-1.0.0.tgz")
	sum := sha512.Sum512(content)
	if !ok || f.Size != int64(len(content)) || f.Digest != digest.FromBytes(content) || f.Annotations[feed.AnnotationSHA512] != hex.EncodeToString(sum[:]) {
		t.Fatalf("file = %+v", f)
	}
	cfg, err := s.ReadConfig(ctx, v)
	if err != nil || string(cfg) != `{"v":"1.0.0"}` {
		t.Errorf("config = %s, %v", cfg, err)
	}
	rc, err := s.Open(ctx, "f/pkg", f.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Errorf("content = %q", got)
	}
	// The file is not reachable through another repository.
	if _, err := s.Open(ctx, "f/other", f.Digest); !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("Open from another repository: %v", err)
	}

	// Sealed: another manifest under the same tag is refused, nothing changes.
	n := len(rec.events)
	_, err = put(t, s, "f/pkg", "1.0.0", "pkg-1.0.0.tgz", []byte("other bytes"))
	var exists *feed.ExistsError
	if !errors.As(err, &exists) || exists.Current != d {
		t.Fatalf("second seal: %v", err)
	}
	if cur, _ := md.ResolveTag(ctx, "f/pkg", "1.0.0"); cur != d || len(rec.events) != n {
		t.Errorf("the tag moved (%s) or something was recorded: %s", cur, rec.actions())
	}
	// A refused tag leaves no repository behind.
	if _, err := put(t, s, "f/refused", "denied", "x", []byte("x")); !errors.Is(err, registry.ErrDenied) {
		t.Fatalf("denied tag: %v", err)
	}
	if _, err := md.Tags(ctx, "f/refused", "", 10); !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("a refused version left its repository: %v", err)
	}
	if got := rec.events[len(rec.events)-1]; got.Action != "tag.move" || got.Result != "denied" {
		t.Errorf("refusal audited as %+v", got)
	}

	if _, err := put(t, s, "f/pkg2", "0.1.0", "a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	names, err := s.Repositories(ctx, "f")
	if err != nil || strings.Join(names, ",") != "pkg,pkg2" {
		t.Errorf("Repositories = %v, %v", names, err)
	}
	tagged, err := s.Tagged(ctx, "f/pkg")
	if err != nil || len(tagged) != 1 || tagged[0].Tag != "1.0.0" || tagged[0].Manifest.Digest != d {
		t.Errorf("Tagged = %+v, %v", tagged, err)
	}
}

func TestPutBlobChecksum(t *testing.T) {
	ctx := context.Background()
	s, md, _ := newStore(t)
	content := []byte("abc")
	_, unlock, err := s.PutBlob(ctx, bytes.NewReader(content), 3, digest.FromString("not abc"))
	unlock()
	if !errors.Is(err, feed.ErrChecksum) {
		t.Fatalf("PutBlob with a wrong digest: %v", err)
	}
	if ok, _ := md.BlobLinked(ctx, digest.FromBytes(content)); ok {
		t.Error("a refused blob is linked")
	}
}

// TestStageBlob: staged content is no blob until Commit; Abort leaves
// neither a blob nor an upload session, and a stream that fails while it
// is staged leaves nothing either.
func TestStageBlob(t *testing.T) {
	ctx := context.Background()
	blobs, md := storetest.Embedded(t)
	s := feed.NewStore(blobs, md, registry.Options{})
	content := []byte("staged bytes")
	left := func() (n int) {
		_ = blobs.Walk(ctx, func(digest.Digest, int64) error { n++; return nil })
		_ = blobs.Uploads(ctx, func(string, time.Time) error { n++; return nil })
		return n
	}
	st, err := s.StageBlob(ctx, bytes.NewReader(content), -1)
	if err != nil || st.Digest != digest.FromBytes(content) || st.Size != int64(len(content)) {
		t.Fatalf("StageBlob = %+v, %v", st, err)
	}
	if _, err := blobs.Stat(ctx, st.Digest); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("staged content is a blob before Commit: %v", err)
	}
	st.Abort(ctx)
	if n := left(); n != 0 {
		t.Errorf("%d blobs and uploads left after Abort", n)
	}
	if _, err := s.StageBlob(ctx, io.MultiReader(bytes.NewReader(content), iotest.ErrReader(errors.New("broken"))), -1); err == nil {
		t.Error("a failing stream was staged")
	}
	if n := left(); n != 0 {
		t.Errorf("%d blobs and uploads left after a failed stage", n)
	}
	st, err = s.StageBlob(ctx, bytes.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	b, unlock, err := st.Commit(ctx)
	unlock()
	st.Abort(ctx) // a no-op once committed
	if err != nil || b.Digest != digest.FromBytes(content) {
		t.Fatalf("Commit = %+v, %v", b, err)
	}
	if n, err := blobs.Stat(ctx, b.Digest); err != nil || n != int64(len(content)) {
		t.Errorf("committed blob: %d, %v", n, err)
	}
}

func TestLabels(t *testing.T) {
	ctx := context.Background()
	s, md, rec := newStore(t)
	r := httptest.NewRequest("PUT", "/", nil)
	d1, err := put(t, s, "f/pkg", "1.0.0", "a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := put(t, s, "f/pkg", "2.0.0", "a", []byte("2"))
	if err != nil {
		t.Fatal(err)
	}
	labels := func() map[string]digest.Digest {
		t.Helper()
		tags, err := s.Tags(ctx, "f/pkg")
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.Labels(ctx, "f/pkg", tags)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if err := s.SetLabel(ctx, r, "f/pkg", "latest", d1); err != nil {
		t.Fatal(err)
	}
	// Moving a label creates a tag; no tag ever moves.
	if err := s.SetLabel(ctx, r, "f/pkg", "latest", d2); err != nil {
		t.Fatal(err)
	}
	if l := labels(); l["latest"] != d2 || len(l) != 1 {
		t.Errorf("labels = %v", l)
	}
	if first, _ := md.ResolveTag(ctx, "f/pkg", "__latest.0000000001"); first != d1 {
		t.Errorf("the first log entry moved: %s", first)
	}
	// Setting it again to the same version appends nothing.
	n := len(rec.events)
	if err := s.SetLabel(ctx, r, "f/pkg", "latest", d2); err != nil || len(rec.events) != n {
		t.Errorf("idempotent SetLabel: %v, %s", err, rec.actions())
	}
	removed, err := s.RemoveLabel(ctx, r, "f/pkg", "latest")
	if err != nil || !removed {
		t.Fatalf("RemoveLabel: %v %v", removed, err)
	}
	if l := labels(); len(l) != 0 {
		t.Errorf("labels after removal = %v", l)
	}
	if removed, err := s.RemoveLabel(ctx, r, "f/pkg", "latest"); err != nil || removed {
		t.Errorf("removing a removed label: %v %v", removed, err)
	}
	if err := s.SetLabel(ctx, r, "f/pkg", "bad_label", d1); err == nil {
		t.Error("an invalid label was accepted")
	}
	// Labels are never versions.
	for _, tag := range []string{"__latest.0000000001", "__latest.0000000003"} {
		if v, ok := feed.TagVersion(tag); ok {
			t.Errorf("label tag %s reads as version %q", tag, v)
		}
		if !feed.IsLabelTag(tag) {
			t.Errorf("IsLabelTag(%s) = false", tag)
		}
	}
}

func TestRepositoryMapping(t *testing.T) {
	good := []struct {
		segs []string
		want string
	}{
		{[]string{"left-pad"}, "npm/left-pad"},
		{[]string{"acme", "util"}, "npm/acme/util"},
		{[]string{"a.b_c--d"}, "npm/a.b_c--d"},
	}
	for _, c := range good {
		got, err := feed.Repository("npm", c.segs...)
		if err != nil || got != c.want {
			t.Errorf("Repository(%v) = %q, %v", c.segs, got, err)
		}
		back, ok := feed.Segments("npm", got)
		if !ok || strings.Join(back, "/") != strings.Join(c.segs, "/") {
			t.Errorf("Segments(%q) = %v", got, back)
		}
	}
	for _, segs := range [][]string{{".."}, {"a/b"}, {""}, {"A"}, {"a", ".."}, {"%2e"}, {"a..b"}, {"-a"}, {"a~b"}, {strings.Repeat("a", 300)}} {
		if got, err := feed.Repository("npm", segs...); err == nil {
			t.Errorf("Repository(%q) = %q, want an error", segs, got)
		}
	}
	if _, err := feed.Repository("../x", "a"); err == nil {
		t.Error("an invalid feed name was accepted")
	}
}

func TestVersionTag(t *testing.T) {
	cases := map[string]string{
		"1.0.0":          "1.0.0",
		"1.0.0-beta.1":   "1.0.0-beta.1",
		"1.0.0+build.5":  "1.0.0_2bbuild.5",
		"2!1.0":          "2_211.0",
		"1_0":            "1_5f0",
		".hidden":        "_2ehidden",
		"-x":             "_2dx",
		"1.0-SNAPSHOT":   "1.0-SNAPSHOT",
		"v0.0.0-2024abc": "v0.0.0-2024abc",
	}
	for v, want := range cases {
		got, err := feed.VersionTag(v)
		if err != nil || got != want {
			t.Errorf("VersionTag(%q) = %q, %v; want %q", v, got, err, want)
		}
		if back, ok := feed.TagVersion(got); !ok || back != v {
			t.Errorf("TagVersion(%q) = %q, %v", got, back, ok)
		}
	}
	for _, v := range []string{"", strings.Repeat("1", 129)} {
		if _, err := feed.VersionTag(v); err == nil {
			t.Errorf("VersionTag(%q) succeeded", v)
		}
	}
	// Non-canonical escapes do not reverse.
	for _, tag := range []string{"_41", "1_", "1_4", "1_zz", "__latest"} {
		if v, ok := feed.TagVersion(tag); ok {
			t.Errorf("TagVersion(%q) = %q", tag, v)
		}
	}
}

// FuzzVersionTag: every tag VersionTag returns is a valid OCI tag that
// TagVersion reverses, is never a label, and distinct versions never
// share a tag (reversibility implies it).
func FuzzVersionTag(f *testing.F) {
	for _, s := range []string{"1.0.0", "1.0.0+b", "_", "..", "-1", "__latest.0000000001", "1.0.0-rc.1", "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tag, err := feed.VersionTag(v)
		if err != nil {
			return
		}
		if !registry.ValidTag(tag) {
			t.Fatalf("VersionTag(%q) = %q, not a valid tag", v, tag)
		}
		back, ok := feed.TagVersion(tag)
		if !ok || back != v {
			t.Fatalf("TagVersion(VersionTag(%q)) = %q, %v", v, back, ok)
		}
		if feed.IsLabelTag(tag) || strings.HasPrefix(tag, "__") {
			t.Fatalf("version %q maps to label-like tag %q", v, tag)
		}
	})
}

// FuzzTagVersion: whatever a tag reads as maps back to the same tag.
func FuzzTagVersion(f *testing.F) {
	for _, s := range []string{"1.0.0", "1_2bb", "_2e", "__x.0000000001", "1_5F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		v, ok := feed.TagVersion(tag)
		if !ok {
			return
		}
		if back, err := feed.VersionTag(v); err != nil || back != tag {
			t.Fatalf("VersionTag(TagVersion(%q)) = %q, %v", tag, back, err)
		}
	})
}

// FuzzRepository: a package path maps into its feed, onto a valid
// repository name, and back to the same segments; nothing escapes.
func FuzzRepository(f *testing.F) {
	for _, s := range []string{"left-pad", "acme/util", "../etc", "a//b", "A", "a.b", "x/y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		segs := strings.Split(path, "/")
		repo, err := feed.Repository("feed", segs...)
		if err != nil {
			return
		}
		if !registry.ValidName(repo) || !strings.HasPrefix(repo, "feed/") || strings.Contains(repo, "..") {
			t.Fatalf("Repository(%q) = %q", path, repo)
		}
		back, ok := feed.Segments("feed", repo)
		if !ok || strings.Join(back, "/") != path {
			t.Fatalf("Segments(%q) = %v, want %q", repo, back, path)
		}
	})
}

// TestLabelsConcurrent: writers setting one label at once each append
// their own entry (a taken sequence number makes a writer take the next),
// and no entry is overwritten.
func TestLabelsConcurrent(t *testing.T) {
	ctx := context.Background()
	s, md, _ := newStore(t)
	const n = 6
	var ds []digest.Digest
	for i := range n {
		d, err := put(t, s, "f/pkg", fmt.Sprintf("1.0.%d", i), "a", []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.SetLabel(ctx, httptest.NewRequest("PUT", "/", nil), "f/pkg", "latest", ds[i]) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("SetLabel: %v", err)
		}
	}
	seen := map[digest.Digest]bool{}
	for i := 1; i <= n; i++ {
		d, err := md.ResolveTag(ctx, "f/pkg", fmt.Sprintf("__latest.%010d", i))
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		seen[d] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct entries for %d writers: one overwrote another", len(seen), n)
	}
}

func TestEntryEscapes(t *testing.T) {
	for name, want := range map[string]bool{
		"package/a.js": false, "./a": false, "a": false, "a/../b": true,
		"": true, "/etc/passwd": true, "..": true, "../a": true, "a/../../b": true, "a\\..\\b": true, "a\x00": true,
	} {
		if got := feed.EntryEscapes(name); got != want {
			t.Errorf("EntryEscapes(%q) = %v, want %v", name, got, want)
		}
	}
	for _, c := range []struct {
		name, target  string
		symlink, want bool
	}{
		{"pkg/a", "b", true, false}, {"pkg/a", "../b", true, true}, {"pkg/a", "../../b", true, true}, {"pkg/a", "", true, true},
		{"pkg/a", "/etc/passwd", true, true}, {"pkg/a", "pkg/b", false, false}, {"pkg/a", "../b", false, true},
	} {
		if got := feed.LinkEscapes(c.name, c.target, c.symlink); got != c.want {
			t.Errorf("LinkEscapes(%q, %q, %v) = %v, want %v", c.name, c.target, c.symlink, got, c.want)
		}
	}
}

// TestLabelLogFull: a label log entry with the highest sequence (a writer
// can push any tag over /v2/) leaves no next entry to append. Setting or
// removing the label is then refused with a clear error, never reported
// as done while the label stays where it was, and nothing is tagged.
func TestLabelLogFull(t *testing.T) {
	ctx := context.Background()
	s, md, rec := newStore(t)
	r := httptest.NewRequest("PUT", "/", nil)
	d1, err := put(t, s, "f/pkg", "1.0.0", "a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := put(t, s, "f/pkg", "2.0.0", "a", []byte("2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, r, "f/pkg", "__latest.9999999999", d1); err != nil {
		t.Fatal(err)
	}
	before, err := s.Tags(ctx, "f/pkg")
	if err != nil {
		t.Fatal(err)
	}
	n := len(rec.events)
	if err := s.SetLabel(ctx, r, "f/pkg", "latest", d2); err == nil || !errors.Is(err, registry.ErrDenied) {
		t.Errorf("SetLabel on a full log: %v, want a refusal", err)
	}
	if removed, err := s.RemoveLabel(ctx, r, "f/pkg", "latest"); err == nil || !errors.Is(err, registry.ErrDenied) {
		t.Errorf("RemoveLabel on a full log: %v %v, want a refusal", removed, err)
	}
	after, err := s.Tags(ctx, "f/pkg")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("refused label changes tagged: %v -> %v", before, after)
	}
	// Each refusal is audited, as a refusal.
	if got := rec.events[n:]; len(got) != 2 || got[0].Result != "denied" || got[1].Result != "denied" {
		t.Errorf("audit after the refusals: %s", rec.actions())
	}
	if l, err := s.Labels(ctx, "f/pkg", after); err != nil || l["latest"] != d1 {
		t.Errorf("labels = %v, %v", l, err)
	}
	if d, err := md.ResolveTag(ctx, "f/pkg", "__latest.9999999999"); err != nil || d != d1 {
		t.Errorf("the last entry moved: %s %v", d, err)
	}
}

// TestVersionAtDamagedManifest: the manifest is where a version's files
// and their recorded hashes come from (npm's dist.integrity, the tarball's
// digest), so a manifest whose stored bytes were altered is not read as
// the version: its bytes are checked against its digest, as the config's
// and the files' are.
func TestVersionAtDamagedManifest(t *testing.T) {
	ctx := context.Background()
	blobs, md := storetest.Embedded(t)
	s := feed.NewStore(blobs, md, registry.Options{Auditor: &recorder{}})
	d, err := put(t, s, "f/pkg", "1.0.0", "a", []byte("content"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.VersionAt(ctx, "f/pkg", d)
	if err != nil || len(v.Files) != 1 {
		t.Fatalf("VersionAt: %+v %v", v, err)
	}
	want := v.Files[0].Annotations[feed.AnnotationSHA512]
	// Alter the recorded hash in the stored manifest, as someone with
	// write access to the storage could.
	p := filepath.Join(blobs.Root(), "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Repeat("0", len(want))
	if err := os.WriteFile(p, bytes.Replace(b, []byte(want), []byte(forged), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = s.VersionAt(ctx, "f/pkg", d)
	if !errors.Is(err, feed.ErrDamaged) {
		t.Errorf("VersionAt of an altered manifest: %v, want ErrDamaged; files %+v", err, v.Files)
	}
	if err == nil && v.Files[0].Annotations[feed.AnnotationSHA512] == forged {
		t.Error("the forged hash was read as the version's")
	}
}

// TestReadConfigSHA512: a config stored under a sha512 digest is read
// and checked with its own algorithm (sha256 would refuse every such
// config), and one whose bytes do not match is refused.
func TestReadConfigSHA512(t *testing.T) {
	ctx := context.Background()
	blobs, md := storetest.Embedded(t)
	s := feed.NewStore(blobs, md, registry.Options{})
	data := []byte(`{"v":"1.0.0"}`)
	d := digest.SHA512.FromBytes(data)
	if _, err := blobs.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	v := feed.Version{Repo: "f/pkg", Tag: "1.0.0", Config: v1.Descriptor{MediaType: "application/vnd.test+json", Digest: d, Size: int64(len(data))}}
	got, err := s.ReadConfig(ctx, v)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadConfig of a sha512 config = %q, %v", got, err)
	}
	other := []byte(`{"v":"2.0.0"}`)
	od := digest.SHA512.FromBytes(other)
	if _, err := blobs.Put(ctx, od, int64(len(other)), bytes.NewReader(other)); err != nil {
		t.Fatal(err)
	}
	v.Config.Digest = od
	if err := os.WriteFile(filepath.Join(blobs.Root(), "blobs", "sha512", od.Encoded()[:2], od.Encoded()), data, 0o600); err != nil {
		t.Skipf("cannot damage the stored config for the test: %v", err)
	}
	if _, err := s.ReadConfig(ctx, v); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("ReadConfig of damaged content: %v, want a digest mismatch", err)
	}
}
