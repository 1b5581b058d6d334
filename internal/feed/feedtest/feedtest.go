// Package feedtest builds the archives the package feeds' tests publish:
// zips of given entries and zips crafted to attack a reader.
package feedtest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// Zip builds a zip of files (name -> content), the names taken as they
// are (so a test can write entries outside a package's directory), each
// stored uncompressed.
func Zip(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, c := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(c))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Wheel builds a pure-Python wheel (py3-none-any) of project (a
// normalised name) at version: files (name, content) in order, then the
// .dist-info's METADATA (its fields Name, Version, the extra fields as
// "Key: value\n" lines, and Summary), WHEEL, and the RECORD of them all.
func Wheel(t testing.TB, project, version, extra string, files ...[2]string) []byte {
	t.Helper()
	info := strings.ReplaceAll(project, "-", "_") + "-" + version + ".dist-info/"
	files = append(files,
		[2]string{info + "METADATA", "Metadata-Version: 2.1\nName: " + project + "\nVersion: " + version + "\n" + extra + "Summary: a test package\n"},
		[2]string{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: custody-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"})
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(f[1]))
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	record.WriteString(info + "RECORD,,\n")
	w, _ := zw.Create(info + "RECORD")
	_, _ = w.Write([]byte(record.String()))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BareZipDirectory is a zip that is nothing but n central directory
// records named "a" and the end record (which states n modulo 65536, as
// archive/zip checks): 47 bytes an entry, which archive/zip holds at
// about five times that in memory.
func BareZipDirectory(n int) []byte {
	var b bytes.Buffer
	rec := make([]byte, 46)
	binary.LittleEndian.PutUint32(rec[0:], 0x02014b50)
	binary.LittleEndian.PutUint16(rec[4:], 20)
	binary.LittleEndian.PutUint16(rec[6:], 20)
	binary.LittleEndian.PutUint16(rec[28:], 1) // name length
	for range n {
		b.Write(rec)
		b.WriteByte('a')
	}
	dirSize := b.Len()
	end := make([]byte, 22)
	binary.LittleEndian.PutUint32(end[0:], 0x06054b50)
	binary.LittleEndian.PutUint16(end[8:], uint16(n))
	binary.LittleEndian.PutUint16(end[10:], uint16(n))
	binary.LittleEndian.PutUint32(end[12:], uint32(dirSize))
	b.Write(end)
	return b.Bytes()
}
