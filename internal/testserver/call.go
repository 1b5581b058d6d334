package testserver

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// noRedirects is the client of Do: a test sees a redirect itself.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Do sends a request to url with body and returns the answer, its body
// read and closed; a failure to send it fails t. cred is the credential:
// "bearer:<token>", "basic:<user>:<password>" or "" for none. header are
// name, value pairs ("Content-Type", "application/json"); a pair with an
// empty value is left out. Redirects are not followed.
func Do(t testing.TB, method, url, cred string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	switch {
	case strings.HasPrefix(cred, "bearer:"):
		req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(cred, "bearer:"))
	case strings.HasPrefix(cred, "basic:"):
		u, p, _ := strings.Cut(strings.TrimPrefix(cred, "basic:"), ":")
		req.SetBasicAuth(u, p)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// Call is Do to path on the server.
func (s *Server) Call(t testing.TB, method, path, cred string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	return Do(t, method, s.URL+path, cred, body, header...)
}

// Basic is the credential of Do for user and password: "" when user is.
func Basic(user, password string) string {
	if user == "" {
		return ""
	}
	return "basic:" + user + ":" + password
}
