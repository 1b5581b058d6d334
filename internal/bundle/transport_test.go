package bundle

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestTransport reads the fixture's image through the bundle's read-only
// registry by tag and digest, lists tags, and is refused writes and
// repositories the bundle does not hold.
func TestTransport(t *testing.T) {
	f := newFixture(t)
	b, err := openBytes(t, f.bytes(t), f.fp)
	if err != nil {
		t.Fatal(err)
	}
	opt := remote.WithTransport(b.Transport())
	ctx := context.Background()
	img, err := remote.Image(name.MustParseReference(Host+"/team/app:v1", name.Insecure), opt, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %d, %v", len(ls), err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	if err != nil || string(body) != "layer bytes" {
		t.Fatalf("layer: %q, %v", body, err)
	}
	tags, err := remote.List(name.MustParseReference(Host+"/team/app", name.Insecure).Context(), opt)
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags: %v, %v", tags, err)
	}
	if _, err := remote.Image(name.MustParseReference(Host+"/other/app:v1", name.Insecure), opt); err == nil {
		t.Fatal("a repository the bundle does not hold answered")
	}
	r, _ := random.Image(10, 1)
	if err := remote.Write(name.MustParseReference(Host+"/team/app:v2", name.Insecure), r, opt); err == nil {
		t.Fatal("the bundle accepted a write")
	}
}

// TestTransportRepositoryNamedLikeARoute reads an image of a repository
// with components named like the API's routes ("manifests", "blobs"),
// which the spec allows: paths are read from the end.
func TestTransportRepositoryNamedLikeARoute(t *testing.T) {
	f := newFixture(t)
	const repo = "team/manifests/blobs/app"
	f.c.Index = bytes.Replace(f.c.Index, []byte(`"dev.custody.repository":"team/app"`), []byte(`"dev.custody.repository":"`+repo+`"`), 1)
	b, err := openBytes(t, f.bytes(t), f.fp)
	if err != nil {
		t.Fatal(err)
	}
	opt := remote.WithTransport(b.Transport())
	img, err := remote.Image(name.MustParseReference(Host+"/"+repo+":v1", name.Insecure), opt)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %d, %v", len(ls), err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	if err != nil || string(body) != "layer bytes" {
		t.Fatalf("layer: %q, %v", body, err)
	}
	tags, err := remote.List(name.MustParseReference(Host+"/"+repo, name.Insecure).Context(), opt)
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags: %v, %v", tags, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(Host+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Referrers(ref, opt); err != nil {
		t.Fatalf("referrers: %v", err)
	}
}
