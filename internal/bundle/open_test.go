package bundle

import (
	"archive/tar"
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestOpenKeepsNothingBeforeTheSignature opens bundles with a large
// manifest.json and index.json that the trusted key did not sign: Open
// refuses them without reading either into memory (a verifier handed a
// hostile file stays flat, whatever sizes it declares within the caps).
func TestOpenKeepsNothingBeforeTheSignature(t *testing.T) {
	f := newFixture(t)
	for i := range 40000 {
		f.c.Request.Refs = append(f.c.Request.Refs, fmt.Sprintf("team/app@sha256:%064d", i))
	}
	f.c.Index = append(bytes.Repeat([]byte(" "), 32<<20), f.c.Index...)
	big := f.bytes(t)
	other := newFixture(t)
	// Signed by another key, with the other's trust.json.
	es := entries(t, big)
	for i, e := range es {
		if e.name == TrustPath {
			es[i].body = other.c.Trust
		}
	}
	forged := craft(t, es)
	for _, tc := range []struct {
		name string
		b    []byte
		fp   string
		want string
	}{
		{"another trust root", big, other.fp, "not the trusted"},
		{"another signer", forged, other.fp, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.b)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Open(p, tc.fp)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want %q", err, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
				t.Fatalf("Open allocated %d bytes before refusing an unsigned %d-byte bundle", alloc, len(tc.b))
			}
		})
	}
	// Signed by the trusted key, the same bundle opens.
	if _, err := openBytes(t, big, f.fp); err != nil {
		t.Fatal(err)
	}
}

// rawHeader is a ustar header block.
func rawHeader(name string, typeflag byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], "00000000000\x00")
	h[156] = typeflag
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := strconv.Itoa(n) + " " + k + "=" + v + "\n"
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// TestOpenRefusesSparseFiles writes the last blob of a valid bundle as a
// PAX (GNU 1.0) sparse file with one data fragment: its content is the
// same, but its bytes are not where the entry starts. Open refuses it
// rather than locating the blob at the wrong offset.
func TestOpenRefusesSparseFiles(t *testing.T) {
	f := newFixture(t)
	es := entries(t, f.bytes(t))
	last := es[len(es)-1]
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es[:len(es)-1] {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	size := strconv.Itoa(len(last.body))
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", last.name) + paxRecord("GNU.sparse.realsize", size)
	data := append(pad([]byte("1\n0\n"+size+"\n")), last.body...)
	buf.Write(rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(pax))))
	buf.Write(pad([]byte(pax)))
	buf.Write(rawHeader("GNUSparseFile.0/x", tar.TypeReg, int64(len(data))))
	buf.Write(pad(data))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	// The crafted entry reads back as the blob (Go's reader expands it).
	got := entries(t, buf.Bytes())
	if g := got[len(got)-1]; g.name != last.name || !bytes.Equal(g.body, last.body) {
		t.Fatalf("crafted sparse entry reads as %s %q", g.name, g.body)
	}
	if _, err := openBytes(t, buf.Bytes(), f.fp); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("Open of a bundle with a sparse file: %v", err)
	}
}

// TestOpenRefusesOmittedFilesOfAFullBundle: only a --metadata-only
// bundle leaves files out; a signed manifest that omits one without
// saying so is refused.
func TestOpenRefusesOmittedFilesOfAFullBundle(t *testing.T) {
	f := newFixture(t)
	f.c.Request.MetadataOnly = true
	for i, bf := range f.c.Blobs {
		if string(f.blobs[bf.Digest]) == "layer bytes" {
			f.c.Blobs[i].Omitted = true
		}
	}
	es := entries(t, f.bytes(t))
	if _, err := openBytes(t, craft(t, es), f.fp); err != nil {
		t.Fatal(err)
	}
	m := bytes.Replace(es[0].body, []byte(`"metadataOnly": true`), []byte(`"metadataOnly": false`), 1)
	if bytes.Equal(m, es[0].body) {
		t.Fatal("no metadataOnly in the manifest")
	}
	sig, err := f.sign(SignatureText(m))
	if err != nil {
		t.Fatal(err)
	}
	es[0].body, es[1].body = m, sig
	if _, err := openBytes(t, craft(t, es), f.fp); err == nil || !strings.Contains(err.Error(), "metadata-only") {
		t.Fatalf("Open of a full bundle omitting a file: %v", err)
	}
}

// TestOpenTarEncodings: names come from PAX records and GNU long-name
// entries as the tar reader resolves them, and are checked as resolved; a
// global PAX header is an entry of its own, refused.
func TestOpenTarEncodings(t *testing.T) {
	f := newFixture(t)
	es := entries(t, f.bytes(t))
	write := func(format tar.Format, extra func(tw *tar.Writer), rename func(string) string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		extra(tw)
		for _, e := range es {
			if err := tw.WriteHeader(&tar.Header{Name: rename(e.name), Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, Format: format}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	same := func(s string) string { return s }
	none := func(*tar.Writer) {}
	if _, err := openBytes(t, write(tar.FormatGNU, none, same), f.fp); err != nil {
		t.Fatalf("GNU format: %v", err)
	}
	long := strings.Repeat("x/", 60) + "../../"
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"PAX path with ..", write(tar.FormatPAX, none, func(s string) string {
			if strings.HasPrefix(s, BlobsDirectory) {
				return long + s
			}
			return s
		}), "leaves the bundle"},
		{"GNU long name with ..", write(tar.FormatGNU, none, func(s string) string {
			if strings.HasPrefix(s, BlobsDirectory) {
				return long + s
			}
			return s
		}), "leaves the bundle"},
		{"global header", write(tar.FormatPAX, func(tw *tar.Writer) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"path": "evil"}}); err != nil {
				t.Fatal(err)
			}
		}, same), "not a regular file"},
	} {
		if _, err := openBytes(t, tc.b, f.fp); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
