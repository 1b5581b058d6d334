package apiclient

import (
	"net/http"
	"testing"
)

// FuzzDecodeError feeds error answers of any shape to the decoder: it
// must keep the status and always say something.
func FuzzDecodeError(f *testing.F) {
	for _, s := range []string{
		`{"type":"https://custody.dev/problems/x","title":"T","status":409,"detail":"d"}`,
		`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m","detail":{}}]}`,
		`{"errors":[{}]}`,
		`{"title":""}`,
		`not json`,
		``,
		`null`,
		`[]`,
	} {
		f.Add(404, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 300 || status > 999 {
			return
		}
		e := decodeError(&http.Response{StatusCode: status}, body)
		if e.Status != status {
			t.Fatalf("status %d decoded as %d", status, e.Status)
		}
		if e.Error() == "" {
			t.Fatal("empty error text")
		}
	})
}
