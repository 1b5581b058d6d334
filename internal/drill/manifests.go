package drill

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The files writeManifests writes.
const (
	KubernetesFile = "kubernetes.yaml"
	ComposeFile    = "compose.yaml"
)

var notLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9-]+`) })

// serviceName turns a repository into a DNS-1123 label: its path with
// '/' as '-', lowercase, at most 63 characters.
func serviceName(repo string) string {
	s := notLabel().ReplaceAllString(strings.ToLower(strings.ReplaceAll(repo, "/", "-")), "-")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		s = "service"
	}
	return s
}

// writeManifests writes a Kubernetes Deployment per runnable image and a
// compose file, every image pinned by digest (Reference), into dir.
func writeManifests(dir, env string, arts []ArtifactReport) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var k8s bytes.Buffer
	compose := map[string]any{}
	services := map[string]any{}
	for _, a := range arts {
		if !a.Image || len(a.Problems) > 0 && a.Manifests == 0 {
			continue
		}
		n := serviceName(a.Repository)
		image := a.Reference
		if strings.HasPrefix(image, "ocidir://") {
			// A layout holds the images, not a registry: name them where
			// they came from; load them into a registry first (docs/drill.md).
			image = a.Repository + "@" + a.Digest
		}
		labels := map[string]string{"app.kubernetes.io/name": n, "custody.dev/environment": serviceName(env)}
		dep := map[string]any{
			"apiVersion": "apps/v1",
			"kind":       "Deployment",
			"metadata": map[string]any{"name": n, "labels": labels,
				"annotations": map[string]string{"custody.dev/repository": a.Repository, "custody.dev/digest": a.Digest}},
			"spec": map[string]any{
				"replicas": 1,
				"selector": map[string]any{"matchLabels": map[string]string{"app.kubernetes.io/name": n}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": n, "image": image}}},
				},
			},
		}
		b, err := yaml.Marshal(dep)
		if err != nil {
			return nil, err
		}
		k8s.WriteString("---\n")
		k8s.Write(b)
		services[n] = map[string]any{"image": image, "labels": map[string]string{"custody.dev/repository": a.Repository, "custody.dev/digest": a.Digest}}
	}
	compose["name"] = serviceName(env)
	compose["services"] = services
	cb, err := yaml.Marshal(compose)
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Environment %s rebuilt by custody drill; every image pinned by digest.\n", env)
	var files []string
	for f, body := range map[string][]byte{KubernetesFile: k8s.Bytes(), ComposeFile: cb} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, append([]byte(header), body...), 0o644); err != nil {
			return files, err
		}
		files = append(files, p)
	}
	slices.Sort(files)
	return files, nil
}
