package registry_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/testserver"
)

// go-containerregistry (and so custody's own signature lookup) reads only
// the first referrers page; that page must hold more than the lookup
// examines, so an oversized list is refused there instead of truncated.
func TestReferrersPageExceedsSignatureLookup(t *testing.T) {
	if registry.DefaultReferrersPage <= sign.MaxReferrers {
		t.Fatalf("DefaultReferrersPage %d must exceed sign.MaxReferrers %d", registry.DefaultReferrersPage, sign.MaxReferrers)
	}
}

// TestReferrersPagination pushes 5,000 referrers of one subject and walks
// the referrers API by its Link headers: every referrer exactly once, in
// digest order, each page an image index within the page size, the
// artifactType filter kept (and announced) on every page.
func TestReferrersPagination(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	a := newSpecClient(srv)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", srv.Logs())
		}
	})
	const repo, total = "many/refs", 5000
	subject := a.pushImage(t, repo, "subject", 1, nil)
	a.pushBlobAs(t, repo, emptyJSONDigest, []byte("{}"))
	types := []string{"application/vnd.example.sig.v1", "application/vnd.example.sbom.v1"}

	want := map[digest.Digest]string{} // referrer -> artifactType
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				m := ocispec.Manifest{
					MediaType:    mtOCIManifest,
					ArtifactType: types[i%5/4], // one in five is an SBOM
					Config:       ocispec.Descriptor{MediaType: mtEmpty, Digest: emptyJSONDigest, Size: 2},
					Layers:       []ocispec.Descriptor{},
					Subject:      &subject.desc,
					Annotations:  map[string]string{"n": strconv.Itoa(i)},
				}
				m.SchemaVersion = 2
				b, _ := json.Marshal(m)
				d := digest.FromBytes(b)
				if r := a.putManifest(t, repo, d.String(), mtOCIManifest, b); r.Status != http.StatusCreated {
					t.Errorf("PUT referrer %d: %s", i, r)
					continue
				}
				mu.Lock()
				want[d] = m.ArtifactType
				mu.Unlock()
			}
		}()
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	walk := func(query string, wantType string, pageSize int) (map[digest.Digest]bool, int) {
		t.Helper()
		seen := map[digest.Digest]bool{}
		var last digest.Digest
		pages := 0
		for next := "/v2/" + repo + "/referrers/" + subject.digest.String() + query; next != ""; {
			if pages++; pages > total {
				t.Fatal("pagination does not end")
			}
			idx, r := a.referrers(t, repo, subject.digest, strings.TrimPrefix(next, "/v2/"+repo+"/referrers/"+subject.digest.String()))
			if len(idx.Manifests) > pageSize {
				t.Fatalf("page %d has %d referrers, over %d", pages, len(idx.Manifests), pageSize)
			}
			if wantType != "" && r.Header.Get("OCI-Filters-Applied") != "artifactType" {
				t.Fatalf("page %d of a filtered listing lacks OCI-Filters-Applied", pages)
			}
			for _, x := range idx.Manifests {
				if seen[x.Digest] {
					t.Fatalf("%s listed twice", x.Digest)
				}
				if last != "" && x.Digest <= last {
					t.Fatalf("page %d: %s after %s, not in digest order", pages, x.Digest, last)
				}
				at, ok := want[x.Digest]
				if !ok || x.ArtifactType != at || (wantType != "" && at != wantType) {
					t.Fatalf("page %d lists %s (%s)", pages, x.Digest, x.ArtifactType)
				}
				seen[x.Digest], last = true, x.Digest
			}
			next = ""
			if l := r.Header.Get("Link"); l != "" {
				next = specNextLink(t, l)
				if wantType != "" && !strings.Contains(next, "artifactType=") {
					t.Fatalf("Link %q drops the artifactType filter", l)
				}
			}
		}
		return seen, pages
	}

	// The default page size.
	seen, pages := walk("", "", registry.DefaultReferrersPage)
	if len(seen) != total || pages < total/registry.DefaultReferrersPage {
		t.Fatalf("walked %d referrers in %d pages, want %d", len(seen), pages, total)
	}
	// A client's smaller n, and a filter.
	seen, pages = walk("?n=700", "", 700)
	if len(seen) != total || pages < total/700 {
		t.Fatalf("n=700: walked %d referrers in %d pages, want %d", len(seen), pages, total)
	}
	seen, _ = walk("?n=300&artifactType="+types[1], types[1], 300)
	if len(seen) != total/5 {
		t.Fatalf("SBOMs: walked %d, want %d", len(seen), total/5)
	}
	// A malformed continuation is refused.
	r := a.do(t, "GET", "/v2/"+repo+"/referrers/"+subject.digest.String()+"?last=nope", nil)
	specWantError(t, "last=nope", r, http.StatusBadRequest, "DIGEST_INVALID")
}
