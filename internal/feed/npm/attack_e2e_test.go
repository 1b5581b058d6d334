package npm_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestLabelSpoofsVersion: dist-tags are the label log's tags,
// "__<label>.<sequence>", which any writer can also push over /v2/. A
// label spelt as a version ("__1.0.0.0000000001", pointing at 2.0.0's
// manifest) is no dist-tag npm can set (they never start with a digit),
// yet it was served as one: the packument's dist-tags said "1.0.0" is
// 2.0.0, and GET /<package>/1.0.0 answered 2.0.0's document, so a sealed
// version resolved to other bytes. Labels npm could not have set are not
// dist-tags.
func TestLabelSpoofsVersion(t *testing.T) {
	e := startE2E(t)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		tgz := tgz(t, map[string]string{"package/package.json": `{"name":"spoofed","version":"` + v + `"}`})
		if code, b := e.call("PUT", "/npm/npmfeed/spoofed", "bearer:"+e.writer, "application/json", publishBody("spoofed", "spoofed", v, tgz, tgz)); code != http.StatusOK {
			t.Fatalf("publish %s: %d %s", v, code, b)
		}
	}
	// The writer pushes a label log entry over /v2/, as any tag.
	req, _ := http.NewRequest("GET", e.s.URL+"/v2/npmfeed/spoofed/manifests/2.0.0", nil)
	req.SetBasicAuth("token", e.writer)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest: %v %v", resp, err)
	}
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	// The registry refuses tags in a feed's repositories other than
	// evidence (cosign's sha256-<hex>.sig/.att/.sbom): versions, labels and
	// deletions go through the protocol only.
	for _, tag := range []string{"__1.0.0.0000000001", "__v1.0.0.0000000001", "__latest.9999999999", "3.0.0", "sha256-0123.jar"} {
		req, _ = http.NewRequest("PUT", e.s.URL+"/v2/npmfeed/spoofed/manifests/"+tag, strings.NewReader(string(raw)))
		req.SetBasicAuth("token", e.writer)
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "DENIED") {
			t.Fatalf("PUT %s over /v2/: %d %s, want 403 DENIED", tag, resp.StatusCode, b)
		}
	}
	req, _ = http.NewRequest("DELETE", e.s.URL+"/v2/npmfeed/spoofed/manifests/2.0.0", nil)
	req.SetBasicAuth("token", e.writer)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("DELETE a version over /v2/: %v %v, want 403", resp, err)
	}
	resp.Body.Close()
	// A signature under its evidence tag is accepted.
	sum := sha256.Sum256(raw)
	req, _ = http.NewRequest("PUT", e.s.URL+"/v2/npmfeed/spoofed/manifests/sha256-"+hex.EncodeToString(sum[:])+".sig", strings.NewReader(string(raw)))
	req.SetBasicAuth("token", e.writer)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT an evidence tag over /v2/: %v %v, want 201", resp, err)
	}
	resp.Body.Close()
	if code, b := e.call("GET", "/npm/npmfeed/spoofed", "bearer:"+e.reader, "", nil); code != http.StatusOK || !strings.Contains(string(b), `"2.0.0"`) {
		t.Fatalf("packument after the refused deletion: %d %s", code, b)
	}
	code, b := e.call("GET", "/npm/npmfeed/spoofed/1.0.0", "bearer:"+e.reader, "", nil)
	var doc struct{ Version string }
	if code != http.StatusOK || json.Unmarshal(b, &doc) != nil || doc.Version != "1.0.0" {
		t.Errorf("GET spoofed/1.0.0: %d %s; want version 1.0.0", code, b)
	}
	code, b = e.call("GET", "/npm/npmfeed/-/package/spoofed/dist-tags", "bearer:"+e.reader, "", nil)
	var tags map[string]string
	if code != http.StatusOK || json.Unmarshal(b, &tags) != nil || len(tags) != 1 || tags["latest"] != "2.0.0" {
		t.Errorf("dist-tags: %d %s; want only latest", code, b)
	}
	if p := e.packument("spoofed"); strings.Contains(p, `"1.0.0":"2.0.0"`) || strings.Contains(p, `"v1.0.0":"2.0.0"`) {
		t.Errorf("packument serves a label spelt as a version: %s", p)
	}
}
