package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/custody-dev/custody/internal/admission"
)

func TestPodAllowed(t *testing.T) {
	p := newPolicy(dApp, dSidecar)
	wh := startWebhook(t, p, admission.Options{})
	rev := podReview(admissionv1.Create, pod(spec(ref("app", dApp), "registry.example.com:5000/team/sidecar:1.4@"+string(dSidecar))), nil)
	wantAllowed(t, wh.review(t, rev))

	c := p.lastCall(t)
	if c.namespace != "shop-prod" {
		t.Errorf("decider got namespace %q, want shop-prod", c.namespace)
	}
	want := []admission.Image{
		{Container: "c0", Kind: admission.Container, Path: "spec.containers[0].image", Reference: ref("app", dApp),
			Repository: "registry.example.com:5000/team/app", Digest: dApp},
		{Container: "c1", Kind: admission.Container, Path: "spec.containers[1].image", Reference: "registry.example.com:5000/team/sidecar:1.4@" + string(dSidecar),
			Repository: "registry.example.com:5000/team/sidecar", Tag: "1.4", Digest: dSidecar},
	}
	if fmt.Sprint(c.images) != fmt.Sprint(want) {
		t.Errorf("decider got images\n%+v\nwant\n%+v", c.images, want)
	}
	if !c.hasReq {
		t.Fatal("no Request in the decider's context")
	}
	wantReq := admission.Request{UID: string(rev.Request.UID), Version: "v1", Kind: "Pod", Namespace: "shop-prod", Name: "web-0",
		Operation: "CREATE", User: "alice@example.com"}
	if c.request != wantReq {
		t.Errorf("request in context %+v, want %+v", c.request, wantReq)
	}
}

func TestPodDenied(t *testing.T) {
	p := newPolicy(dApp)
	wh := startWebhook(t, p, admission.Options{})
	msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(ref("rogue", dRogue))), nil)))
	for _, s := range []string{`Pod "shop-prod/web-0"`, `container "c0"`, ref("rogue", dRogue), string(dRogue) + " is not promoted to prod", "1 of 1 images"} {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q does not contain %q", msg, s)
		}
	}
}

func TestDeployment(t *testing.T) {
	p := newPolicy(dApp)
	wh := startWebhook(t, p, admission.Options{})
	wantAllowed(t, wh.review(t, newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod", deployment(spec(ref("app", dApp))), nil)))
	if got := p.lastCall(t).images[0].Path; got != "spec.template.spec.containers[0].image" {
		t.Errorf("path %q", got)
	}

	msg := wantDenied(t, wh.review(t, newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod", deployment(spec(ref("rogue", dRogue))), nil)))
	if !strings.Contains(msg, `Deployment "shop-prod/web"`) || !strings.Contains(msg, "not promoted to prod") {
		t.Errorf("message %q", msg)
	}
}

func TestCronJob(t *testing.T) {
	p := newPolicy(dApp)
	wh := startWebhook(t, p, admission.Options{})
	wantAllowed(t, wh.review(t, newReview(admissionv1.Create, cronJobKind, "cronjobs", "shop-prod", cronJob(spec(ref("app", dApp))), nil)))
	if got := p.lastCall(t).images[0].Path; got != "spec.jobTemplate.spec.template.spec.containers[0].image" {
		t.Errorf("path %q", got)
	}
	s := spec(ref("app", dApp))
	s.InitContainers = []corev1.Container{{Name: "migrate", Image: ref("migrate", dRogue)}}
	msg := wantDenied(t, wh.review(t, newReview(admissionv1.Create, cronJobKind, "cronjobs", "shop-prod", cronJob(s), nil)))
	if !strings.Contains(msg, `CronJob "shop-prod/nightly"`) || !strings.Contains(msg, `initContainer "migrate"`) || strings.Contains(msg, `"c0"`) {
		t.Errorf("message %q", msg)
	}
}

// TestEveryWorkloadKind proves each kind's pod template is decoded: an
// unpromoted image in it is denied.
func TestEveryWorkloadKind(t *testing.T) {
	s := spec(ref("rogue", dRogue))
	meta := metav1.ObjectMeta{Name: "w", Namespace: "shop-prod"}
	cases := []struct {
		kind     metav1.GroupVersionKind
		resource string
		obj      runtime.Object
	}{
		{podKind, "pods", pod(s)},
		{deploymentKind, "deployments", deployment(s)},
		{statefulSetKind, "statefulsets", &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"}, ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Template: template(s)}}},
		{daemonSetKind, "daemonsets", &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}, ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: template(s)}}},
		{replicaSetKind, "replicasets", &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"}, ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Template: template(s)}}},
		{rcKind, "replicationcontrollers", &corev1.ReplicationController{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ReplicationController"}, ObjectMeta: meta, Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{Spec: s}}}},
		{jobKind, "jobs", &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: meta, Spec: batchv1.JobSpec{Template: template(s)}}},
		{cronJobKind, "cronjobs", cronJob(s)},
	}
	p := newPolicy()
	wh := startWebhook(t, p, admission.Options{})
	for _, c := range cases {
		t.Run(c.kind.Kind, func(t *testing.T) {
			msg := wantDenied(t, wh.review(t, newReview(admissionv1.Create, c.kind, c.resource, "shop-prod", c.obj, nil)))
			if !strings.Contains(msg, c.kind.Kind+" ") || !strings.Contains(msg, ref("rogue", dRogue)) {
				t.Errorf("message %q", msg)
			}
		})
	}
}

func TestInitAndEphemeralContainers(t *testing.T) {
	p := newPolicy(dApp, dInit, dDebug)
	wh := startWebhook(t, p, admission.Options{})

	s := spec(ref("app", dApp))
	s.InitContainers = []corev1.Container{{Name: "init", Image: ref("init", dInit)}}
	wantAllowed(t, wh.review(t, podReview(admissionv1.Create, pod(s), nil)))
	got := p.lastCall(t).images
	if len(got) != 2 || got[1].Kind != admission.InitContainer || got[1].Path != "spec.initContainers[0].image" || got[1].Digest != dInit {
		t.Fatalf("images %+v", got)
	}

	bad := spec(ref("app", dApp))
	bad.InitContainers = []corev1.Container{{Name: "init", Image: ref("init", dRogue)}}
	msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(bad), nil)))
	if !strings.Contains(msg, `initContainer "init"`) {
		t.Errorf("message %q", msg)
	}

	// kubectl debug adds an ephemeral container through the
	// pods/ephemeralcontainers subresource: an UPDATE of the Pod.
	old := pod(s)
	withDebug := func(img string) *admissionv1.AdmissionReview {
		p := pod(s)
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: img}}}
		rev := podReview(admissionv1.Update, p, old)
		rev.Request.SubResource = "ephemeralcontainers"
		return rev
	}
	wantAllowed(t, wh.review(t, withDebug(ref("debug", dDebug))))
	got = p.lastCall(t).images
	if len(got) != 1 || got[0].Kind != admission.EphemeralContainer || got[0].Container != "debugger" || got[0].Path != "spec.ephemeralContainers[0].image" {
		t.Fatalf("ephemeral update: decider got %+v, want only the new ephemeral container", got)
	}
	msg = wantDenied(t, wh.review(t, withDebug(ref("debug", dRogue))))
	if !strings.Contains(msg, `ephemeralContainer "debugger"`) {
		t.Errorf("message %q", msg)
	}
	// An ephemeral container in a Pod created directly is checked too.
	direct := pod(s)
	direct.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox"}}}
	msg = wantDenied(t, wh.review(t, podReview(admissionv1.Create, direct, nil)))
	if !strings.Contains(msg, `ephemeralContainer "debugger" image "busybox": referenced by tag only`) {
		t.Errorf("message %q", msg)
	}
}

func TestImageVolumes(t *testing.T) {
	p := newPolicy(dApp)
	wh := startWebhook(t, p, admission.Options{})
	s := spec(ref("app", dApp))
	s.Volumes = []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: ref("models", dRogue)}}},
	}
	msg := wantDenied(t, wh.review(t, newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod", deployment(s), nil)))
	if !strings.Contains(msg, `imageVolume "models" image "`+ref("models", dRogue)+`": `+string(dRogue)+" is not promoted") {
		t.Errorf("message %q", msg)
	}
	got := p.lastCall(t).images
	if len(got) != 2 || got[1].Path != "spec.template.spec.volumes[1].image.reference" || got[1].Kind != admission.ImageVolume {
		t.Errorf("decider got %+v", got)
	}
}

// TestEmptyTemplateImage: a pod template may leave an image empty for
// other tools to fill in; a Pod may not.
func TestEmptyTemplateImage(t *testing.T) {
	wh := startWebhook(t, newPolicy(dApp), admission.Options{})
	wantAllowed(t, wh.review(t, newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod", deployment(spec(ref("app", dApp), "")), nil)))
	msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(ref("app", dApp), "")), nil)))
	if !strings.Contains(msg, `container "c1" image "": invalid image reference: the image is empty`) {
		t.Errorf("message %q", msg)
	}
}

func TestTagOnlyDenied(t *testing.T) {
	p := newPolicy(dApp)
	wh := startWebhook(t, p, admission.Options{})
	msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(ref("app", dApp), reg+"web:1.2")), nil)))
	if !strings.Contains(msg, `container "c1" image "registry.example.com:5000/team/web:1.2": referenced by tag only; pin it by digest (registry.example.com:5000/team/web@sha256:…)`) {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(msg, `"c0"`) {
		t.Errorf("message names the admitted container: %q", msg)
	}
	// The decider judged only the pinned image.
	if got := p.lastCall(t).images; len(got) != 1 || got[0].Container != "c0" {
		t.Errorf("decider got %+v", got)
	}
}

func TestTagResolved(t *testing.T) {
	var resolves atomic.Int32
	resolve := func(ctx context.Context, tag name.Tag) (digest.Digest, error) {
		resolves.Add(1)
		if _, ok := admission.RequestFromContext(ctx); !ok {
			return "", errors.New("no request in context")
		}
		switch tag.Name() {
		case reg + "app:1.2":
			return dApp, nil
		case reg + "rogue:latest":
			return dRogue, nil
		case reg + "garbage:1":
			return "not-a-digest", nil
		}
		return "", fmt.Errorf("tag %s not found", tag.Name())
	}

	t.Run("allowed with a warning", func(t *testing.T) {
		resolves.Store(0)
		p := newPolicy(dApp)
		wh := startWebhook(t, p, admission.Options{ResolveTag: resolve})
		s := spec(reg+"app:1.2", reg+"app:1.2")
		resp := wh.review(t, podReview(admissionv1.Create, pod(s), nil))
		wantAllowed(t, resp)
		got := p.lastCall(t).images
		if len(got) != 2 || got[0].Digest != dApp || !got[0].Resolved || got[0].Tag != "1.2" {
			t.Fatalf("decider got %+v, want the resolved digest", got)
		}
		if n := resolves.Load(); n != 1 {
			t.Errorf("resolved the same tag %d times, want once", n)
		}
		if len(resp.Warnings) != 2 || !strings.Contains(resp.Warnings[0], reg+"app@"+string(dApp)) {
			t.Errorf("warnings %q, want a pin-by-digest hint per container", resp.Warnings)
		}
	})
	t.Run("resolved digest not promoted", func(t *testing.T) {
		wh := startWebhook(t, newPolicy(dApp), admission.Options{ResolveTag: resolve})
		msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(reg+"rogue")), nil)))
		if !strings.Contains(msg, string(dRogue)+" is not promoted to prod") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("RequireDigest", func(t *testing.T) {
		p := newPolicy(dApp)
		wh := startWebhook(t, p, admission.Options{ResolveTag: resolve, RequireDigest: true})
		msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(reg+"app:1.2")), nil)))
		if !strings.Contains(msg, "referenced by tag only; pin it by digest: "+reg+"app@"+string(dApp)) {
			t.Errorf("message %q", msg)
		}
		if got := p.lastCall(t).images; len(got) != 1 || got[0].Digest != dApp {
			t.Errorf("decider got %+v, want the resolved digest", got)
		}
		// Both reasons are given when the digest is not promoted either.
		msg = wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(reg+"rogue")), nil)))
		if !strings.Contains(msg, "pin it by digest: "+reg+"rogue@"+string(dRogue)+", and "+string(dRogue)+" is not promoted") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("unresolvable", func(t *testing.T) {
		wh := startWebhook(t, newPolicy(dApp), admission.Options{ResolveTag: resolve})
		msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(reg+"missing:9", reg+"garbage:1")), nil)))
		for _, s := range []string{`tag "9" could not be resolved to a digest (tag ` + reg + `missing:9 not found)`, `"not-a-digest", not a digest`, "2 of 2"} {
			if !strings.Contains(msg, s) {
				t.Errorf("message %q does not contain %q", msg, s)
			}
		}
	})
	t.Run("resolver honours the API server's timeout", func(t *testing.T) {
		slow := func(ctx context.Context, tag name.Tag) (digest.Digest, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}
		wh := startWebhook(t, newPolicy(dApp), admission.Options{ResolveTag: slow})
		body, _ := json.Marshal(podReview(admissionv1.Create, pod(spec(reg+"app:1.2")), nil))
		req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(wh.url, "/admission")+"/admission?timeout=1s", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := wh.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rev admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&rev); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v with timeout=1s", took)
		}
		if msg := wantDenied(t, rev.Response); !strings.Contains(msg, "timed out") {
			t.Errorf("message %q", msg)
		}
	})
}

func TestOneDeniedDeniesAll(t *testing.T) {
	p := newPolicy(dApp, dSidecar)
	wh := startWebhook(t, p, admission.Options{})
	s := spec(ref("app", dApp), ref("rogue", dRogue), ref("sidecar", dSidecar))
	msg := wantDenied(t, wh.review(t, newReview(admissionv1.Create, deploymentKind, "deployments", "shop-prod", deployment(s), nil)))
	if !strings.Contains(msg, "denied 1 of 3 images") || !strings.Contains(msg, `container "c1" image "`+ref("rogue", dRogue)+`"`) {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(msg, `"c0"`) || strings.Contains(msg, `"c2"`) {
		t.Errorf("message names admitted containers: %q", msg)
	}
}

func TestMessageListsEveryDenial(t *testing.T) {
	wh := startWebhook(t, newPolicy(), admission.Options{})
	s := spec(ref("a", dRogue), "UPPER/Case:1", reg+"b:2")
	msg := wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(s), nil)))
	// In spec order, each with its reason.
	i0 := strings.Index(msg, `container "c0"`)
	i1 := strings.Index(msg, `container "c1" image "UPPER/Case:1": invalid image reference`)
	i2 := strings.Index(msg, `container "c2" image "`+reg+`b:2": referenced by tag only`)
	if i0 < 0 || i1 < 0 || i2 < 0 || !(i0 < i1 && i1 < i2) || !strings.Contains(msg, "3 of 3") {
		t.Errorf("message %q", msg)
	}

	// Very many denials are summarised.
	many := make([]string, 30)
	for i := range many {
		many[i] = reg + fmt.Sprintf("img%d:1", i)
	}
	msg = wantDenied(t, wh.review(t, podReview(admissionv1.Create, pod(spec(many...)), nil)))
	if !strings.Contains(msg, "30 of 30") || !strings.Contains(msg, "; and 10 more") || strings.Contains(msg, `"c20"`) {
		t.Errorf("message %q", msg)
	}
}

func TestDeciderError(t *testing.T) {
	p := newPolicy(dApp)
	p.err = errors.New("promotion store unavailable")
	wh := startWebhook(t, p, admission.Options{})
	resp := wh.review(t, podReview(admissionv1.Create, pod(spec(ref("app", dApp))), nil))
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusInternalServerError ||
		!strings.Contains(resp.Result.Message, "could not check the images of Pod \"shop-prod/web-0\": promotion store unavailable") {
		t.Fatalf("response %+v, want a 500 denial", resp.Result)
	}
}

func TestAllowedWithoutChecking(t *testing.T) {
	p := newPolicy()
	wh := startWebhook(t, p, admission.Options{})
	rogue := pod(spec(ref("rogue", dRogue)))

	t.Run("DELETE", func(t *testing.T) {
		rev := podReview(admissionv1.Delete, nil, rogue)
		wantAllowed(t, wh.review(t, rev))
	})
	t.Run("non-workload kind", func(t *testing.T) {
		cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"image": "evil:latest"}}
		wantAllowed(t, wh.review(t, newReview(admissionv1.Create, metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "configmaps", "shop-prod", cm, nil)))
	})
	t.Run("scale subresource", func(t *testing.T) {
		rev := newReview(admissionv1.Update, metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, "deployments", "shop-prod", nil, nil)
		rev.Request.SubResource = "scale"
		wantAllowed(t, wh.review(t, rev))
	})
	t.Run("status subresource", func(t *testing.T) {
		rev := podReview(admissionv1.Update, rogue, rogue)
		rev.Request.SubResource = "status"
		wantAllowed(t, wh.review(t, rev))
	})
	t.Run("UPDATE keeping the images", func(t *testing.T) {
		relabelled := pod(spec(ref("rogue", dRogue)))
		relabelled.Labels["version"] = "2"
		wantAllowed(t, wh.review(t, podReview(admissionv1.Update, relabelled, rogue)))
	})
	t.Run("UPDATE setting a finalizer on an object being deleted", func(t *testing.T) {
		old := deployment(spec(ref("rogue", dRogue)))
		gone := deployment(spec(ref("rogue", dRogue)))
		now := metav1.NewTime(time.Now())
		gone.DeletionTimestamp = &now
		gone.Finalizers = []string{"foregroundDeletion"}
		wantAllowed(t, wh.review(t, newReview(admissionv1.Update, deploymentKind, "deployments", "shop-prod", gone, old)))
	})
	if n := p.numCalls(); n != 0 {
		t.Errorf("the decider was called %d times", n)
	}

	t.Run("UPDATE changing an image is checked", func(t *testing.T) {
		old := deployment(spec(ref("rogue", dRogue), ref("app", dApp)))
		changed := deployment(spec(ref("rogue", dRogue), ref("app", dSidecar)))
		msg := wantDenied(t, wh.review(t, newReview(admissionv1.Update, deploymentKind, "deployments", "shop-prod", changed, old)))
		if !strings.Contains(msg, "1 of 1") || !strings.Contains(msg, `"c1"`) {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("UPDATE without a readable oldObject checks everything", func(t *testing.T) {
		rev := podReview(admissionv1.Update, rogue, nil)
		wantDenied(t, wh.review(t, rev))
	})
}

func TestDryRunReviewedNormally(t *testing.T) {
	p := newPolicy(dApp)
	wh := startWebhook(t, p, admission.Options{})
	rev := podReview(admissionv1.Create, pod(spec(ref("rogue", dRogue))), nil)
	dry := true
	rev.Request.DryRun = &dry
	wantDenied(t, wh.review(t, rev))
	if c := p.lastCall(t); !c.request.DryRun {
		t.Error("Request.DryRun is false for a dry-run review")
	}
}

func TestUnsupportedWorkloadVersionDenied(t *testing.T) {
	wh := startWebhook(t, newPolicy(dApp), admission.Options{})
	d := deployment(spec(ref("rogue", dRogue)))
	d.APIVersion = "apps/v1beta2"
	msg := wantDenied(t, wh.review(t, newReview(admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1beta2", Kind: "Deployment"}, "deployments", "shop-prod", d, nil)))
	if !strings.Contains(msg, `apps/v1beta2 Deployment`) || !strings.Contains(msg, "matchPolicy Equivalent") {
		t.Errorf("message %q", msg)
	}
}

func TestBadRequests(t *testing.T) {
	wh := startWebhook(t, newPolicy(dApp), admission.Options{MaxRequestBytes: 64 << 10})
	good, err := json.Marshal(podReview(admissionv1.Create, pod(spec(ref("app", dApp))), nil))
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(r *admissionv1.AdmissionReview)) []byte {
		r := podReview(admissionv1.Create, pod(spec(ref("app", dApp))), nil)
		f(r)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("{"), "decoding AdmissionReview"},
		{"trailing garbage", append(append([]byte{}, good...), []byte("{}")...), "decoding AdmissionReview"},
		{"v1beta1", bytes.Replace(good, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1), `apiVersion "admission.k8s.io/v1beta1"`},
		{"no apiVersion", []byte(`{"kind":"AdmissionReview","request":{"uid":"x"}}`), "admissionReviewVersions: [v1]"},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), "no request"},
		{"no uid", mutate(func(r *admissionv1.AdmissionReview) { r.Request.UID = "" }), "no uid"},
		{"unknown operation", mutate(func(r *admissionv1.AdmissionReview) { r.Request.Operation = "PATCH" }), `unknown operation "PATCH"`},
		{"no object", mutate(func(r *admissionv1.AdmissionReview) { r.Request.Object = runtime.RawExtension{} }), "request.object is missing for v1 Pod"},
		{"object of another kind", mutate(func(r *admissionv1.AdmissionReview) {
			r.Request.Object = runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Secret"}`)}
		}), "request.object is v1 Secret but request.kind is v1 Pod"},
		{"malformed object", mutate(func(r *admissionv1.AdmissionReview) {
			r.Request.Object = runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":"nginx"}}`)}
		}), "decoding request.object as v1 Pod"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := wh.post(t, c.body)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", status, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("body %q does not say %q", out, c.want)
			}
			if bytes.Contains(out, []byte(`"allowed"`)) {
				t.Errorf("a bad request got an AdmissionReview answer: %s", out)
			}
		})
	}
}

func TestHTTPRefusals(t *testing.T) {
	wh := startWebhook(t, newPolicy(dApp), admission.Options{MaxRequestBytes: 64 << 10})
	good, _ := json.Marshal(podReview(admissionv1.Create, pod(spec(ref("app", dApp))), nil))

	do := func(method, contentType string, body io.Reader) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, wh.url, body)
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := wh.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, string(out)
	}

	t.Run("GET", func(t *testing.T) {
		resp, out := do(http.MethodGet, "", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !strings.Contains(out, "method GET not allowed") {
			t.Errorf("%d %q %q", resp.StatusCode, resp.Header.Get("Allow"), out)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		resp, _ := do(http.MethodPut, "application/json", bytes.NewReader(good))
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		resp, out := do(http.MethodPost, "application/yaml", bytes.NewReader(good))
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(out, "application/json") {
			t.Errorf("%d %q", resp.StatusCode, out)
		}
	})
	t.Run("content type with charset", func(t *testing.T) {
		resp, _ := do(http.MethodPost, "application/json; charset=utf-8", bytes.NewReader(good))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	oversized := podReview(admissionv1.Create, pod(spec(ref("app", dApp))), nil)
	big := pod(spec(ref("app", dApp)))
	big.Annotations = map[string]string{"filler": strings.Repeat("x", 65<<10)}
	oversized.Request.Object = runtime.RawExtension{Object: big}
	bigBody, _ := json.Marshal(oversized)
	t.Run("oversized with Content-Length", func(t *testing.T) {
		resp, out := do(http.MethodPost, "application/json", bytes.NewReader(bigBody))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(out, "exceeds the limit of 65536 bytes") {
			t.Errorf("%d %q", resp.StatusCode, out)
		}
	})
	t.Run("oversized chunked", func(t *testing.T) {
		// io.MultiReader hides the length: the body is sent chunked and
		// the cap applies while reading.
		resp, out := do(http.MethodPost, "application/json", io.MultiReader(bytes.NewReader(bigBody)))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(out, "exceeds the limit") {
			t.Errorf("%d %q", resp.StatusCode, out)
		}
	})
}

// TestWireFormat posts an AdmissionReview written out as JSON the way the
// API server sends it (field names from the admission.k8s.io/v1 reference),
// independent of the Go types, and checks the raw JSON of the answer.
func TestWireFormat(t *testing.T) {
	wh := startWebhook(t, newPolicy(dApp), admission.Options{})
	body := `{
  "kind": "AdmissionReview",
  "apiVersion": "admission.k8s.io/v1",
  "request": {
    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
    "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "name": "my-deployment",
    "namespace": "my-namespace",
    "operation": "CREATE",
    "userInfo": {"username": "admin", "uid": "014fbff9a07c", "groups": ["system:authenticated", "my-admin-group"], "extra": {"some-key": ["some-value1", "some-value2"]}},
    "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "my-deployment", "namespace": "my-namespace", "creationTimestamp": null},
      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
          "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}}}},
    "oldObject": null,
    "dryRun": false,
    "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
  }
}`
	status, out := wh.post(t, []byte(body))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, out)
	}
	var raw struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Response   struct {
			UID     string `json:"uid"`
			Allowed *bool  `json:"allowed"`
			Status  struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.APIVersion != "admission.k8s.io/v1" || raw.Kind != "AdmissionReview" || raw.Response.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" ||
		raw.Response.Allowed == nil || *raw.Response.Allowed || raw.Response.Status.Code != 403 ||
		!strings.Contains(raw.Response.Status.Message, `Deployment "my-namespace/my-deployment": container "web" image "nginx:1.27": referenced by tag only; pin it by digest (index.docker.io/library/nginx@sha256:…)`) {
		t.Errorf("response %s", out)
	}
}
