package registry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/custody-dev/custody/internal/testserver"
)

// This file sends custody what the spec says to refuse and checks, for
// every refusal, the status, the error code, and that nothing changed.

// specRawExchange sends a hand-written request head over TCP, then streams
// body (written as chunked encoding when chunked is set) while reading the
// response concurrently, so an early answer is always seen.
func specRawExchange(t testing.TB, addr, head string, body io.Reader, chunked bool) specReply {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("writing request head: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if body == nil {
			return
		}
		if chunked {
			cw := httputil.NewChunkedWriter(conn)
			if _, err := io.Copy(cw, body); err != nil {
				return
			}
			_ = cw.Close()
			_, _ = io.WriteString(conn, "\r\n")
			return
		}
		_, _ = io.Copy(conn, body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	conn.Close()
	<-done
	return specReply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// specSpaces yields n spaces without holding it.
type specSpaces struct{ n int64 }

func (e *specSpaces) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	for i := range p {
		p[i] = ' '
	}
	e.n -= int64(len(p))
	return len(p), nil
}

func TestBadInput(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	a := newSpecClient(srv)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", srv.Logs())
		}
	})
	const repo = "bad/app"
	img := a.pushImage(t, repo, "base", 1, nil)

	t.Run("digest mismatch on monolithic upload", func(t *testing.T) {
		data := specRandBytes(t, 1000)
		claimed := digest.FromString("something else")
		r := a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", claimed.String()), data)
		specWantError(t, "POST ?digest= mismatch", r, 400, "DIGEST_INVALID")
		loc := a.startUpload(t, repo)
		r = a.do(t, "PUT", specQuery(t, loc, "digest", claimed.String()), data)
		specWantError(t, "PUT mismatch", r, 400, "DIGEST_INVALID")
		if a.blobExists(t, repo, claimed) || a.blobExists(t, repo, digest.FromBytes(data)) {
			t.Fatal("a mismatching upload left a blob")
		}
		// sha512 as well.
		claimed512 := digest.SHA512.FromString("other")
		r = a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", claimed512.String()), data)
		specWantError(t, "POST sha512 mismatch", r, 400, "DIGEST_INVALID")
		if a.blobExists(t, repo, claimed512) {
			t.Fatal("a mismatching sha512 upload left a blob")
		}
	})

	t.Run("digest mismatch on chunked upload", func(t *testing.T) {
		data := specRandBytes(t, 2000)
		claimed := digest.FromString("not this")
		loc := a.startUpload(t, repo)
		r := a.do(t, "PATCH", loc, data[:1000], "Content-Type", "application/octet-stream", "Content-Range", "0-999")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		loc = specLocation(t, "PATCH", r)
		r = a.do(t, "PUT", specQuery(t, loc, "digest", claimed.String()), data[1000:],
			"Content-Type", "application/octet-stream", "Content-Range", "1000-1999")
		specWantError(t, "PUT mismatch", r, 400, "DIGEST_INVALID")
		if a.blobExists(t, repo, claimed) || a.blobExists(t, repo, digest.FromBytes(data)) {
			t.Fatal("a mismatching chunked upload left a blob")
		}
	})

	t.Run("manifest digest mismatch (trailing whitespace)", func(t *testing.T) {
		m := a.buildImage(t, repo, 1, nil)
		body := append(slices.Clone(m.manifest), '\n')
		r := a.putManifest(t, repo, specQuery(t, m.digest.String(), "tag", "ws"), mtOCIManifest, body)
		specWantError(t, "PUT with trailing whitespace", r, 400, "DIGEST_INVALID")
		if a.manifestExists(t, repo, m.digest.String()) || a.manifestExists(t, repo, digest.FromBytes(body).String()) ||
			a.manifestExists(t, repo, "ws") {
			t.Fatal("a refused manifest was stored")
		}
		// Digest of another algorithm's content.
		r = a.putManifest(t, repo, digest.SHA512.FromBytes(m.manifest).String()[:7]+strings.Repeat("a", 128), mtOCIManifest, m.manifest)
		specWantError(t, "PUT under a wrong sha512", r, 400, "DIGEST_INVALID")
	})

	t.Run("malformed digests", func(t *testing.T) {
		good := digest.FromString("x").Encoded()
		bad := []string{
			"sha256:xyz",
			"sha256:" + strings.ToUpper(good),
			"sha256:" + good[:63],
			"sha256:" + good + "a",
			"sha384:" + strings.Repeat("a", 96),
			"md5:" + strings.Repeat("a", 32),
			"foo:" + good,
			"sha512:" + good,
			"sha256:",
			":" + good,
			"sha256" + good,
		}
		data := []byte("payload for bad digests")
		loc := a.startUpload(t, repo)
		for _, d := range bad {
			t.Run(d[:min(len(d), 12)], func(t *testing.T) {
				q := specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", d)
				specWantError(t, "POST ?digest="+d, a.do(t, "POST", q, data), 400, "DIGEST_INVALID")
				specWantError(t, "PUT ?digest="+d, a.do(t, "PUT", specQuery(t, loc, "digest", d), nil), 400, "DIGEST_INVALID")
				specWantError(t, "POST ?mount="+d, a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "mount", d, "from", repo), nil), 400, "DIGEST_INVALID")
				if strings.Contains(d, ":") && !strings.HasPrefix(d, ":") {
					specWantError(t, "GET blob "+d, a.do(t, "GET", "/v2/"+repo+"/blobs/"+d, nil), 400, "DIGEST_INVALID")
					specWantStatus(t, "HEAD blob "+d, a.do(t, "HEAD", "/v2/"+repo+"/blobs/"+d, nil), 400)
					specWantError(t, "DELETE blob "+d, a.do(t, "DELETE", "/v2/"+repo+"/blobs/"+d, nil), 400, "DIGEST_INVALID")
					specWantError(t, "GET manifest "+d, a.do(t, "GET", "/v2/"+repo+"/manifests/"+d, nil), 400, "DIGEST_INVALID")
					specWantError(t, "PUT manifest "+d, a.putManifest(t, repo, d, mtOCIManifest, img.manifest), 400, "DIGEST_INVALID")
					specWantError(t, "DELETE manifest "+d, a.do(t, "DELETE", "/v2/"+repo+"/manifests/"+d, nil), 400, "DIGEST_INVALID")
					specWantError(t, "referrers "+d, a.do(t, "GET", "/v2/"+repo+"/referrers/"+d, nil), 400, "DIGEST_INVALID")
				}
				// A descriptor with the bad digest makes the manifest invalid.
				m := specJSON(t, map[string]any{
					"schemaVersion": 2, "mediaType": mtOCIManifest,
					"config": map[string]any{"mediaType": mtOCIConfig, "digest": d, "size": 2},
					"layers": []any{},
				})
				specWantError(t, "manifest with "+d, a.putManifest(t, repo, "baddesc", mtOCIManifest, m), 400, "MANIFEST_INVALID")
			})
		}
		// The session survived every refused PUT.
		r := a.do(t, "GET", loc, nil)
		specWantStatus(t, "session after refusals", r, http.StatusNoContent)
		specWantHeader(t, "session after refusals", r, "Range", "0-0")
		if a.blobExists(t, repo, digest.FromBytes(data)) || a.manifestExists(t, repo, "baddesc") {
			t.Fatal("something was stored under a malformed digest")
		}
	})

	t.Run("manifest over 4 MiB", func(t *testing.T) {
		const limit = 4 << 20
		// Valid JSON just over the limit: a big annotation.
		big := a.buildImage(t, repo, 1, func(m *ocispec.Manifest) {
			m.Annotations = map[string]string{"pad": strings.Repeat("x", limit)}
		})
		if len(big.manifest) <= limit {
			t.Fatalf("test manifest is %d bytes", len(big.manifest))
		}
		head := func(extra string) string {
			return "PUT /v2/" + repo + "/manifests/big HTTP/1.1\r\nHost: " + srv.Host() +
				"\r\nContent-Type: " + mtOCIManifest + "\r\n" + extra + "\r\n"
		}
		r := specRawExchange(t, srv.Host(), head("Content-Length: "+strconv.Itoa(len(big.manifest))+"\r\n"), bytes.NewReader(big.manifest), false)
		specWantError(t, "PUT 4 MiB+ with Content-Length", r, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
		r = specRawExchange(t, srv.Host(), head("Transfer-Encoding: chunked\r\n"), bytes.NewReader(big.manifest), true)
		specWantError(t, "PUT 4 MiB+ chunked", r, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
		// A far bigger chunked body is cut off just as early.
		r = specRawExchange(t, srv.Host(), head("Transfer-Encoding: chunked\r\n"), &specSpaces{n: 256 << 20}, true)
		specWantError(t, "PUT 256 MiB chunked", r, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
		// By digest too.
		r = specRawExchange(t, srv.Host(), strings.Replace(head("Transfer-Encoding: chunked\r\n"), "/manifests/big", "/manifests/"+big.digest.String(), 1),
			bytes.NewReader(big.manifest), true)
		specWantError(t, "PUT 4 MiB+ by digest", r, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
		// A Content-Length smaller than the body: net/http reads only what
		// the header announces, which is not a whole manifest.
		r = specRawExchange(t, srv.Host(), head("Content-Length: 100\r\n"), bytes.NewReader(big.manifest), false)
		specWantError(t, "PUT with a lying Content-Length", r, 400, "MANIFEST_INVALID")
		if a.manifestExists(t, repo, "big") || a.manifestExists(t, repo, big.digest.String()) {
			t.Fatal("an oversized manifest was stored")
		}
		// Exactly at the limit is accepted.
		var m0 ocispec.Manifest
		a.buildImage(t, repo, 0, func(m *ocispec.Manifest) { m0 = *m })
		m0.Annotations = map[string]string{"pad": ""}
		m0.Annotations["pad"] = strings.Repeat("x", limit-len(specJSON(t, m0)))
		atLimit := specJSON(t, m0)
		if len(atLimit) != limit {
			t.Fatalf("at-limit manifest is %d bytes", len(atLimit))
		}
		a.mustPutManifest(t, repo, "atlimit", mtOCIManifest, atLimit)
	})

	t.Run("index and manifest at once", func(t *testing.T) {
		m := a.buildImage(t, repo, 1, nil)
		var doc map[string]any
		specUnmarshal(t, m.manifest, &doc)
		doc["manifests"] = []any{map[string]any{"mediaType": mtOCIManifest, "digest": img.digest, "size": len(img.manifest)}}
		body := specJSON(t, doc)
		for _, ct := range []string{mtOCIManifest, mtOCIIndex, ""} {
			delete(doc, "mediaType")
			b := body
			if ct == "" {
				b = specJSON(t, doc)
			}
			r := a.putManifest(t, repo, "both", ct, b)
			specWantError(t, "manifests+layers as "+ct, r, 400, "MANIFEST_INVALID")
		}
		if a.manifestExists(t, repo, "both") || a.manifestExists(t, repo, digest.FromBytes(body).String()) {
			t.Fatal("ambiguous document stored")
		}
	})

	t.Run("mediaType contradicting Content-Type", func(t *testing.T) {
		m := a.buildImage(t, repo, 1, nil)
		for _, ct := range []string{mtOCIIndex, mtDockerManifest, "application/json"} {
			r := a.putManifest(t, repo, "contra", ct, m.manifest)
			specWantError(t, "Content-Type "+ct, r, 400, "MANIFEST_INVALID")
		}
		if a.manifestExists(t, repo, "contra") || a.manifestExists(t, repo, m.digest.String()) {
			t.Fatal("contradicting manifest stored")
		}
	})

	t.Run("invalid manifest documents", func(t *testing.T) {
		cfg := `{"mediaType":"` + mtOCIConfig + `","digest":"` + digest.FromBytes(img.config).String() + `","size":` + strconv.Itoa(len(img.config)) + `}`
		absentLayer := `{"mediaType":"` + mtOCILayer + `","digest":"` + digest.FromString("absent layer").String() + `","size":12}`
		docs := map[string]string{
			"not JSON":            `{"schemaVersion":2,`,
			"array":               `[]`,
			"schemaVersion 1":     `{"schemaVersion":1,"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"a/b","digest":"` + img.digest.String() + `","size":1},"layers":[]}`,
			"no schemaVersion":    `{"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"a/b","digest":"` + img.digest.String() + `","size":1},"layers":[]}`,
			"no config":           `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","layers":[]}`,
			"unknown media type":  `{"schemaVersion":2,"mediaType":"application/x-unknown","config":{"mediaType":"a/b","digest":"` + img.digest.String() + `","size":1}}`,
			"negative size":       `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"a/b","digest":"` + img.digest.String() + `","size":-1},"layers":[]}`,
			"descriptor no type":  `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":{"digest":"` + img.digest.String() + `","size":1},"layers":[]}`,
			"schema1":             `{"schemaVersion":2,"name":"x","tag":"y","fsLayers":[]}`,
			"empty body":          ``,
			"index with config":   `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","config":{"mediaType":"a/b","digest":"` + img.digest.String() + `","size":1}}`,
			"docker artifactType": `{"schemaVersion":2,"mediaType":"` + mtDockerManifest + `","artifactType":"a/b","config":{"mediaType":"a/b","digest":"` + img.digest.String() + `","size":1},"layers":[]}`,
			// Parsers keeping the first of two equal names would see a
			// layer that is not in the repository; encoding/json keeps
			// the last (and folds case for struct fields).
			"duplicate layers":      `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":` + cfg + `,"layers":[` + absentLayer + `],"layers":[]}`,
			"case-folded layers":    `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":` + cfg + `,"layers":[` + absentLayer + `],"Layers":[]}`,
			"duplicate in a config": `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"` + mtOCIConfig + `","digest":"` + digest.FromString("absent").String() + `","digest":"` + digest.FromBytes(img.config).String() + `","size":` + strconv.Itoa(len(img.config)) + `},"layers":[]}`,
		}
		for name, doc := range docs {
			ct := mtOCIManifest
			if strings.Contains(doc, mtOCIIndex) {
				ct = mtOCIIndex
			} else if strings.Contains(doc, mtDockerManifest) {
				ct = mtDockerManifest
			} else if strings.Contains(doc, "application/x-unknown") {
				ct = ""
			}
			r := a.putManifest(t, repo, "invalid", ct, []byte(doc))
			specWantError(t, name, r, 400, "MANIFEST_INVALID")
			d := digest.FromString(doc)
			if a.manifestExists(t, repo, d.String()) || a.blobExists(t, repo, d) {
				t.Fatalf("%s: refused manifest stored", name)
			}
		}
		if a.manifestExists(t, repo, "invalid") {
			t.Fatal("invalid manifest stored")
		}
	})

	t.Run("manifest referencing absent blobs", func(t *testing.T) {
		absent := digest.FromString("absent layer")
		m := a.buildImage(t, repo, 1, func(m *ocispec.Manifest) {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mtOCILayer, Digest: absent, Size: 12})
		})
		specWantError(t, "absent layer", a.putManifest(t, repo, "absent", mtOCIManifest, m.manifest), 400, "MANIFEST_BLOB_UNKNOWN")
		m2 := a.buildImage(t, repo, 1, func(m *ocispec.Manifest) {
			m.Config.Digest = digest.FromString("absent config")
		})
		specWantError(t, "absent config", a.putManifest(t, repo, "absent", mtOCIManifest, m2.manifest), 400, "MANIFEST_BLOB_UNKNOWN")
		// A blob of another repository does not count.
		other := specRandBytes(t, 300)
		od := a.pushBlob(t, "bad/elsewhere", other)
		m3 := a.buildImage(t, repo, 0, func(m *ocispec.Manifest) {
			m.Layers = []ocispec.Descriptor{{MediaType: mtOCILayer, Digest: od, Size: int64(len(other))}}
		})
		specWantError(t, "blob of another repository", a.putManifest(t, repo, "absent", mtOCIManifest, m3.manifest), 400, "MANIFEST_BLOB_UNKNOWN")
		// A size that disagrees with the blob.
		m4 := a.buildImage(t, repo, 1, func(m *ocispec.Manifest) { m.Layers[0].Size++ })
		specWantError(t, "wrong layer size", a.putManifest(t, repo, "absent", mtOCIManifest, m4.manifest), 400, "MANIFEST_INVALID")
		for _, x := range []specImage{m, m2, m3, m4} {
			if a.manifestExists(t, repo, x.digest.String()) {
				t.Fatal("manifest with absent blobs stored")
			}
		}
		if a.manifestExists(t, repo, "absent") {
			t.Fatal("tag of a refused manifest created")
		}
	})

	t.Run("index referencing an absent manifest", func(t *testing.T) {
		missing := ocispec.Descriptor{MediaType: mtOCIManifest, Digest: digest.FromString("missing manifest"), Size: 100}
		body := specJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": []any{img.desc, missing}})
		specWantError(t, "absent child", a.putManifest(t, repo, "idx", mtOCIIndex, body), 400, "MANIFEST_BLOB_UNKNOWN")
		// A child of another repository does not count either.
		other := a.pushImage(t, "bad/elsewhere", "x", 0, nil)
		body2 := specJSON(t, map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": []any{other.desc}})
		specWantError(t, "child of another repo", a.putManifest(t, repo, "idx", mtOCIIndex, body2), 400, "MANIFEST_BLOB_UNKNOWN")
		if a.manifestExists(t, repo, "idx") || a.manifestExists(t, repo, digest.FromBytes(body).String()) {
			t.Fatal("index with an absent child stored")
		}
	})

	t.Run("final size mismatch", func(t *testing.T) {
		data := specRandBytes(t, 100)
		d := digest.FromBytes(data)
		loc := a.startUpload(t, repo)
		r := a.do(t, "PATCH", loc, data[:50], "Content-Type", "application/octet-stream", "Content-Range", "0-49")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		loc = specLocation(t, "PATCH", r)
		// Content-Range announces 50 bytes, the body has 40.
		r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), data[50:90],
			"Content-Type", "application/octet-stream", "Content-Range", "50-99")
		specWantError(t, "PUT range/length disagree", r, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
		st := a.do(t, "GET", loc, nil)
		specWantHeader(t, "status after refusal", st, "Range", "0-49")
		// A final PUT that ends short of the digest's content.
		r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), data[50:90],
			"Content-Type", "application/octet-stream", "Content-Range", "50-89")
		specWantError(t, "PUT short", r, 400, "DIGEST_INVALID")
		if a.blobExists(t, repo, d) {
			t.Fatal("short upload stored")
		}
		// A refused commit keeps the session, and its final chunk (the
		// spec leaves this open): continue from where it says it is.
		st = a.do(t, "GET", loc, nil)
		specWantStatus(t, "status after refused final PUT", st, http.StatusNoContent)
		acked, err := strconv.Atoi(strings.TrimPrefix(st.Header.Get("Range"), "0-"))
		if err != nil || (acked != 49 && acked != 89) {
			t.Fatalf("Range after refused final PUT: %q", st.Header.Get("Range"))
		}
		acked++
		if a.blobExists(t, repo, d) {
			t.Fatal("short upload stored")
		}
		// Bodies shorter than their Content-Length (the client half-closes).
		cut := func(t *testing.T, method, path string, declared int, send []byte, extra string) specReply {
			t.Helper()
			head := method + " " + path + " HTTP/1.1\r\nHost: " + srv.Host() +
				"\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(declared) + "\r\n" + extra + "\r\n"
			conn, err := net.Dial("tcp", srv.Host())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			_, _ = io.WriteString(conn, head)
			_, _ = conn.Write(send)
			_ = conn.(*net.TCPConn).CloseWrite()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s %s cut short: no response: %v", method, path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return specReply{Status: resp.StatusCode, Header: resp.Header, Body: b}
		}
		r = cut(t, "PUT", specQuery(t, a.startUpload(t, repo), "digest", d.String()), 100, data[:60], "")
		specWantError(t, "monolithic PUT cut short", r, 400, "BLOB_UPLOAD_INVALID")
		r = cut(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "digest", d.String()), 100, data[:60], "")
		specWantError(t, "POST ?digest= cut short", r, 400, "BLOB_UPLOAD_INVALID")
		r = cut(t, "PATCH", loc, 100-acked, data[acked:acked+5], "")
		specWantError(t, "PATCH cut short", r, 400, "BLOB_UPLOAD_INVALID")
		r = cut(t, "PUT", specQuery(t, loc, "digest", d.String()), 100-acked, data[acked:acked+5], fmt.Sprintf("Content-Range: %d-99\r\n", acked))
		specWantError(t, "final PUT cut short", r, 400, "BLOB_UPLOAD_INVALID")
		st = a.do(t, "GET", loc, nil)
		specWantHeader(t, "status after cut-short chunks", st, "Range", fmt.Sprintf("0-%d", acked-1))
		if a.blobExists(t, repo, d) {
			t.Fatal("truncated upload stored")
		}
		// The session still completes.
		r = a.do(t, "PUT", specQuery(t, loc, "digest", d.String()), data[acked:],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-99", acked))
		specWantStatus(t, "PUT after cut-short chunks", r, http.StatusCreated)
	})

	t.Run("malformed chunked bodies", func(t *testing.T) {
		// Broken chunked encoding is the client's error: 400 in the
		// endpoint's error format, a warning in the log (never an
		// ERROR), and nothing stored.
		bodies := map[string]string{
			"invalid chunk length":   "5\r\nhello\r\nzz\r\n",
			"chunk without its CRLF": "5\r\nhelloXX",
		}
		errorsBefore := strings.Count(srv.Logs(), "level=ERROR")
		warnings := strings.Count(srv.Logs(), "request body unreadable")
		raw := func(method, target, extra string, body string) specReply {
			head := method + " " + target + " HTTP/1.1\r\nHost: " + srv.Host() + "\r\nTransfer-Encoding: chunked\r\n" + extra + "\r\n"
			return specRawExchange(t, srv.Host(), head, strings.NewReader(body), false)
		}
		for name, body := range bodies {
			loc := a.startUpload(t, repo)
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			r := raw("PATCH", u.RequestURI(), "Content-Type: application/octet-stream\r\n", body)
			specWantError(t, name+": PATCH", r, 400, "BLOB_UPLOAD_INVALID")
			st := a.do(t, "GET", loc, nil)
			specWantStatus(t, name+": upload status", st, http.StatusNoContent)
			if rg := st.Header.Get("Range"); rg != "" && rg != "0-0" {
				t.Fatalf("%s: a broken chunk advanced the upload to %q", name, rg)
			}

			d := digest.FromString("hello")
			r = raw("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "Content-Type: application/octet-stream\r\n", body)
			specWantError(t, name+": monolithic POST", r, 400, "BLOB_UPLOAD_INVALID")
			if a.blobExists(t, repo, d) {
				t.Fatalf("%s: a broken monolithic upload stored a blob", name)
			}

			r = raw("PUT", "/generic/bad/chunked/1.0/file", "", body)
			if r.Status != 400 || !strings.Contains(r.Header.Get("Content-Type"), "application/problem+json") || !strings.Contains(string(r.Body), "unreadable-body") {
				t.Fatalf("%s: generic PUT answered %s (%s)", name, r, r.Header.Get("Content-Type"))
			}
			if got := a.do(t, "GET", "/generic/bad/chunked/1.0/file", nil); got.Status != http.StatusNotFound {
				t.Fatalf("%s: a broken generic upload is served: %s", name, got)
			}
		}
		// Three warnings per body; poll for them (the log is a pipe),
		// then no ERROR may have been logged before them.
		want := warnings + 3*len(bodies)
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(srv.Logs(), "request body unreadable") < want {
			if time.Now().After(deadline) {
				t.Fatalf("expected %d warnings about unreadable bodies; logs:\n%s", want-warnings, srv.Logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
		logs := srv.Logs()
		if n := strings.Count(logs, "level=ERROR"); n != errorsBefore {
			t.Fatalf("malformed bodies were logged as errors:\n%s", logs)
		}
		if !strings.Contains(logs, "level=WARN msg=\"request body unreadable\"") {
			t.Fatalf("no warning for unreadable bodies:\n%s", logs)
		}
	})

	t.Run("overlapping chunk", func(t *testing.T) {
		data := specRandBytes(t, 30)
		loc := a.startUpload(t, repo)
		r := a.do(t, "PATCH", loc, data[:20], "Content-Type", "application/octet-stream", "Content-Range", "0-19")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		loc = specLocation(t, "PATCH", r)
		for _, cr := range []string{"10-29", "0-19", "19-28", "21-30"} {
			s, e, _ := strings.Cut(cr, "-")
			si, _ := strconv.Atoi(s)
			ei, _ := strconv.Atoi(e)
			chunk := make([]byte, ei-si+1)
			r = a.do(t, "PATCH", loc, chunk, "Content-Type", "application/octet-stream", "Content-Range", cr)
			specWantError(t, "PATCH "+cr, r, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
			specWantHeader(t, "PATCH "+cr, r, "Range", "0-19")
		}
		for _, cr := range []string{"garbage", "5", "-5", "9-3", "+20-29", "bytes 20-"} {
			r = a.do(t, "PATCH", loc, []byte("x"), "Content-Type", "application/octet-stream", "Content-Range", cr)
			if r.Status != http.StatusRequestedRangeNotSatisfiable && r.Status != http.StatusBadRequest {
				t.Fatalf("PATCH Content-Range %q: %s", cr, r)
			}
		}
		st := a.do(t, "GET", loc, nil)
		specWantHeader(t, "status after overlaps", st, "Range", "0-19")
		r = a.do(t, "PUT", specQuery(t, loc, "digest", digest.FromBytes(data).String()), data[20:],
			"Content-Type", "application/octet-stream", "Content-Range", "20-29")
		specWantStatus(t, "PUT after refused overlaps", r, http.StatusCreated)
		got := a.do(t, "GET", "/v2/"+repo+"/blobs/"+digest.FromBytes(data).String(), nil)
		if !bytes.Equal(got.Body, data) {
			t.Fatal("content corrupted by refused chunks")
		}
	})

	t.Run("repository names", func(t *testing.T) {
		const marker = "evilmarker"
		blob := []byte("evil blob")
		bd := digest.FromBytes(blob)
		names := []string{
			"../" + marker + "1",
			"ok/../../" + marker + "2",
			"ok/../../../../../../tmp/" + marker + "3",
			"%2e%2e/" + marker + "4",
			"ok/%2e%2e/%2e%2e/" + marker + "5",
			"ok%2F..%2F..%2F" + marker + "6",
			marker + "7%2Fsub",
			"Evil" + marker + "8",
			marker + "9%00x",
			marker + "10\x00x",
			strings.Repeat("a", 300),
			strings.Repeat("a/", 130) + marker + "11",
			"/" + marker + "12",
			marker + "13/",
			marker + "14//sub",
			"." + marker + "15",
			marker + "16..x",
			marker + "17-",
			"_" + marker + "18",
			marker + "19/./x",
		}
		paths := func(name string) []string {
			base := "/v2/" + name
			return []string{
				base + "/blobs/uploads/?digest=" + bd.String(),
				base + "/manifests/latest",
				base + "/tags/list",
				base + "/blobs/" + bd.String(),
				base + "/referrers/" + bd.String(),
			}
		}
		checkRefusal := func(t *testing.T, what string, r specReply) {
			t.Helper()
			switch r.Status {
			case http.StatusBadRequest:
				if c := specErrorCode(r.Body); c != "NAME_INVALID" {
					t.Errorf("%s: 400 with code %q, want NAME_INVALID", what, c)
				}
			case http.StatusNotFound:
			default:
				t.Errorf("%s: %s, want 400 NAME_INVALID or 404 (never a redirect to another repository)", what, r)
			}
		}
		for _, name := range names {
			for i, p := range paths(name) {
				var r specReply
				if strings.ContainsAny(p, "\x00") {
					// net/http clients refuse a raw NUL; send it by hand.
					r = specRawExchange(t, srv.Host(), "GET "+p+" HTTP/1.1\r\nHost: "+srv.Host()+"\r\nConnection: close\r\n\r\n", nil, false)
					// net/http refuses the request line itself (plain-text 400).
					specWantStatus(t, "GET "+strconv.Quote(p), r, http.StatusBadRequest)
					continue
				}
				switch i {
				case 0:
					r = a.do(t, "POST", p, blob, "Content-Type", "application/octet-stream")
				case 1:
					r = a.do(t, "PUT", p, img.manifest, "Content-Type", mtOCIManifest)
				default:
					r = a.do(t, "GET", p, nil)
				}
				checkRefusal(t, strconv.Quote(p), r)
			}
		}
		// Also through the mount's from parameter.
		for _, from := range []string{"../" + repo, "Bad", "a//b", "/x", strings.Repeat("a", 300)} {
			r := a.do(t, "POST", specQuery(t, "/v2/"+repo+"/blobs/uploads/", "mount", img.digest.String(), "from", from), nil)
			if r.Status != http.StatusAccepted {
				specWantError(t, "mount from "+from, r, 400, "NAME_INVALID")
			}
		}
		// Nothing named after the marker exists anywhere near the data.
		for _, root := range []string{srv.Data, filepath.Dir(srv.Data), filepath.Dir(filepath.Dir(srv.Data)), os.TempDir()} {
			specNoMarker(t, root, marker, root != srv.Data && root != filepath.Dir(srv.Data))
		}
		all, _ := a.catalog(t, "")
		for _, n := range all {
			if strings.Contains(strings.ToLower(n), marker) || strings.Contains(n, "..") {
				t.Fatalf("catalog lists %q", n)
			}
		}
		if a.blobExists(t, repo, bd) {
			t.Fatal("evil blob linked into an unrelated repository")
		}
		// The longest valid name works.
		long := strings.Repeat("a", 255)
		a.pushBlob(t, long, blob)
		if !a.blobExists(t, long, bd) {
			t.Fatal("255-char name refused")
		}
	})

	t.Run("tags", func(t *testing.T) {
		bad := []string{strings.Repeat("t", 129), "-x", ".x", "a b", "a/b", "ta%2Fb", "é"}
		for _, tag := range bad {
			r := a.putManifest(t, repo, specEscapeTag(tag), mtOCIManifest, img.manifest)
			if r.Status != 400 && r.Status != 404 {
				t.Fatalf("PUT tag %q: %s", tag, r)
			}
			r = a.putManifest(t, repo, specQuery(t, img.digest.String(), "tag", tag), mtOCIManifest, img.manifest)
			specWantError(t, "PUT ?tag="+tag, r, 400, "MANIFEST_INVALID")
		}
		specWantError(t, "PUT tag -x", a.putManifest(t, repo, "-x", mtOCIManifest, img.manifest), 400, "MANIFEST_INVALID")
		specWantError(t, "PUT 129-char tag", a.putManifest(t, repo, strings.Repeat("t", 129), mtOCIManifest, img.manifest), 400, "MANIFEST_INVALID")
		specWantError(t, "PUT tag a:b", a.putManifest(t, repo, "a:b", mtOCIManifest, img.manifest), 400, "DIGEST_INVALID")
		specWantError(t, "GET 129-char tag", a.do(t, "GET", "/v2/"+repo+"/manifests/"+strings.Repeat("t", 129), nil), 400, "MANIFEST_INVALID")
		specWantError(t, "DELETE tag -x", a.do(t, "DELETE", "/v2/"+repo+"/manifests/-x", nil), 400, "MANIFEST_INVALID")
		// One bad ?tag= refuses the whole request, good tags included.
		m := a.buildImage(t, repo, 0, nil)
		r := a.putManifest(t, repo, specQuery(t, m.digest.String(), "tag", "fine", "tag", "-bad"), mtOCIManifest, m.manifest)
		specWantError(t, "PUT ?tag=fine&tag=-bad", r, 400, "MANIFEST_INVALID")
		if a.manifestExists(t, repo, "fine") || a.manifestExists(t, repo, m.digest.String()) {
			t.Fatal("partially valid tag list stored something")
		}
		tags, _ := a.tags(t, repo, "")
		for _, tag := range tags {
			if tag != "base" && tag != "atlimit" {
				t.Fatalf("unexpected tag %q after refusals: %v", tag, tags)
			}
		}
		// The longest valid tag works.
		a.mustPutManifest(t, repo, strings.Repeat("t", 128), mtOCIManifest, img.manifest)
	})

	t.Run("pagination parameters", func(t *testing.T) {
		for _, p := range []string{"/v2/" + repo + "/tags/list", "/v2/_catalog"} {
			start := time.Now()
			r := a.do(t, "GET", p+"?n=999999999999", nil)
			specWantStatus(t, p+" huge n", r, http.StatusOK)
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("%s huge n took %v", p, d)
			}
			if len(r.Body) > 1<<20 {
				t.Fatalf("%s huge n: %d bytes", p, len(r.Body))
			}
			for _, n := range []string{"-1", "abc", "1.5", "0x10", "99999999999999999999999"} {
				r := a.do(t, "GET", p+"?n="+n, nil)
				specWantError(t, p+" n="+n, r, 400, "PAGINATION_NUMBER_INVALID")
			}
		}
	})

	t.Run("wrong methods", func(t *testing.T) {
		loc := a.startUpload(t, repo)
		cases := []struct {
			method, path, allow string
		}{
			{"POST", "/v2/" + repo + "/manifests/base", "GET, HEAD, PUT, DELETE"},
			{"PATCH", "/v2/" + repo + "/manifests/base", "GET, HEAD, PUT, DELETE"},
			{"PUT", "/v2/" + repo + "/tags/list", "GET, HEAD"},
			{"DELETE", "/v2/" + repo + "/tags/list", "GET, HEAD"},
			{"POST", "/v2/" + repo + "/blobs/" + img.digest.String(), "GET, HEAD, DELETE"},
			{"PUT", "/v2/" + repo + "/blobs/" + img.digest.String(), "GET, HEAD, DELETE"},
			{"GET", "/v2/" + repo + "/blobs/uploads/", "POST"},
			{"PUT", "/v2/" + repo + "/blobs/uploads/", "POST"},
			{"POST", loc, "GET, PATCH, PUT, DELETE"},
			{"DELETE", "/v2/_catalog", "GET, HEAD"},
			{"PUT", "/v2/" + repo + "/referrers/" + img.digest.String(), "GET, HEAD"},
			{"POST", "/v2/", "GET, HEAD"},
			{"DELETE", "/v2/", "GET, HEAD"},
		}
		for _, c := range cases {
			r := a.do(t, c.method, c.path, []byte{})
			specWantError(t, c.method+" "+c.path, r, http.StatusMethodNotAllowed, "UNSUPPORTED")
			specWantHeader(t, c.method+" "+c.path, r, "Allow", c.allow)
		}
		// Every method the Allow header names is served.
		for _, c := range cases {
			for _, m := range strings.Split(c.allow, ", ") {
				if m == "DELETE" || m == "PUT" || m == "POST" || m == "PATCH" {
					continue // state changing; covered elsewhere
				}
				r := a.do(t, m, c.path, nil)
				if r.Status == http.StatusMethodNotAllowed {
					t.Errorf("%s %s: 405 although Allow lists %s", m, c.path, m)
				}
			}
		}
		if !a.manifestExists(t, repo, "base") {
			t.Fatal("manifest vanished after refused methods")
		}
	})

	t.Run("upload of another repository", func(t *testing.T) {
		data := specRandBytes(t, 100)
		loc := a.startUpload(t, repo)
		r := a.do(t, "PATCH", loc, data[:50], "Content-Type", "application/octet-stream")
		specWantStatus(t, "PATCH", r, http.StatusAccepted)
		loc = specLocation(t, "PATCH", r)
		id := loc[strings.LastIndex(loc, "/")+1:]
		other := "/v2/bad/thief/blobs/uploads/" + id
		specWantError(t, "GET", a.do(t, "GET", other, nil), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "PATCH", a.do(t, "PATCH", other, data[50:], "Content-Type", "application/octet-stream"), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "PUT", a.do(t, "PUT", specQuery(t, other, "digest", digest.FromBytes(data).String()), data[50:]), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "DELETE", a.do(t, "DELETE", other, nil), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "unknown ID", a.do(t, "GET", "/v2/"+repo+"/blobs/uploads/"+strings.Repeat("0", 32), nil), 404, "BLOB_UPLOAD_UNKNOWN")
		specWantError(t, "junk ID", a.do(t, "GET", "/v2/"+repo+"/blobs/uploads/..%2F..%2Fx", nil), 400, "NAME_INVALID")
		if a.blobExists(t, "bad/thief", digest.FromBytes(data)) {
			t.Fatal("blob appeared in the other repository")
		}
		// The session is intact in its own repository.
		st := a.do(t, "GET", loc, nil)
		specWantStatus(t, "own session", st, http.StatusNoContent)
		specWantHeader(t, "own session", st, "Range", "0-49")
		r = a.do(t, "PUT", specQuery(t, loc, "digest", digest.FromBytes(data).String()), data[50:])
		specWantStatus(t, "finish own session", r, http.StatusCreated)
	})

	t.Run("blob and manifest of another repository", func(t *testing.T) {
		specWantError(t, "DELETE blob via other repo", a.do(t, "DELETE", "/v2/bad/thief/blobs/"+img.desc.Digest.String(), nil), 404, "BLOB_UNKNOWN")
		specWantError(t, "DELETE manifest via other repo", a.do(t, "DELETE", "/v2/bad/thief/manifests/"+img.digest.String(), nil), 404, "MANIFEST_UNKNOWN")
		if !a.manifestExists(t, repo, img.digest.String()) {
			t.Fatal("manifest deleted through another repository")
		}
	})
}

func specUnmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// specNoMarker fails when a file or directory whose name contains marker
// exists under root. shallow limits the walk to root's entries.
func specNoMarker(t testing.TB, root, marker string, shallow bool) {
	t.Helper()
	if shallow {
		entries, err := os.ReadDir(root)
		if err != nil {
			return
		}
		for _, e := range entries {
			if strings.Contains(strings.ToLower(e.Name()), marker) {
				t.Fatalf("stray file %s", filepath.Join(root, e.Name()))
			}
		}
		return
	}
	_ = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.Contains(strings.ToLower(e.Name()), marker) {
			t.Fatalf("stray file %s", p)
		}
		return nil
	})
}

// specEscapeTag percent-encodes the bytes of tag a URL path cannot carry raw.
func specEscapeTag(tag string) string {
	var b strings.Builder
	for _, c := range []byte(tag) {
		if c <= ' ' || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
