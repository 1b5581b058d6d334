package npm

import (
	"archive/tar"
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// TestPublishCaseVariantKeys: the server checks a version document with
// encoding/json, which matches keys case-insensitively (the last one
// wins), while npm reads them exactly. A document with "name"/"version"
// naming another package and "Name"/"Version" naming the published one
// passed the check and was served, under pkg@1.0.0, as
// evil-other@9.9.9. It is refused and nothing is stored.
func TestPublishCaseVariantKeys(t *testing.T) {
	srv := handler(t)
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	s512 := sha512.Sum512(tgz)
	s1 := sha1.Sum(tgz) //nolint:gosec // npm's shasum
	for _, fields := range []string{
		`"name":"evil-other","version":"9.9.9","Name":"pkg","Version":"1.0.0"`,
		`"name":"pkg","version":"9.9.9","VERSION":"1.0.0"`,
		`"NAME":"evil","name":"pkg","version":"1.0.0"`,
		`"name":"pkg","version":"1.0.0","Dist":{}`,
	} {
		b := fmt.Sprintf(`{"_id":"pkg","name":"pkg","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":{%s,"dist":{"integrity":"sha512-%s","shasum":"%s"}}},"_attachments":{"pkg-1.0.0.tgz":{"data":"%s","length":%d}}}`,
			fields, base64.StdEncoding.EncodeToString(s512[:]), hex.EncodeToString(s1[:]), base64.StdEncoding.EncodeToString(tgz), len(tgz))
		resp, out := call(t, "PUT", srv.URL+"/npm/f/pkg", "", []byte(b))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(out), "spelt as npm spells them") {
			t.Errorf("publish with %s: %d %s, want 400", fields, resp.StatusCode, out)
		}
		if resp, out := call(t, "GET", srv.URL+"/npm/f/pkg", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("after the refused publish with %s, the package exists: %d %s", fields, resp.StatusCode, out)
		}
	}
	// The same document spelt exactly is published.
	b := fmt.Sprintf(`{"_id":"pkg","name":"pkg","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":{"name":"pkg","version":"1.0.0","dist":{"integrity":"sha512-%s","shasum":"%s"}}},"_attachments":{"pkg-1.0.0.tgz":{"data":"%s","length":%d}}}`,
		base64.StdEncoding.EncodeToString(s512[:]), hex.EncodeToString(s1[:]), base64.StdEncoding.EncodeToString(tgz), len(tgz))
	if resp, out := call(t, "PUT", srv.URL+"/npm/f/pkg", "", []byte(b)); resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d %s", resp.StatusCode, out)
	}
}

// TestDistTagRemoveUnknownPackage: removing a dist-tag of a package that
// does not exist answered 500 (the missing repository read as a failure)
// instead of npm's 404; it is a 404 naming the dist-tag, audited as a
// refused write, and no repository appears.
func TestDistTagRemoveUnknownPackage(t *testing.T) {
	blobs, md := storetest.Embedded(t)
	log := &auditLog{}
	srv := httptest.NewServer(New([]config.Feed{{Name: "f", Ecosystem: "npm", Kind: "hosted"}}, blobs, md, registry.Options{Auditor: log}))
	t.Cleanup(srv.Close)
	resp, out := call(t, "DELETE", srv.URL+"/npm/f/-/package/nothing/dist-tags/beta", "", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(out), `dist-tag \"beta\" is not set on nothing`) {
		t.Errorf("dist-tag rm on an unknown package: %d %s; want 404", resp.StatusCode, out)
	}
	log.mu.Lock()
	if len(log.events) != 1 || log.events[0].Action != "npm.dist-tag" || log.events[0].Result != "invalid" || log.events[0].Repo != "f/nothing" {
		t.Errorf("audited as %+v", log.events)
	}
	log.mu.Unlock()
	if repos, err := md.Repositories(t.Context(), "", 10); err != nil || len(repos) != 0 {
		t.Errorf("repositories after the refusal: %v %v", repos, err)
	}
}
