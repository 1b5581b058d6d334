package registry_test

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestGGCRClients drives a real custody process with go-containerregistry,
// the library behind crane, ko and many other clients. (ggcr only computes
// sha256 digests, so sha512 is covered by the raw tests in spec_test.go.)
func TestGGCRClients(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	a := newSpecClient(srv)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", srv.Logs())
		}
	})
	ref := func(t *testing.T, s string) name.Reference {
		t.Helper()
		r, err := name.ParseReference(srv.Host()+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	repoOf := func(t *testing.T, s string) name.Repository {
		t.Helper()
		r, err := name.NewRepository(srv.Host()+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	digestRef := func(t *testing.T, repo string, h v1.Hash) name.Digest {
		t.Helper()
		d, err := name.NewDigest(srv.Host()+"/"+repo+"@"+h.String(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("image round trip", func(t *testing.T) {
		img, err := random.Image(256<<10, 4)
		if err != nil {
			t.Fatal(err)
		}
		r := ref(t, "ggcr/image:v1")
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push: %v", err)
		}
		got, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		if err := validate.Image(got); err != nil {
			t.Fatalf("pulled image invalid: %v", err)
		}
		wd, _ := img.Digest()
		gd, _ := got.Digest()
		if wd != gd {
			t.Fatalf("digest %s, want %s", gd, wd)
		}
		desc, err := remote.Head(r)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != wd {
			t.Fatalf("HEAD digest %s, want %s", desc.Digest, wd)
		}
		// By digest, too.
		if _, err := remote.Image(digestRef(t, "ggcr/image", wd)); err != nil {
			t.Fatalf("pull by digest: %v", err)
		}
	})

	t.Run("OCI image round trip", func(t *testing.T) {
		img, err := random.Image(64<<10, 2)
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		r := ref(t, "ggcr/oci:v1")
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push: %v", err)
		}
		desc, err := remote.Get(r)
		if err != nil {
			t.Fatal(err)
		}
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Fatalf("media type %s", desc.MediaType)
		}
		got, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(got); err != nil {
			t.Fatalf("pulled image invalid: %v", err)
		}
	})

	t.Run("index round trip", func(t *testing.T) {
		idx, err := random.Index(32<<10, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		r := ref(t, "ggcr/index:multi")
		if err := remote.WriteIndex(r, idx); err != nil {
			t.Fatalf("push index: %v", err)
		}
		got, err := remote.Index(r)
		if err != nil {
			t.Fatalf("pull index: %v", err)
		}
		if err := validate.Index(got); err != nil {
			t.Fatalf("pulled index invalid: %v", err)
		}
		wd, _ := idx.Digest()
		gd, _ := got.Digest()
		if wd != gd {
			t.Fatalf("digest %s, want %s", gd, wd)
		}
		// remote.MultiWrite pushes several images and indexes at once.
		img, _ := random.Image(1024, 1)
		idx2, _ := random.Index(1024, 1, 2)
		if err := remote.MultiWrite(map[name.Reference]remote.Taggable{
			ref(t, "ggcr/multi:img"): img,
			ref(t, "ggcr/multi:idx"): idx2,
		}); err != nil {
			t.Fatalf("MultiWrite: %v", err)
		}
		if _, err := remote.Index(ref(t, "ggcr/multi:idx")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("layer write and mount", func(t *testing.T) {
		layer, err := random.Layer(128<<10, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		src := repoOf(t, "ggcr/mount-src")
		if err := remote.WriteLayer(src, layer); err != nil {
			t.Fatalf("WriteLayer: %v", err)
		}
		ld, _ := layer.Digest()
		if !a.blobExists(t, "ggcr/mount-src", ggcrDigest(ld)) {
			t.Fatal("layer missing after WriteLayer")
		}
		// A layer read from the registry is mountable: ggcr asks for a
		// cross-repository mount instead of uploading it again.
		rl, err := remote.Layer(digestRef(t, "ggcr/mount-src", ld))
		if err != nil {
			t.Fatal(err)
		}
		ml := &remote.MountableLayer{Layer: rl, Reference: digestRef(t, "ggcr/mount-src", ld)}
		if err := remote.WriteLayer(repoOf(t, "ggcr/mount-dst"), ml); err != nil {
			t.Fatalf("WriteLayer (mount): %v", err)
		}
		if !a.blobExists(t, "ggcr/mount-dst", ggcrDigest(ld)) {
			t.Fatal("mounted layer missing in the target repository")
		}
		if !srv.WaitLog("blob.mount", 5*time.Second) {
			t.Fatal("the layer was uploaded again instead of mounted")
		}
		// Copying a whole image between repositories mounts its blobs.
		img, _ := random.Image(4096, 2)
		if err := remote.Write(ref(t, "ggcr/mount-src:img"), img); err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Image(ref(t, "ggcr/mount-src:img"))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, "ggcr/mount-dst2:img"), pulled); err != nil {
			t.Fatalf("copy: %v", err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			if !a.blobExists(t, "ggcr/mount-dst2", ggcrDigest(d)) {
				t.Fatalf("layer %s missing after copy", d)
			}
		}
	})

	t.Run("artifact with subject and referrers", func(t *testing.T) {
		subject, _ := random.Image(1024, 1)
		subject = mutate.MediaType(subject, types.OCIManifestSchema1)
		if err := remote.Write(ref(t, "ggcr/refs:subject"), subject); err != nil {
			t.Fatal(err)
		}
		sdesc, err := remote.Head(ref(t, "ggcr/refs:subject"))
		if err != nil {
			t.Fatal(err)
		}
		const sbomType = "application/vnd.example.sbom.v1+json"
		sbom := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		sbom = mutate.ConfigMediaType(sbom, types.MediaType(sbomType))
		sbom = mutate.Annotations(sbom, map[string]string{"org.example.kind": "sbom"}).(v1.Image)
		sbom = mutate.Subject(sbom, *sdesc).(v1.Image)
		sd, err := sbom.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(digestRef(t, "ggcr/refs", sd), sbom); err != nil {
			t.Fatalf("push referrer: %v", err)
		}
		const sigType = "application/vnd.example.sig.v1+json"
		sig := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		sig = mutate.ConfigMediaType(sig, types.MediaType(sigType))
		sig = mutate.Subject(sig, *sdesc).(v1.Image)
		sigd, _ := sig.Digest()
		if err := remote.Write(digestRef(t, "ggcr/refs", sigd), sig); err != nil {
			t.Fatalf("push second referrer: %v", err)
		}

		list, err := remote.Referrers(digestRef(t, "ggcr/refs", sdesc.Digest))
		if err != nil {
			t.Fatalf("Referrers: %v", err)
		}
		im, err := list.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		found := map[v1.Hash]v1.Descriptor{}
		for _, m := range im.Manifests {
			found[m.Digest] = m
		}
		if len(found) != 2 || found[sd].ArtifactType != sbomType || found[sigd].ArtifactType != sigType ||
			found[sd].Annotations["org.example.kind"] != "sbom" {
			t.Fatalf("referrers: %+v", im.Manifests)
		}
		filtered, err := remote.Referrers(digestRef(t, "ggcr/refs", sdesc.Digest), remote.WithFilter("artifactType", sigType))
		if err != nil {
			t.Fatal(err)
		}
		fm, _ := filtered.IndexManifest()
		if len(fm.Manifests) != 1 || fm.Manifests[0].Digest != sigd {
			t.Fatalf("filtered referrers: %+v", fm.Manifests)
		}
		// No fallback tag was needed: the referrers API answered.
		tags, err := remote.List(repoOf(t, "ggcr/refs"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tags, []string{"subject"}) {
			t.Fatalf("tags %v: a referrers fallback tag was pushed", tags)
		}
		// Deleting a referrer removes it from the list.
		if err := remote.Delete(digestRef(t, "ggcr/refs", sd)); err != nil {
			t.Fatal(err)
		}
		list, err = remote.Referrers(digestRef(t, "ggcr/refs", sdesc.Digest))
		if err != nil {
			t.Fatal(err)
		}
		im, _ = list.IndexManifest()
		if len(im.Manifests) != 1 || im.Manifests[0].Digest != sigd {
			t.Fatalf("referrers after delete: %+v", im.Manifests)
		}
	})

	t.Run("delete", func(t *testing.T) {
		img, _ := random.Image(1024, 1)
		r := ref(t, "ggcr/delete:v1")
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		if err := remote.Delete(digestRef(t, "ggcr/delete", d)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := remote.Image(r); err == nil {
			t.Fatal("deleted image still pullable by tag")
		}
		if _, err := remote.Head(digestRef(t, "ggcr/delete", d)); err == nil {
			t.Fatal("deleted image still there by digest")
		}
		// Deleting by tag keeps the manifest.
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		if err := remote.Tag(ref(t, "ggcr/delete:v2").(name.Tag), img); err != nil {
			t.Fatal(err)
		}
		if err := remote.Delete(r); err != nil {
			t.Fatalf("Delete tag: %v", err)
		}
		if _, err := remote.Head(ref(t, "ggcr/delete:v2")); err != nil {
			t.Fatalf("other tag gone: %v", err)
		}
		tags, err := remote.List(repoOf(t, "ggcr/delete"))
		if err != nil || !slices.Equal(tags, []string{"v2"}) {
			t.Fatalf("tags %v, %v", tags, err)
		}
	})

	t.Run("list with pagination", func(t *testing.T) {
		img, _ := random.Image(512, 1)
		var want []string
		for i := range 25 {
			want = append(want, fmt.Sprintf("tag-%02d", i))
		}
		if err := remote.Write(ref(t, "ggcr/paged:"+want[0]), img); err != nil {
			t.Fatal(err)
		}
		for _, tag := range want[1:] {
			if err := remote.Tag(ref(t, "ggcr/paged:"+tag).(name.Tag), img); err != nil {
				t.Fatalf("tag %s: %v", tag, err)
			}
		}
		tags, err := remote.List(repoOf(t, "ggcr/paged"), remote.WithPageSize(10))
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if !slices.Equal(tags, want) {
			t.Fatalf("List = %v, want %v", tags, want)
		}
		// ggcr followed Link headers: the raw first page holds 10 tags.
		page, r := a.tags(t, "ggcr/paged", "?n=10")
		if len(page) != 10 || r.Header.Get("Link") == "" {
			t.Fatalf("first page %v, Link %q", page, r.Header.Get("Link"))
		}
	})

	t.Run("catalog", func(t *testing.T) {
		reg, err := name.NewRegistry(srv.Host(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		all, err := remote.Catalog(context.Background(), reg)
		if err != nil {
			t.Fatalf("Catalog: %v", err)
		}
		for _, want := range []string{"ggcr/image", "ggcr/index", "ggcr/paged", "ggcr/mount-dst"} {
			if !slices.Contains(all, want) {
				t.Fatalf("catalog %v lacks %s", all, want)
			}
		}
		if !slices.IsSorted(all) {
			t.Fatalf("catalog not sorted: %v", all)
		}
		paged, err := remote.Catalog(context.Background(), reg, remote.WithPageSize(3))
		if err != nil {
			t.Fatalf("Catalog paged: %v", err)
		}
		if !slices.Equal(paged, all) {
			t.Fatalf("paged catalog %v, want %v", paged, all)
		}
		page, err := remote.CatalogPage(reg, "", 2)
		if err != nil || len(page) != 2 || !slices.Equal(page, all[:2]) {
			t.Fatalf("CatalogPage: %v, %v", page, err)
		}
	})

	t.Run("64 MiB streamed layer", func(t *testing.T) {
		if testing.Short() {
			t.Skip("large layer")
		}
		const size = 64 << 20
		src := io.LimitReader(rand.Reader, size)
		uh := sha256.New()
		layer := stream.NewLayer(io.NopCloser(io.TeeReader(src, uh)), stream.WithCompressionLevel(gzip.BestSpeed))
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			t.Fatal(err)
		}
		r := ref(t, "ggcr/big:v1")
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push: %v", err)
		}
		ld, err := layer.Digest()
		if err != nil {
			t.Fatal(err)
		}
		diffID, _ := layer.DiffID()
		if got := fmt.Sprintf("sha256:%x", uh.Sum(nil)); got != diffID.String() {
			t.Fatalf("diffID %s, uncompressed content %s", diffID, got)
		}
		pulled, err := remote.Image(r)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := pulled.LayerByDigest(ld)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := pl.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(h, rc)
		if err != nil {
			t.Fatalf("reading pulled layer: %v", err)
		}
		if n != size || fmt.Sprintf("sha256:%x", h.Sum(nil)) != diffID.String() {
			t.Fatalf("pulled layer: %d bytes, sha256:%x, want %d bytes, %s", n, h.Sum(nil), size, diffID)
		}
		if err := validate.Image(pulled, validate.Fast); err != nil {
			t.Fatalf("pulled image invalid: %v", err)
		}
	})
}

func ggcrDigest(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }
