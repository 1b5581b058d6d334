package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kjson "k8s.io/apimachinery/pkg/util/json"

	"github.com/custody-dev/custody/internal/admission"
)

// FuzzReview posts arbitrary bodies to the handler. Whatever the input it
// must not panic, must answer 200 only to an admission.k8s.io/v1
// AdmissionReview whose fields the webhook reads are well-formed (echoing
// its uid; fields it does not read are not decoded), and, with a decider that denies every
// image, must never allow the CREATE of an object that has images.
func FuzzReview(f *testing.F) {
	seed := func(rev *admissionv1.AdmissionReview) {
		b, err := json.Marshal(rev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := spec(ref("app", dApp), reg+"web:1.2", "nginx")
	s.InitContainers = []corev1.Container{{Name: "init", Image: "busybox@" + string(dInit)}}
	s.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "debug:1"}}}
	s.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "models:7"}}}}
	seed(podReview(admissionv1.Create, pod(s), nil))
	seed(podReview(admissionv1.Update, pod(s), pod(spec(ref("app", dApp)))))
	seed(podReview(admissionv1.Delete, nil, pod(s)))
	seed(newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod", deployment(s), nil))
	seed(newReview(admissionv1.Create, cronJobKind, "cronjobs", "shop-prod", cronJob(s), nil))
	seed(newReview(admissionv1.Create, metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "configmaps", "shop-prod",
		&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}, nil))
	bad := podReview(admissionv1.Create, pod(s), nil)
	bad.Request.Object = runtime.RawExtension{Raw: []byte(`{"spec":{"containers":[{"image":7}]}}`)}
	seed(bad)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"x"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"x@sha256:"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":null}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte(`[]`))

	resolve := func(ctx context.Context, tag name.Tag) (digest.Digest, error) { return dRogue, nil }
	h := admission.NewHandler(newPolicy(), admission.Options{ResolveTag: resolve, MaxRequestBytes: 1 << 20})

	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/admission", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code != http.StatusOK {
			if rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if bytes.Contains(rec.Body.Bytes(), []byte(`"allowed"`)) {
				t.Fatalf("an error answer looks like a review: %s", rec.Body)
			}
			return
		}
		// The fields of an AdmissionReview the webhook reads, as
		// k8s.io/api types.
		var in struct {
			metav1.TypeMeta `json:",inline"`
			Request         *struct {
				UID         types.UID               `json:"uid"`
				Kind        metav1.GroupVersionKind `json:"kind"`
				SubResource string                  `json:"subResource"`
				Operation   admissionv1.Operation   `json:"operation"`
				Object      runtime.RawExtension    `json:"object"`
			} `json:"request"`
		}
		if err := kjson.Unmarshal(body, &in); err != nil || in.APIVersion != "admission.k8s.io/v1" || in.Kind != "AdmissionReview" || in.Request == nil || in.Request.UID == "" {
			t.Fatalf("200 for a malformed review (%v): %s", err, body)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("200 without a review response (%v): %s", err, rec.Body)
		}
		if out.Response.UID != in.Request.UID {
			t.Fatalf("uid %q, want %q", out.Response.UID, in.Request.UID)
		}
		if !out.Response.Allowed {
			if out.Response.Result == nil || out.Response.Result.Code < 400 || out.Response.Result.Message == "" {
				t.Fatalf("denial without a failure status: %s", rec.Body)
			}
			return
		}
		r := in.Request
		if r.Operation == admissionv1.Create && r.SubResource == "" {
			if n := countImages(r.Kind, r.Object.Raw); n > 0 {
				t.Fatalf("CREATE of a %s with %d images allowed by a deny-all decider: %s", r.Kind.Kind, n, body)
			}
		}
	})
}

// countImages counts the non-empty image references (containers and image
// volumes) of the pod spec of a v1 workload, independently of the handler's typed decoding; -1 for other
// kinds.
func countImages(k metav1.GroupVersionKind, raw []byte) int {
	var path []string
	switch {
	case k.Group == "" && k.Version == "v1" && k.Kind == "Pod":
		path = []string{"spec"}
	case k.Group == "batch" && k.Version == "v1" && k.Kind == "CronJob":
		path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case k.Version == "v1" && (k.Group == "apps" && (k.Kind == "Deployment" || k.Kind == "StatefulSet" || k.Kind == "DaemonSet" || k.Kind == "ReplicaSet") ||
		k.Group == "batch" && k.Kind == "Job" || k.Group == "" && k.Kind == "ReplicationController"):
		path = []string{"spec", "template", "spec"}
	default:
		return -1
	}
	var obj any
	if kjson.Unmarshal(raw, &obj) != nil {
		return -1
	}
	for _, p := range path {
		m, ok := obj.(map[string]any)
		if !ok {
			return 0
		}
		obj = m[p]
	}
	m, ok := obj.(map[string]any)
	if !ok {
		return 0
	}
	n := 0
	for _, list := range []string{"containers", "initContainers", "ephemeralContainers"} {
		l, _ := m[list].([]any)
		for _, c := range l {
			if c, ok := c.(map[string]any); ok {
				if img, ok := c["image"].(string); ok && img != "" {
					n++
				}
			}
		}
	}
	vols, _ := m["volumes"].([]any)
	for _, v := range vols {
		if v, ok := v.(map[string]any); ok {
			if src, ok := v["image"].(map[string]any); ok {
				if r, ok := src["reference"].(string); ok && r != "" {
					n++
				}
			}
		}
	}
	return n
}
