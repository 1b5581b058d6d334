package admission

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// TestDocumentedConfiguration decodes the ValidatingWebhookConfiguration in
// docs/admission.md strictly into the Kubernetes types and checks that it
// sends every kind the handler checks, in the version it checks, and fails
// closed.
func TestDocumentedConfiguration(t *testing.T) {
	doc, err := os.ReadFile("../../docs/admission.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no yaml block in docs/admission.md")
	}
	// The placeholder caBundle is not base64; put a real one in.
	src := regexp.MustCompile(`caBundle: \S+`).ReplaceAll(m[1], []byte("caBundle: TFMwdExTMUNSVWRKVGk="))
	var tree any
	if err := yaml.Unmarshal(src, &tree); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decoding the documented configuration: %v", err)
	}
	if cfg.APIVersion != "admissionregistration.k8s.io/v1" || cfg.Kind != "ValidatingWebhookConfiguration" || len(cfg.Webhooks) == 0 {
		t.Fatalf("configuration %+v", cfg.TypeMeta)
	}
	for _, w := range cfg.Webhooks {
		if strings.Count(w.Name, ".") < 2 {
			t.Errorf("%s: webhook names need at least three segments", w.Name)
		}
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail ||
			w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
			w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent ||
			w.TimeoutSeconds == nil || *w.TimeoutSeconds < 1 || *w.TimeoutSeconds > 30 ||
			len(w.AdmissionReviewVersions) != 1 || w.AdmissionReviewVersions[0] != "v1" ||
			w.NamespaceSelector == nil || len(w.ClientConfig.CABundle) == 0 ||
			w.ClientConfig.URL == nil || !strings.HasPrefix(*w.ClientConfig.URL, "https://") {
			t.Errorf("%s: not fail-closed v1 over HTTPS with a caBundle and a namespaceSelector: %+v", w.Name, w)
		}
		sent := map[gvk]bool{}
		for _, r := range w.Rules {
			ops := strings.Join(func() []string {
				var s []string
				for _, o := range r.Operations {
					s = append(s, string(o))
				}
				return s
			}(), ",")
			if ops != "CREATE,UPDATE" {
				t.Errorf("%s: operations %s, want CREATE,UPDATE", w.Name, ops)
			}
			for _, g := range r.APIGroups {
				for _, v := range r.APIVersions {
					for _, res := range r.Resources {
						sent[gvk{g, v, res}] = true
					}
				}
			}
		}
		for k := range workloads {
			res := strings.ToLower(k.kind) + "s"
			if !sent[gvk{k.group, k.version, res}] {
				t.Errorf("%s: rules do not send %s (%s)", w.Name, k, res)
			}
		}
		if !sent[gvk{"", "v1", "pods/ephemeralcontainers"}] {
			t.Errorf("%s: rules do not send pods/ephemeralcontainers", w.Name)
		}
	}
}
