package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestDockerV1IsPlainNotFound: Docker's v1 API paths answer a plain 404,
// not the web interface's sign-in page, so clients that probe them
// (podman search asks /v1/search first) fall back to /v2/.
func TestDockerV1IsPlainNotFound(t *testing.T) {
	a := newAuthServer(t, nil)
	for _, p := range []string{"/v1/search?q=web", "/v1/_ping"} {
		req, err := http.NewRequest(http.MethodGet, a.hs.URL+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Transport{}).RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusNotFound || strings.Contains(ct, "html") {
			t.Errorf("GET %s: %d %s, want a plain 404", p, resp.StatusCode, ct)
		}
	}
}
