package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPoliciesYAML(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	y := `retention:
  allowGovernanceBypass: true
policies:
  - repository: "team/*"
    immutableTags: ["v*", "^release-.*$"]
    noDelete: true
    allowedMediaTypes: [application/vnd.oci.image.manifest.v1+json]
    maxArtifactSize: 1048576
    retention: {mode: compliance, period: 720h}
  - repository: "**"
`
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Retention.AllowGovernanceBypass || len(c.Policies) != 2 {
		t.Fatalf("%+v", c)
	}
	pol := c.Policies[0]
	if pol.Repository != "team/*" || len(pol.ImmutableTags) != 2 || !pol.NoDelete || pol.MaxArtifactSize != 1<<20 ||
		pol.Retention == nil || pol.Retention.Mode != "compliance" || time.Duration(pol.Retention.Period) != 720*time.Hour {
		t.Fatalf("%+v", pol)
	}
	if c.Policies[1].ImmutableTags != nil {
		t.Fatal("absent immutableTags must stay nil (the default rule)")
	}
	for _, bad := range []string{
		"policies:\n  - repository: \"\"\n",
		"policies:\n  - repository: a\n  - repository: a\n",
		"policies:\n  - repository: a\n    retention: {mode: strict, period: 1h}\n",
		"policies:\n  - repository: a\n    retention: {mode: compliance}\n",
		"policies:\n  - repository: a\n    typo: true\n",
	} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "polic") && !strings.Contains(err.Error(), "typo") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
