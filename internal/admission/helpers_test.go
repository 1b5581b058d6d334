package admission_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/custody-dev/custody/internal/admission"
)

// Digests used across the tests: promoted ones are admitted by the fake
// decider, the others are "not promoted".
var (
	dApp     = digest.FromString("app")
	dSidecar = digest.FromString("sidecar")
	dInit    = digest.FromString("init")
	dDebug   = digest.FromString("debug")
	dRogue   = digest.FromString("rogue")
)

const reg = "registry.example.com:5000/team/"

func ref(repo string, d digest.Digest) string { return reg + repo + "@" + string(d) }

// policy is a fake Decider: digests in promoted are admitted, the others
// denied with "not promoted to prod". It records every call.
type policy struct {
	promoted map[digest.Digest]bool
	err      error

	mu    sync.Mutex
	calls []call
}

type call struct {
	namespace string
	images    []admission.Image
	request   admission.Request
	hasReq    bool
}

func newPolicy(promoted ...digest.Digest) *policy {
	p := &policy{promoted: map[digest.Digest]bool{}}
	for _, d := range promoted {
		p.promoted[d] = true
	}
	return p
}

func (p *policy) Admit(ctx context.Context, namespace string, images []admission.Image) ([]admission.Denial, error) {
	req, ok := admission.RequestFromContext(ctx)
	p.mu.Lock()
	p.calls = append(p.calls, call{namespace, append([]admission.Image(nil), images...), req, ok})
	p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	var out []admission.Denial
	for _, img := range images {
		if !p.promoted[img.Digest] {
			out = append(out, admission.Denial{Image: img, Reason: fmt.Sprintf("%s is not promoted to prod", img.Digest)})
		}
	}
	return out, nil
}

func (p *policy) lastCall(t *testing.T) call {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		t.Fatal("the decider was not called")
	}
	return p.calls[len(p.calls)-1]
}

func (p *policy) numCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// webhook is the handler served over real TLS, with a client that trusts
// only the server's certificate, the way the API server trusts caBundle.
type webhook struct {
	url    string
	client *http.Client
}

func startWebhook(t *testing.T, d admission.Decider, opts admission.Options) *webhook {
	t.Helper()
	srv := httptest.NewTLSServer(admission.NewHandler(d, opts))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
	}
	t.Cleanup(client.CloseIdleConnections)
	return &webhook{url: srv.URL + "/admission", client: client}
}

// post sends body as the API server does and returns status and body.
func (w *webhook) post(t *testing.T, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.url+"?timeout=10s", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, */*")
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// review posts rev and decodes the AdmissionReview response, checking the
// envelope and that the uid is echoed.
func (w *webhook) review(t *testing.T, rev *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
	t.Helper()
	body, err := json.Marshal(rev)
	if err != nil {
		t.Fatal(err)
	}
	status, out := w.post(t, body)
	if status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", status, out)
	}
	var got admissionv1.AdmissionReview
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v: %s", err, out)
	}
	if got.APIVersion != "admission.k8s.io/v1" || got.Kind != "AdmissionReview" {
		t.Fatalf("response envelope %q %q, want admission.k8s.io/v1 AdmissionReview", got.APIVersion, got.Kind)
	}
	if got.Request != nil {
		t.Error("response repeats the request")
	}
	if got.Response == nil {
		t.Fatalf("no response in %s", out)
	}
	if got.Response.UID != rev.Request.UID {
		t.Fatalf("uid %q, want %q echoed", got.Response.UID, rev.Request.UID)
	}
	return got.Response
}

func wantAllowed(t *testing.T, resp *admissionv1.AdmissionResponse) {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("denied, want allowed: %+v", resp.Result)
	}
	if resp.Result != nil && resp.Result.Code >= 400 {
		t.Fatalf("allowed with an error status: %+v", resp.Result)
	}
}

// wantDenied checks a 403 denial and returns its message.
func wantDenied(t *testing.T, resp *admissionv1.AdmissionResponse) string {
	t.Helper()
	if resp.Allowed {
		t.Fatal("allowed, want denied")
	}
	if resp.Result == nil {
		t.Fatal("denied without a status")
	}
	if resp.Result.Code != http.StatusForbidden || resp.Result.Reason != metav1.StatusReasonForbidden || resp.Result.Status != metav1.StatusFailure {
		t.Fatalf("status %+v, want Failure 403 Forbidden", resp.Result)
	}
	if resp.Result.Message == "" {
		t.Fatal("denial without a message")
	}
	return resp.Result.Message
}

var uidCounter int

// newReview builds the AdmissionReview the API server sends for obj.
func newReview(op admissionv1.Operation, kind metav1.GroupVersionKind, resource string, namespace string, obj, old runtime.Object) *admissionv1.AdmissionReview {
	uidCounter++
	name := ""
	if m, ok := obj.(metav1.Object); ok && obj != nil {
		name = m.GetName()
	}
	dry := false
	r := &admissionv1.AdmissionRequest{
		UID:       types.UID(fmt.Sprintf("705ab4f5-6393-11e8-b7cc-42010a80%04d", uidCounter)),
		Kind:      kind,
		Resource:  metav1.GroupVersionResource{Group: kind.Group, Version: kind.Version, Resource: resource},
		Namespace: namespace,
		Name:      name,
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"system:authenticated"}},
		DryRun:    &dry,
	}
	r.RequestKind, r.RequestResource = &r.Kind, &r.Resource
	if obj != nil {
		r.Object = runtime.RawExtension{Object: obj}
	}
	if old != nil {
		r.OldObject = runtime.RawExtension{Object: old}
	}
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  r,
	}
}

var (
	podKind         = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	deploymentKind  = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	statefulSetKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}
	daemonSetKind   = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	replicaSetKind  = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	rcKind          = metav1.GroupVersionKind{Version: "v1", Kind: "ReplicationController"}
	jobKind         = metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
	cronJobKind     = metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}
)

func podReview(op admissionv1.Operation, obj, old *corev1.Pod) *admissionv1.AdmissionReview {
	var o, ol runtime.Object
	if obj != nil {
		o = obj
	}
	if old != nil {
		ol = old
	}
	return newReview(op, podKind, "pods", "shop-prod", o, ol)
}

// spec is a pod spec with one container per image, named c0, c1, ….
func spec(images ...string) corev1.PodSpec {
	var s corev1.PodSpec
	for i, img := range images {
		s.Containers = append(s.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return s
}

func pod(s corev1.PodSpec) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop-prod", Labels: map[string]string{"app": "web"}},
		Spec:       s,
	}
}

func template(s corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: s}
}

func deployment(s corev1.PodSpec) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop-prod"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(s),
		},
	}
}

func cronJob(s corev1.PodSpec) *batchv1.CronJob {
	s.RestartPolicy = corev1.RestartPolicyOnFailure
	return &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "shop-prod"},
		Spec: batchv1.CronJobSpec{
			Schedule:    "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(s)}},
		},
	}
}
