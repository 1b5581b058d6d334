package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/key"
)

// fixture is a small valid bundle's contents and the key that signs it.
type fixture struct {
	c      Contents
	blobs  map[digest.Digest][]byte
	signer note.Signer
	fp     string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.example/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := Bytes(Trust{TrustRoot: key.TrustRoot{MediaType: key.TrustRootMediaType, Keys: []key.TrustedKey{}}, Log: LogKey{Origin: "test.example/log", Key: vkey}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{signer: signer, blobs: map[digest.Digest][]byte{}, fp: Fingerprint(trust)}
	layer := []byte("layer bytes")
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	ld, cd := digest.FromBytes(layer), digest.FromBytes(config)
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":` + itoa(len(config)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + ld.String() + `","size":` + itoa(len(layer)) + `}]}`)
	md := digest.FromBytes(man)
	for _, b := range [][]byte{layer, config, man} {
		f.blobs[digest.FromBytes(b)] = b
		f.c.Blobs = append(f.c.Blobs, BlobFile{Digest: digest.FromBytes(b), Size: int64(len(b))})
	}
	f.c.Index = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + md.String() + `","size":` + itoa(len(man)) + `,"annotations":{"dev.custody.repository":"team/app","dev.custody.role":"artifact","dev.custody.tag":"v1"}}]}` + "\n")
	f.c.Trust = trust
	f.c.Audit = []byte(`{"checkpoint":"","entries":[],"latest":"","consistency":[]}` + "\n")
	f.c.Summary = []byte(`{"artifacts":[]}` + "\n")
	f.c.SummaryMD = []byte("# Evidence bundle\n")
	f.c.Log = LogRef{Origin: "test.example/log"}
	return f
}

func itoa(n int) string { return strconv.Itoa(n) }

func (f *fixture) open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	b, ok := f.blobs[d]
	if !ok {
		return nil, 0, errors.New("no blob")
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (f *fixture) sign(text string) ([]byte, error) {
	return note.Sign(&note.Note{Text: text}, f.signer)
}

func (f *fixture) bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, f.c, f.open, f.sign); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// entry is one tar entry of a crafted bundle.
type entry struct {
	name     string
	typeflag byte
	body     []byte
	link     string
}

// entries returns the tar entries of a bundle.
func entries(t testing.TB, b []byte) []entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, entry{name: h.Name, typeflag: h.Typeflag, body: body, link: h.Linkname})
	}
}

// craft writes entries as a tar.
func craft(t testing.TB, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link, Format: tar.FormatPAX}
		if e.typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typeflag == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// openBytes opens b and asserts that nothing but the bundle is in its
// directory afterwards (Open writes nothing).
func openBytes(t testing.TB, b []byte, fp string) (*Bundle, error) {
	t.Helper()
	p := writeFile(t, b)
	bd, err := Open(p, fp)
	names, _ := os.ReadDir(filepath.Dir(p))
	if len(names) != 1 {
		t.Errorf("Open left %d files in the bundle's directory", len(names))
	}
	if bd != nil {
		t.Cleanup(func() { bd.Close() })
	}
	return bd, err
}

func TestWriteIsDeterministicAndOpens(t *testing.T) {
	f := newFixture(t)
	a, b := f.bytes(t), f.bytes(t)
	if !bytes.Equal(a, b) {
		t.Fatal("two writes of the same contents differ")
	}
	for _, e := range entries(t, a) {
		if e.typeflag != tar.TypeReg {
			t.Errorf("%s: type %q", e.name, e.typeflag)
		}
	}
	bd, err := openBytes(t, a, f.fp)
	if err != nil {
		t.Fatal(err)
	}
	if got := bd.Manifest().Files; len(got) != 9 {
		t.Fatalf("manifest lists %d files, want 9", len(got))
	}
	for d, want := range f.blobs {
		rc, n, err := bd.Blob(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, want) || n != int64(len(want)) {
			t.Fatalf("blob %s: %q, %v", d, got, err)
		}
	}
	if _, _, err := bd.Blob(digest.FromString("absent")); !errors.Is(err, ErrNotInBundle) {
		t.Fatalf("absent blob: %v", err)
	}
}

func TestOpenRefusesBadBundles(t *testing.T) {
	f := newFixture(t)
	good := f.bytes(t)
	es := entries(t, good)
	blob := len(es) - 1 // the last blob
	mod := func(fn func([]entry) []entry) []byte {
		c := append([]entry(nil), es...)
		return craft(t, fn(c))
	}
	other := newFixture(t)
	cases := []struct {
		name string
		b    []byte
		fp   string
		want string
	}{
		{"truncated", good[:len(good)/2], f.fp, "truncated"},
		{"truncated in a header", good[:512+100], f.fp, "truncated"},
		{"empty", nil, f.fp, "ends before custody/manifest.json"},
		{"parent path", mod(func(c []entry) []entry { c[blob].name = "blobs/../../etc/passwd"; return c }), f.fp, "leaves the bundle"},
		{"absolute path", mod(func(c []entry) []entry { c[blob].name = "/etc/passwd"; return c }), f.fp, "absolute name"},
		{"duplicate entry", mod(func(c []entry) []entry { return append(c, c[blob]) }), f.fp, "appears twice"},
		{"symlink", mod(func(c []entry) []entry {
			c[blob] = entry{name: c[blob].name, typeflag: tar.TypeSymlink, link: "/etc/passwd"}
			return c
		}), f.fp, "not a regular file"},
		{"hardlink", mod(func(c []entry) []entry {
			c[blob] = entry{name: c[blob].name, typeflag: tar.TypeLink, link: "oci-layout"}
			return c
		}), f.fp, "not a regular file"},
		{"device", mod(func(c []entry) []entry { c[blob] = entry{name: c[blob].name, typeflag: tar.TypeChar}; return c }), f.fp, "not a regular file"},
		{"directory", mod(func(c []entry) []entry {
			return append(c[:2], append([]entry{{name: "blobs", typeflag: tar.TypeDir}}, c[2:]...)...)
		}), f.fp, "not a regular file"},
		{"unexpected entry", mod(func(c []entry) []entry {
			return append(c, entry{name: "extra.txt", typeflag: tar.TypeReg, body: []byte("x")})
		}), f.fp, "unexpected tar entry extra.txt"},
		{"missing entry", mod(func(c []entry) []entry { return c[:blob] }), f.fp, "ends before blobs/"},
		{"oversized entry", mod(func(c []entry) []entry { c[blob].body = append(c[blob].body, 'x'); return c }), f.fp, "the manifest says"},
		{"hash mismatch", mod(func(c []entry) []entry {
			b := bytes.Clone(c[blob].body)
			b[0] ^= 1
			c[blob].body = b
			return c
		}), f.fp, "modified"},
		{"wrong fingerprint", good, other.fp, "not the trusted"},
		{"bad fingerprint", good, "abc", "is not a SHA-256"},
		{"signature by another key", mod(func(c []entry) []entry {
			sig, _ := other.sign(SignatureText(c[0].body))
			c[1].body = sig
			return c
		}), f.fp, "does not verify"},
		{"trailing data", append(bytes.Clone(good), []byte("garbage")...), f.fp, "after the end"},
		{"oversized manifest", craft(t, []entry{{name: ManifestPath, typeflag: tar.TypeReg, body: make([]byte, MaxManifestSize+1)}}), f.fp, "more than the"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openBytes(t, tc.b, tc.fp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestOpenNamesWhatWasModified(t *testing.T) {
	f := newFixture(t)
	es := entries(t, f.bytes(t))
	for i, e := range es {
		if i < 2 {
			continue
		}
		c := append([]entry(nil), es...)
		b := bytes.Clone(e.body)
		b[len(b)/2] ^= 0x20
		c[i].body = b
		_, err := openBytes(t, craft(t, c), f.fp)
		if err == nil || !strings.Contains(err.Error(), e.name) {
			t.Errorf("flipping a byte of %s: %v", e.name, err)
		}
	}
	// A layer is named as one.
	c := append([]entry(nil), es...)
	for i, e := range c {
		if string(e.body) == "layer bytes" {
			c[i].body = []byte("layer bytez")
		}
	}
	if _, err := openBytes(t, craft(t, c), f.fp); err == nil || !strings.Contains(err.Error(), "layer 1 of team/app@") {
		t.Errorf("modified layer: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	good := fx.bytes(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add(craft(f, []entry{{name: "../x", typeflag: tar.TypeReg, body: []byte("x")}}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.tar")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		bd, err := Open(p, fx.fp)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not wrapping ErrInvalid: %v", err)
			}
			return
		}
		defer bd.Close()
		// Only the signed manifest opens (other tar encodings of it may).
		if bd.Manifest().Format != Format {
			t.Fatalf("opened a bundle of format %q", bd.Manifest().Format)
		}
	})
}
