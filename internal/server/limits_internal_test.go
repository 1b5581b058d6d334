package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAddsDataCoversGoFeeds: a module publish is refused on a full disk
// like any other upload; downloads are not.
func TestAddsDataCoversGoFeeds(t *testing.T) {
	if !addsData(httptest.NewRequest(http.MethodPut, "/go/gomods/example.test/m/@v/v1.0.0.zip", nil)) {
		t.Error("a Go module publish is not counted as adding data")
	}
	if addsData(httptest.NewRequest(http.MethodGet, "/go/gomods/example.test/m/@v/v1.0.0.zip", nil)) {
		t.Error("a Go module download is counted as adding data")
	}
}
