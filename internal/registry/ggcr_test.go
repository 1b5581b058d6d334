package registry_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/custody-dev/custody/internal/testserver"
)

// TestGGCRImageRoundTrip pushes a random image and an index with
// go-containerregistry to a real custody process and pulls them back.
func TestGGCRImageRoundTrip(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(srv.Host()+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v\n%s", err, srv.Logs())
	}
	got, err := remote.Image(ref)
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

	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	iref, _ := name.ParseReference(srv.Host()+"/team/app:multi", name.Insecure)
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gi, err := remote.Index(iref)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if err := validate.Index(gi); err != nil {
		t.Fatalf("pulled index invalid: %v", err)
	}
	tags, err := remote.List(ref.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 2 || tags[0] != "multi" || tags[1] != "v1" {
		t.Fatalf("tags = %v, want [multi v1]", tags)
	}
}
