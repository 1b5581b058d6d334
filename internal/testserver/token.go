package testserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

var tokens atomic.Int64

// Token creates an API token as the admin for role ("reader", "writer",
// ...) on the repository patterns, and returns its secret.
func (s *Server) Token(t testing.TB, role string, patterns ...string) string {
	t.Helper()
	type scope struct {
		Role         string   `json:"role"`
		Repositories []string `json:"repositories"`
	}
	body, _ := json.Marshal(struct {
		Name   string  `json:"name"`
		Scopes []scope `json:"scopes"`
	}{fmt.Sprintf("test-%s-%d", role, tokens.Add(1)), []scope{{role, patterns}}})
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/tokens", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", s.AdminPassword())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var tok struct {
		Secret string `json:"secret"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(out, &tok) != nil || tok.Secret == "" {
		t.Fatalf("creating a %s token on %v: %d %s", role, patterns, resp.StatusCode, out)
	}
	return tok.Secret
}
