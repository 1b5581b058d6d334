package admission

import (
	"fmt"

	kjson "k8s.io/apimachinery/pkg/util/json"
)

// gvk is a group, version and kind ("" group for the core API).
type gvk struct{ group, version, kind string }

func (k gvk) apiVersion() string {
	if k.group == "" {
		return k.version
	}
	return k.group + "/" + k.version
}

func (k gvk) String() string { return k.apiVersion() + " " + k.kind }

// workload is an object that holds a pod spec, decoded.
type workload struct {
	meta *objectMeta
	// spec is nil when the object has no pod template (a
	// ReplicationController may omit it).
	spec *podSpec
	// specPath is the JSON path of spec in the object.
	specPath string
}

// template reports that the spec is a pod template, not a Pod: Kubernetes
// lets templates leave images empty for other tools to fill in, and the
// Pods made from them are checked when they are created.
func (w workload) template() bool { return w.specPath != "spec" }

// decoder decodes one workload kind from JSON.
type decoder func(raw []byte) (workload, error)

// decodeInto unmarshals raw into a new T and returns the workload get picks
// out of it.
func decodeInto[T any](raw []byte, specPath string, get func(*T) (*objectMeta, *podSpec)) (workload, error) {
	obj := new(T)
	if err := kjson.Unmarshal(raw, obj); err != nil {
		return workload{}, err
	}
	m, s := get(obj)
	return workload{meta: m, spec: s, specPath: specPath}, nil
}

// workloads maps every kind the webhook checks, in the version it checks,
// to its decoder. The webhook configuration must send these versions
// (rules with apiVersions ["v1"]; matchPolicy Equivalent converts requests
// made in other versions).
var workloads = map[gvk]decoder{
	{"", "v1", "Pod"}: func(raw []byte) (workload, error) {
		return decodeInto(raw, "spec", func(o *pod) (*objectMeta, *podSpec) {
			return &o.Metadata, &o.Spec
		})
	},
	{"", "v1", "ReplicationController"}: func(raw []byte) (workload, error) {
		return decodeInto(raw, "spec.template.spec", func(o *replicationController) (*objectMeta, *podSpec) {
			if o.Spec.Template == nil {
				return &o.Metadata, nil
			}
			return &o.Metadata, &o.Spec.Template.Spec
		})
	},
	{"apps", "v1", "Deployment"}:  decodeTemplated,
	{"apps", "v1", "StatefulSet"}: decodeTemplated,
	{"apps", "v1", "DaemonSet"}:   decodeTemplated,
	{"apps", "v1", "ReplicaSet"}:  decodeTemplated,
	{"batch", "v1", "Job"}:        decodeTemplated,
	{"batch", "v1", "CronJob"}: func(raw []byte) (workload, error) {
		return decodeInto(raw, "spec.jobTemplate.spec.template.spec", func(o *cronJob) (*objectMeta, *podSpec) {
			return &o.Metadata, &o.Spec.JobTemplate.Spec.Template.Spec
		})
	},
}

// decodeTemplated decodes a workload whose pod template is spec.template.
func decodeTemplated(raw []byte) (workload, error) {
	return decodeInto(raw, "spec.template.spec", func(o *templated) (*objectMeta, *podSpec) {
		return &o.Metadata, &o.Spec.Template.Spec
	})
}

// workloadKinds is every group and kind that runs pods, in any version the
// API has served: a request for one of them in a version workloads lacks is
// denied (it would otherwise slip past unchecked), not admitted.
var workloadKinds = map[[2]string]bool{
	{"", "Pod"}:                   true,
	{"", "ReplicationController"}: true,
	{"apps", "Deployment"}:        true,
	{"apps", "StatefulSet"}:       true,
	{"apps", "DaemonSet"}:         true,
	{"apps", "ReplicaSet"}:        true,
	{"extensions", "Deployment"}:  true,
	{"extensions", "DaemonSet"}:   true,
	{"extensions", "ReplicaSet"}:  true,
	{"batch", "Job"}:              true,
	{"batch", "CronJob"}:          true,
}

// container is one image field found in a pod spec.
type container struct {
	kind      ContainerKind
	name      string
	path      string
	reference string
}

// containers lists the image fields of w in the order they appear in the
// spec: containers, initContainers, ephemeralContainers, then image
// volumes (which the kubelet pulls like container images).
func (w workload) containers() []container {
	if w.spec == nil {
		return nil
	}
	s := w.spec
	out := make([]container, 0, len(s.Containers)+len(s.InitContainers)+len(s.EphemeralContainers))
	add := func(c container) {
		if c.reference != "" || !w.template() {
			out = append(out, c)
		}
	}
	for i, c := range s.Containers {
		add(container{Container, c.Name, fmt.Sprintf("%s.containers[%d].image", w.specPath, i), c.Image})
	}
	for i, c := range s.InitContainers {
		add(container{InitContainer, c.Name, fmt.Sprintf("%s.initContainers[%d].image", w.specPath, i), c.Image})
	}
	for i, c := range s.EphemeralContainers {
		add(container{EphemeralContainer, c.Name, fmt.Sprintf("%s.ephemeralContainers[%d].image", w.specPath, i), c.Image})
	}
	for i, v := range s.Volumes {
		if v.Image != nil {
			add(container{ImageVolume, v.Name, fmt.Sprintf("%s.volumes[%d].image.reference", w.specPath, i), v.Image.Reference})
		}
	}
	return out
}
