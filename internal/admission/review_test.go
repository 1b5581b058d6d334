package admission

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kjson "k8s.io/apimachinery/pkg/util/json"
)

// TestWireTypes holds the webhook's own AdmissionReview and workload types
// to k8s.io/api's: a response encodes to the same bytes, and what the API
// server sends decodes to the same values.
func TestWireTypes(t *testing.T) {
	for _, resp := range []*response{
		{UID: "u1", Allowed: true},
		{UID: "u2", Allowed: true, Warnings: []string{"w1", "w2"}},
		deny("u3", 403, "denied"),
		{UID: "u4", Result: &status{Status: statusFailure, Code: 500, Reason: reasonInternalError, Message: "down"}, Warnings: []string{"w"}},
	} {
		k := &admissionv1.AdmissionResponse{UID: "u", Allowed: resp.Allowed, Warnings: resp.Warnings}
		k.UID = types.UID(resp.UID)
		if resp.Result != nil {
			k.Result = &metav1.Status{Status: resp.Result.Status, Code: resp.Result.Code, Reason: metav1.StatusReason(resp.Result.Reason), Message: resp.Result.Message}
		}
		ours, err := kjson.Marshal(review{APIVersion: reviewAPIVersion, Kind: reviewKind, Response: resp})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: reviewAPIVersion, Kind: reviewKind}, Response: k})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("response encodes as\n%s\nk8s.io/api encodes it as\n%s", ours, theirs)
		}
	}

	dry := true
	s := corev1.PodSpec{
		Containers:          []corev1.Container{{Name: "a", Image: "img-a"}, {Name: "b", Image: "img-b"}},
		InitContainers:      []corev1.Container{{Name: "i", Image: "img-i"}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "e", Image: "img-e"}}},
		Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "img-v"}}},
			{Name: "plain", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	want := podSpec{
		Containers:          []podContainer{{"a", "img-a"}, {"b", "img-b"}},
		InitContainers:      []podContainer{{"i", "img-i"}},
		EphemeralContainers: []podContainer{{"e", "img-e"}},
		Volumes: []volume{{Name: "v", Image: &struct {
			Reference string `json:"reference,omitempty"`
		}{"img-v"}}, {Name: "plain"}},
	}
	meta := metav1.ObjectMeta{Name: "n", Namespace: "ns", Labels: map[string]string{"x": "y"}}
	tmpl := corev1.PodTemplateSpec{Spec: s}
	objects := []struct {
		kind gvk
		obj  runtime.Object
	}{
		{gvk{"", "v1", "Pod"}, &corev1.Pod{ObjectMeta: meta, Spec: s}},
		{gvk{"", "v1", "ReplicationController"}, &corev1.ReplicationController{ObjectMeta: meta, Spec: corev1.ReplicationControllerSpec{Template: &tmpl}}},
		{gvk{"apps", "v1", "Deployment"}, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Template: tmpl}}},
		{gvk{"apps", "v1", "StatefulSet"}, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Template: tmpl}}},
		{gvk{"apps", "v1", "DaemonSet"}, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: tmpl}}},
		{gvk{"apps", "v1", "ReplicaSet"}, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Template: tmpl}}},
		{gvk{"batch", "v1", "Job"}, &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Template: tmpl}}},
		{gvk{"batch", "v1", "CronJob"}, &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}},
	}
	if len(objects) != len(workloads) {
		t.Fatalf("%d kinds compared, %d decoded", len(objects), len(workloads))
	}
	for _, o := range objects {
		raw, err := json.Marshal(o.obj)
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: reviewAPIVersion, Kind: reviewKind},
			Request: &admissionv1.AdmissionRequest{
				UID: "uid-1", Kind: metav1.GroupVersionKind{Group: o.kind.group, Version: o.kind.version, Kind: o.kind.kind},
				SubResource: "ephemeralcontainers", Name: "n", Namespace: "ns", Operation: admissionv1.Update,
				UserInfo: authenticationv1.UserInfo{Username: "alice", Groups: []string{"g"}},
				Object:   runtime.RawExtension{Raw: raw}, OldObject: runtime.RawExtension{Raw: raw}, DryRun: &dry,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		req, err := decodeReview(body)
		if err != nil {
			t.Fatal(err)
		}
		if req.UID != "uid-1" || req.Kind != (groupVersionKind{o.kind.group, o.kind.version, o.kind.kind}) || req.SubResource != "ephemeralcontainers" ||
			req.Name != "n" || req.Namespace != "ns" || req.Operation != opUpdate || req.UserInfo.Username != "alice" ||
			!bytes.Equal(req.Object, raw) || !bytes.Equal(req.OldObject, raw) || req.DryRun == nil || !*req.DryRun {
			t.Errorf("%s: request decoded as %+v", o.kind, req)
		}
		w, err := workloads[o.kind](raw)
		if err != nil {
			t.Fatal(err)
		}
		if *w.meta != (objectMeta{"n", "ns"}) || !reflect.DeepEqual(*w.spec, want) {
			t.Errorf("%s: decoded %+v %+v, want %+v", o.kind, *w.meta, *w.spec, want)
		}
	}

	// JSON null is no object, as for runtime.RawExtension; a
	// ReplicationController without a template has no pod spec.
	req, err := decodeReview([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":null,"oldObject":null}}`))
	if err != nil || req.Object != nil || req.OldObject != nil {
		t.Errorf("null objects decoded as %q %q (%v)", req.Object, req.OldObject, err)
	}
	if w, err := workloads[gvk{"", "v1", "ReplicationController"}]([]byte(`{"spec":{}}`)); err != nil || w.spec != nil {
		t.Errorf("ReplicationController without a template: %+v %v", w, err)
	}
	// Field names are case-sensitive, as the API server reads them.
	if w, err := workloads[gvk{"", "v1", "Pod"}]([]byte(`{"spec":{"Containers":[{"name":"a","Image":"x"}]}}`)); err != nil || len(w.spec.Containers) != 0 {
		t.Errorf("case-folded field names decoded: %+v %v", w.spec, err)
	}
}
