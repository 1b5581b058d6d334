package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// readFromRecorder records whether io.Copy reached ReadFrom, the method
// net/http's response writer uses to call sendfile(2).
type readFromRecorder struct {
	*httptest.ResponseRecorder
	src io.Reader
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.src = src
	return io.Copy(r.ResponseRecorder, src)
}

// TestInstrumentKeepsZeroCopy checks that the metrics middleware hands a
// file to the underlying writer's ReadFrom unwrapped, so blob downloads
// keep the kernel's zero-copy path.
func TestInstrumentKeepsZeroCopy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, []byte("zero-copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	h := m.instrument(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// What http.ServeContent does with the blob file.
		if _, err := io.CopyN(w, f, 9); err != nil {
			t.Fatal(err)
		}
	}))
	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/x/blobs/sha256:00", nil))
	lr, ok := rec.src.(*io.LimitedReader)
	if !ok {
		t.Fatalf("ReadFrom got %T, want *io.LimitedReader of *os.File", rec.src)
	}
	if _, ok := lr.R.(*os.File); !ok {
		t.Fatalf("ReadFrom got a LimitedReader of %T, want *os.File", lr.R)
	}
	if rec.Body.String() != "zero-copy" {
		t.Fatalf("body = %q", rec.Body.String())
	}
}
