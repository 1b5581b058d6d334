package npm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // npm's shasum
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// parsePublish reads a whole publish body with ReadPublish, keeping the
// tarball in memory (for tests).
func parsePublish(b []byte, want Name) (*Publish, []byte, error) {
	var tgz bytes.Buffer
	p, err := ReadPublish(bytes.NewReader(b), want, func(r io.Reader) error {
		_, err := io.Copy(&tgz, r)
		return err
	})
	return p, tgz.Bytes(), err
}

// decodeData is the reference decoding of an attachment's data: the JSON
// string read whole by encoding/json, then base64-decoded whole.
func decodeData(lit []byte) ([]byte, bool, bool) {
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return nil, false, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, true, err == nil
}

// FuzzPublishData: the streamed decoding of the data string (JSON
// escapes, then base64) accepts exactly what the whole-string decoding
// does and yields the same bytes.
func FuzzPublishData(f *testing.F) {
	for _, s := range []string{`"AAAA"`, `"AA=="`, `"AA==AA=="`, `"QUJD\/w=="`, `"QUJD\u002fw=="`, `"QU\nJD"`, `"QUJD\u00e9"`, `"AAA"`, `"A\tAA"`, `""`, `"\ud83d\ude00"`, `"QUJD` + "\r\n" + `"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, lit []byte) {
		want, isJSON, isB64 := decodeData(lit)
		if !isJSON || len(lit) == 0 || lit[0] != '"' {
			return
		}
		s := &scanner{r: bufioReader(lit[1:])}
		got, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, &dataReader{s: s}))
		if err == nil {
			err = s.end()
		}
		if (err == nil) != isB64 || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("%q: streamed %x, %v; whole %x, base64 %v", lit, got, err, want, isB64)
		}
	})
}

// streamPublish writes a publish of left@1.0.0 to w: _attachments first,
// then the rest, with a tarball of a package.json and size bytes of
// random data, encoded as it is written, so the client holds little.
func streamPublish(w io.Writer, size int64) error {
	if _, err := io.WriteString(w, `{"_attachments":{"left-1.0.0.tgz":{"content_type":"application/octet-stream","data":"`); err != nil {
		return err
	}
	b64 := base64.NewEncoder(base64.StdEncoding, w)
	h512, h1 := sha512.New(), sha1.New() //nolint:gosec // npm's shasum
	n := &counter{}
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(b64, h512, h1, n), gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	pj := []byte(`{"name":"left","version":"1.0.0"}`)
	_ = tw.WriteHeader(&tar.Header{Name: "package/package.json", Mode: 0o644, Size: int64(len(pj))})
	_, _ = tw.Write(pj)
	_ = tw.WriteHeader(&tar.Header{Name: "package/blob.bin", Mode: 0o644, Size: size})
	if _, err := io.CopyN(tw, rand.NewChaCha8([32]byte{1}), size); err != nil {
		return err
	}
	_ = tw.Close()
	_ = zw.Close()
	if err := b64.Close(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `","length":%d}},"versions":{"1.0.0":{"name":"left","version":"1.0.0","dist":{"integrity":"sha512-%s","shasum":"%s"}}},"dist-tags":{"latest":"1.0.0"},"name":"left","_id":"left"}`,
		n.n, base64.StdEncoding.EncodeToString(h512.Sum(nil)), hex.EncodeToString(h1.Sum(nil)))
	return err
}

// TestPublishFlatMemory: a publish read the whole body, then decoded the
// whole tarball, into memory: a 64 MiB tarball cost some 300 MiB of heap.
// The body is now streamed into the blob store; what the server
// allocates while it takes the publish stays far below the tarball's
// size.
func TestPublishFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 64 MiB")
	}
	const size = 64 << 20
	blobs, md := storetest.Embedded(t)
	srv := httptest.NewServer(New([]config.Feed{{Name: "f", Ecosystem: "npm", Kind: "hosted"}}, blobs, md, registry.Options{}))
	t.Cleanup(srv.Close)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(streamPublish(pw, size)) }()
	req, _ := http.NewRequestWithContext(t.Context(), "PUT", srv.URL+"/npm/f/left", pr)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d %s", resp.StatusCode, out)
	}
	// Client and server share the process: the client's encoding is
	// counted too, and small.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB publishing a %d MiB tarball", alloc>>20, size>>20)
	if alloc > size/4 {
		t.Errorf("publishing a %d MiB tarball allocated %d MiB; want well under the tarball's size", size>>20, alloc>>20)
	}
	// The version is there and its tarball is whole.
	resp, err = http.Get(srv.URL + "/npm/f/left/-/left-1.0.0.tgz")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n < size {
		t.Errorf("tarball: %d, %d bytes", resp.StatusCode, n)
	}
}

// TestPublishAttachmentsFirst: the keys of a publish come in any order;
// _attachments before versions (the tarball read before the hashes it
// must match) publishes as well.
func TestPublishAttachmentsFirst(t *testing.T) {
	srv := handler(t)
	var b bytes.Buffer
	if err := streamPublish(&b, 1000); err != nil {
		t.Fatal(err)
	}
	if resp, out := call(t, "PUT", srv.URL+"/npm/f/left", "", b.Bytes()); resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d %s", resp.StatusCode, out)
	}
	if resp, out := call(t, "GET", srv.URL+"/npm/f/left", "", nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"1.0.0"`) {
		t.Fatalf("packument: %d %s", resp.StatusCode, out)
	}
}

// TestPublishRefusalsStoreNothing: every refused publish answers its 4xx
// in npm's shape and leaves the stores as they were: no repository, no
// blob, no upload session (the tarball was staged while it was read).
func TestPublishRefusalsStoreNothing(t *testing.T) {
	tgz := tarball(t, tar.Header{Name: "package/package.json"})
	good := body("left", "left-1.0.0.tgz", "1.0.0", tgz, tgz, nil)
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	att := func(m map[string]any) map[string]any {
		return m["_attachments"].(map[string]any)["left-1.0.0.tgz"].(map[string]any)
	}
	dist := func(m map[string]any) map[string]any {
		return m["versions"].(map[string]any)["1.0.0"].(map[string]any)["dist"].(map[string]any)
	}
	escaping := tarball(t, tar.Header{Name: "package/../../x"})
	cases := []struct {
		name   string
		body   io.Reader
		status int
		want   string
	}{
		{"bad base64", bytes.NewReader(edit(func(m map[string]any) { att(m)["data"] = "!!!!" })), 400, "not base64"},
		{"wrong length", bytes.NewReader(edit(func(m map[string]any) { att(m)["length"] = 7 })), 400, "its length says 7"},
		{"wrong sha512", bytes.NewReader(edit(func(m map[string]any) {
			dist(m)["integrity"] = "sha512-" + base64.StdEncoding.EncodeToString(make([]byte, 64))
		})), 400, "dist.integrity"},
		{"wrong sha1", bytes.NewReader(edit(func(m map[string]any) { dist(m)["shasum"] = strings.Repeat("0", 40) })), 400, "dist.shasum"},
		{"two attachments", bytes.NewReader(edit(func(m map[string]any) {
			m["_attachments"].(map[string]any)["left-2.0.0.tgz"] = att(m)
		})), 400, "exactly one tarball"},
		{"escaping tar path", bytes.NewReader(body("left", "left-1.0.0.tgz", "1.0.0", escaping, escaping, nil)), 400, "leaves the package directory"},
		{"oversized metadata", bytes.NewReader(edit(func(m map[string]any) { m["readme"] = strings.Repeat("x", maxPublishMeta) })), 413, "without its tarball"},
		{"truncated body", bytes.NewReader(good[:bytes.Index(good, []byte(`"data":"`))+40]), 400, "not a package document"},
		{"duplicate key", strings.NewReader(strings.Replace(string(good), `{"_attachments":`, `{"name":"left","_attachments":`, 1)), 400, "twice"},
		{"over MaxPublish", io.MultiReader(bytes.NewReader(good), strings.NewReader(strings.Repeat(" ", 1<<20)), &spaces{n: MaxPublish}), 413, "larger than 128 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			blobs, md := storetest.Embedded(t)
			srv := httptest.NewServer(New([]config.Feed{{Name: "f", Ecosystem: "npm", Kind: "hosted"}}, blobs, md, registry.Options{}))
			t.Cleanup(srv.Close)
			req, _ := http.NewRequestWithContext(t.Context(), "PUT", srv.URL+"/npm/f/left", c.body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct{ Error string }
			if resp.StatusCode != c.status || json.Unmarshal(out, &e) != nil || !strings.Contains(e.Error, c.want) {
				t.Errorf("%d %.300s; want %d naming %q", resp.StatusCode, out, c.status, c.want)
			}
			if repos, err := md.Repositories(t.Context(), "", 10); err != nil || len(repos) != 0 {
				t.Errorf("repositories after the refusal: %v %v", repos, err)
			}
			_ = blobs.Walk(t.Context(), func(d digest.Digest, _ int64) error {
				t.Errorf("blob %s stored after the refusal", d)
				return nil
			})
			_ = blobs.Uploads(t.Context(), func(id string, _ time.Time) error {
				t.Errorf("upload %s left after the refusal", id)
				return nil
			})
		})
	}
	// The document refused above is fine as it is.
	srv := handler(t)
	if resp, out := call(t, "PUT", srv.URL+"/npm/f/left", "", good); resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d %s", resp.StatusCode, out)
	}
}

// spaces reads n spaces.
type spaces struct{ n int64 }

func (s *spaces) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), s.n))
	for i := range k {
		p[i] = ' '
	}
	s.n -= int64(k)
	return k, nil
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(b), 16) }
