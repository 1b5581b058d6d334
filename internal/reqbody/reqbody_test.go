package reqbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }
func (failing) Close() error               { return nil }

func TestFailed(t *testing.T) {
	cause := errors.New("malformed chunked encoding")
	r := httptest.NewRequest("PUT", "/", nil)
	r.Body = failing{cause}
	Wrap(r)
	Wrap(r)
	_, err := io.ReadAll(r.Body)
	if !errors.Is(err, cause) {
		t.Fatalf("read error %v does not wrap the cause", err)
	}
	// Wrapped by a store, or flattened to text by one.
	for _, stored := range []error{fmt.Errorf("put: %w", err), errors.New("put: " + err.Error())} {
		e := Failed(r, stored)
		if e == nil || !errors.Is(e, cause) || e.Status() != http.StatusBadRequest {
			t.Fatalf("Failed(%v) = %v", stored, e)
		}
	}
	if Failed(r, nil) != nil {
		t.Fatal("Failed(nil) is not nil")
	}
	// A healthy body: store errors stay the store's.
	ok := httptest.NewRequest("PUT", "/", strings.NewReader("data"))
	Wrap(ok)
	if _, err := io.ReadAll(ok.Body); err != nil {
		t.Fatal(err)
	}
	if e := Failed(ok, errors.New("disk full")); e != nil {
		t.Fatalf("a storage error was taken for the client's: %v", e)
	}
	// Over a limit: 413.
	big := httptest.NewRequest("PUT", "/", strings.NewReader(strings.Repeat("x", 100)))
	big.Body = http.MaxBytesReader(httptest.NewRecorder(), big.Body, 10)
	Wrap(big)
	_, err = io.ReadAll(big.Body)
	if e := Failed(big, err); e == nil || e.Status() != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit: %v", e)
	}
}
