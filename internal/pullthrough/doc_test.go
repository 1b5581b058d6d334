package pullthrough_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/pullthrough"
)

// TestDocExample: the configuration in docs/pullthrough.md loads,
// validates and builds the handler (with its credential variables set),
// and is refused while a variable it names is unset.
func TestDocExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "pullthrough.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in docs/pullthrough.md")
	}
	yml, _, _ := strings.Cut(rest, "```")
	path := filepath.Join(t.TempDir(), "custody.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the documented configuration: %v", err)
	}
	if len(cfg.Feeds) != 3 {
		t.Fatalf("feeds = %+v", cfg.Feeds)
	}
	env := map[string]string{"GHCR_TOKEN": "x", "CORP_REGISTRY_TOKEN": "y"}
	h, err := pullthrough.New(pullthrough.Options{Feeds: cfg.Feeds, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatalf("handler for the documented configuration: %v", err)
	}
	if _, rest, ok := h.Split("dockerhub/library/alpine"); !ok || rest != "library/alpine" {
		t.Fatalf("dockerhub/library/alpine is not under the dockerhub feed: %q %v", rest, ok)
	}
	delete(env, "CORP_REGISTRY_TOKEN")
	if _, err := pullthrough.New(pullthrough.Options{Feeds: cfg.Feeds, Getenv: func(k string) string { return env[k] }}); err == nil ||
		!strings.Contains(err.Error(), "CORP_REGISTRY_TOKEN") {
		t.Fatalf("unset token variable: %v", err)
	}
	// An upstream with a path is not a registry's base URL.
	bad := hubFeed("https://registry.example.com/mirror")
	if _, err := pullthrough.New(pullthrough.Options{Feeds: []config.Feed{bad}}); err == nil || !strings.Contains(err.Error(), "without a path") {
		t.Fatalf("upstream with a path: %v", err)
	}
}
