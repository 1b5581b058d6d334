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

// TestAddsDataCoversMavenFeeds: a Maven deploy is refused on a full disk
// like any other upload; resolving is not.
func TestAddsDataCoversMavenFeeds(t *testing.T) {
	if !addsData(httptest.NewRequest(http.MethodPut, "/maven/m/com/example/demo/1.0/demo-1.0.jar", nil)) {
		t.Error("a Maven deploy is not counted as adding data")
	}
	if addsData(httptest.NewRequest(http.MethodGet, "/maven/m/com/example/demo/1.0/demo-1.0.jar", nil)) {
		t.Error("a Maven download is counted as adding data")
	}
}
