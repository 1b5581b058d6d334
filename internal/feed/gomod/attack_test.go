package gomod

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
)

// bareZipDirectory is a zip of n central directory records named "a" and
// the end record only: 47 bytes an entry.
func bareZipDirectory(n int) []byte {
	var b bytes.Buffer
	rec := make([]byte, 46)
	binary.LittleEndian.PutUint32(rec[0:], 0x02014b50)
	binary.LittleEndian.PutUint16(rec[4:], 20)
	binary.LittleEndian.PutUint16(rec[6:], 20)
	binary.LittleEndian.PutUint16(rec[28:], 1)
	for range n {
		b.Write(rec)
		b.WriteByte('a')
	}
	end := make([]byte, 22)
	binary.LittleEndian.PutUint32(end[0:], 0x06054b50)
	binary.LittleEndian.PutUint16(end[8:], uint16(n))
	binary.LittleEndian.PutUint16(end[10:], uint16(n))
	binary.LittleEndian.PutUint32(end[12:], uint32(b.Len()))
	b.Write(end)
	return b.Bytes()
}

// TestPublishZipDirectoryBomb: golang.org/x/mod/zip.CheckZip lists a
// zip's whole directory, which archive/zip keeps in memory at about five
// times its size, so a 500 MiB publish of bare directory records held
// gigabytes. The directory is read with feed.OpenZip's budget first: a
// 400 naming the directory, and nothing stored.
func TestPublishZipDirectoryBomb(t *testing.T) {
	srv := handler(t)
	resp, out := call(t, "PUT", srv.URL+"/go/f/example.test/mod/@v/v1.0.0.zip", bareZipDirectory(1_000_000))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(out, "directory is larger than") || !strings.Contains(out, "nothing was stored") {
		t.Errorf("publish: %d %s; want 400 naming the directory", resp.StatusCode, out)
	}
	if resp, out := call(t, "GET", srv.URL+"/go/f/example.test/mod/@v/list", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("@v/list after the refusal: %d %s", resp.StatusCode, out)
	}
}
