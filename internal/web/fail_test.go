package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/registry"
)

type failingAPI struct{}

func (failingAPI) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp 10.0.0.7:5432: secret internal detail")
}

// TestServerFailureShowsOnlyTheRequestID: when a page fails for a reason
// of the server's, the error page names the request ID and nothing of the
// internal error.
func TestServerFailureShowsOnlyTheRequestID(t *testing.T) {
	s, err := New(Options{API: failingAPI{}, Auth: true})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/repositories", nil)
	r = r.WithContext(registry.WithRequestID(r.Context(), "req-42"))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	body := w.Body.String()
	if w.Code != http.StatusInternalServerError || !strings.Contains(body, "req-42") || strings.Contains(body, "secret internal detail") || strings.Contains(body, "10.0.0.7") {
		t.Fatalf("%d\n%s", w.Code, body)
	}
	if w.Header().Get("Content-Security-Policy") != ContentSecurityPolicy {
		t.Fatal("the error page has no CSP")
	}
}
