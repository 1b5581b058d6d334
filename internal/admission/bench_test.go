package admission_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/custody-dev/custody/internal/admission"
)

// BenchmarkReview measures one in-process review of a Deployment with
// three pinned images (decode, extract, parse, decide, encode).
func BenchmarkReview(b *testing.B) {
	h := admission.NewHandler(newPolicy(dApp, dSidecar, dInit), admission.Options{})
	body, err := json.Marshal(newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod",
		deployment(spec(ref("app", dApp), ref("sidecar", dSidecar), ref("init", dInit))), nil))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/admission", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"allowed":true`)) {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
