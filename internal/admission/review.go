package admission

import "bytes"

// The admission.k8s.io/v1 AdmissionReview and the parts of the workload
// objects the webhook reads, as JSON. They are declared here rather than
// taken from k8s.io/api: those types bring 54 Kubernetes packages whose
// initialisation (generated protobuf registrations, validation tables)
// every custody command paid at start-up, for the few fields read here.
// The field names and tags are those of k8s.io/api v1 (TestWireTypes
// compares the encodings), and they are decoded as Kubernetes decodes
// them: case-sensitively, with k8s.io/apimachinery/pkg/util/json. Fields
// the webhook does not read are not decoded.

// review is an AdmissionReview: a request in, a response out.
type review struct {
	Kind       string    `json:"kind,omitempty"`
	APIVersion string    `json:"apiVersion,omitempty"`
	Request    *request  `json:"request,omitempty"`
	Response   *response `json:"response,omitempty"`
}

// Operations of an AdmissionRequest.
const (
	opCreate  = "CREATE"
	opUpdate  = "UPDATE"
	opDelete  = "DELETE"
	opConnect = "CONNECT"
)

// request is the part of an AdmissionRequest the webhook reads.
type request struct {
	UID         string           `json:"uid"`
	Kind        groupVersionKind `json:"kind"`
	SubResource string           `json:"subResource,omitempty"`
	Name        string           `json:"name,omitempty"`
	Namespace   string           `json:"namespace,omitempty"`
	Operation   string           `json:"operation"`
	UserInfo    struct {
		Username string `json:"username,omitempty"`
	} `json:"userInfo"`
	Object    rawObject `json:"object,omitempty"`
	OldObject rawObject `json:"oldObject,omitempty"`
	DryRun    *bool     `json:"dryRun,omitempty"`
}

type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// rawObject is an embedded object kept as JSON, like apimachinery's
// runtime.RawExtension: JSON null is no object.
type rawObject []byte

func (r *rawObject) UnmarshalJSON(in []byte) error {
	if !bytes.Equal(in, []byte("null")) {
		*r = append((*r)[:0], in...)
	}
	return nil
}

// response is an AdmissionResponse.
type response struct {
	UID      string   `json:"uid"`
	Allowed  bool     `json:"allowed"`
	Result   *status  `json:"status,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// status is a meta/v1 Status, as a denial's result. Metadata is always
// empty; Kubernetes writes it as {}.
type status struct {
	Metadata struct{} `json:"metadata"`
	Status   string   `json:"status,omitempty"`
	Message  string   `json:"message,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Code     int32    `json:"code,omitempty"`
}

// Values of a Status.
const (
	statusFailure       = "Failure"
	reasonForbidden     = "Forbidden"
	reasonInternalError = "InternalError"
)

// typeMeta is an object's apiVersion and kind.
type typeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// objectMeta is the part of an object's metadata the webhook reads.
type objectMeta struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// podSpec is the part of a PodSpec that names images.
type podSpec struct {
	Volumes             []volume       `json:"volumes,omitempty"`
	InitContainers      []podContainer `json:"initContainers,omitempty"`
	Containers          []podContainer `json:"containers"`
	EphemeralContainers []podContainer `json:"ephemeralContainers,omitempty"`
}

// podContainer is a Container or an EphemeralContainer: both have a name
// and an image.
type podContainer struct {
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
}

type volume struct {
	Name  string `json:"name"`
	Image *struct {
		Reference string `json:"reference,omitempty"`
	} `json:"image,omitempty"`
}

// podTemplate is a PodTemplateSpec.
type podTemplate struct {
	Metadata objectMeta `json:"metadata,omitempty"`
	Spec     podSpec    `json:"spec,omitempty"`
}

// The workload objects, by where their pod spec is.
type (
	// pod is a v1 Pod.
	pod struct {
		Metadata objectMeta `json:"metadata,omitempty"`
		Spec     podSpec    `json:"spec,omitempty"`
	}
	// templated is a Deployment, StatefulSet, DaemonSet, ReplicaSet or
	// Job.
	templated struct {
		Metadata objectMeta `json:"metadata,omitempty"`
		Spec     struct {
			Template podTemplate `json:"template"`
		} `json:"spec,omitempty"`
	}
	// replicationController is a v1 ReplicationController, whose template
	// may be absent.
	replicationController struct {
		Metadata objectMeta `json:"metadata,omitempty"`
		Spec     struct {
			Template *podTemplate `json:"template,omitempty"`
		} `json:"spec,omitempty"`
	}
	// cronJob is a batch/v1 CronJob.
	cronJob struct {
		Metadata objectMeta `json:"metadata,omitempty"`
		Spec     struct {
			JobTemplate struct {
				Spec struct {
					Template podTemplate `json:"template"`
				} `json:"spec,omitempty"`
			} `json:"jobTemplate"`
		} `json:"spec,omitempty"`
	}
)
