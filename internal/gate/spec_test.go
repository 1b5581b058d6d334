package gate

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/gate/spec"
)

const prodYAML = `
# the prod gate
rules:
  - use: signed_by_trusted_key
    params:
      keys: [kA-trusted]
  - use: slsa_provenance_trusted
    params:
      builders: ["https://github.com/actions/runner/github-hosted"]
      sources: ["git+https://github.com/acme/app.git"]
      branches: [main]
  - use: sbom_present
  - use: no_findings_at_or_above
    params: {severity: high}
  - use: passed_qa
  - use: promoted_to_previous
  - use: not_revoked
    message: a revoked artifact never reaches prod
  - name: release_tag
    expr: artifact.tags.exists(t, t.startsWith('v'))
    message: artifact must carry a release tag
costLimit: 200000
timeout: 750ms
`

func TestParseSpecYAMLAndJSON(t *testing.T) {
	s, err := spec.Parse(strings.NewReader(prodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rules) != 8 || s.CostLimit != 200000 || time.Duration(s.Timeout) != 750*time.Millisecond ||
		s.Rules[1].Params.Branches[0] != "main" || s.Rules[3].Params.Severity != "high" || s.Rules[7].Expr == "" {
		t.Fatalf("parsed %+v", s)
	}
	g := mustCompile(t, s)
	r := g.Evaluate(context.Background(), goodInput(t))
	if !r.Pass {
		t.Fatalf("failed: %+v", r.Failed())
	}
	if m := ruleResult(t, r, RuleNotRevoked).Message; m != "a revoked artifact never reaches prod" {
		t.Errorf("message override = %q", m)
	}
	if m := ruleResult(t, r, RuleSLSAProvenanceTrusted).Message; !strings.Contains(m, "refs/heads/main") || !strings.Contains(m, "https://github.com/acme/app,") && !strings.Contains(m, "https://github.com/acme/app)") {
		t.Errorf("message shows normalised params? %q", m)
	}

	// The same spec as JSON round-trips and compiles.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"timeout":"750ms"`) {
		t.Errorf("json = %s", b)
	}
	s2, err := spec.Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(s2.Rules) != 8 || time.Duration(s2.Timeout) != 750*time.Millisecond || s2.Rules[0].Params.Keys[0] != "kA-trusted" {
		t.Errorf("round trip %+v", s2)
	}
	var s3 spec.Gate
	if err := json.Unmarshal(b, &s3); err != nil || time.Duration(s3.Timeout) != 750*time.Millisecond {
		t.Errorf("encoding/json: %v %+v", err, s3)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"empty", "  \n", "empty"},
		{"misspelt param", "rules:\n  - use: signed_by_trusted_key\n    params: {kyes: [a]}\n", "kyes"},
		{"unknown top-level", "rulez: []\n", "rulez"},
		{"bad timeout", "rules: []\ntimeout: soon\n", "duration"},
		{"negative timeout", "rules: []\ntimeout: -1s\n", "negative"},
		{"json bad timeout", `{"rules": [], "timeout": 5}`, "duration"},
		{"not yaml", "rules: [\n", "invalid gate spec"},
		{"two documents", "rules: []\n---\nrules: []\n", "more than one"},
		{"too big", "rules: []\n#" + strings.Repeat("x", spec.MaxBytes), "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := spec.Parse(strings.NewReader(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// TestDocExamplesCompile compiles every YAML example of the gate
// documentation, so the documentation cannot drift from the code.
func TestDocExamplesCompile(t *testing.T) {
	var doc []byte
	for _, p := range []string{"../../docs/promotion-gates.md", "../../docs/promotion.md"} {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "no_findings_at_or_above") {
			doc = b
			break
		}
	}
	if doc == nil {
		t.Fatal("no gate documentation found in docs/promotion-gates.md or docs/promotion.md")
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 2 {
		t.Fatalf("%d yaml blocks", len(blocks))
	}
	in := goodInput(t)
	for i, b := range blocks {
		y := b[1]
		if !strings.HasPrefix(strings.TrimSpace(y), "rules:") {
			y = "rules:\n" + regexp.MustCompile("(?m)^").ReplaceAllString(y, "  ")
		}
		s, err := spec.Parse(strings.NewReader(y))
		if err != nil {
			t.Fatalf("block %d: %v\n%s", i, err, y)
		}
		g, err := Compile(s)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		for _, rr := range g.Evaluate(context.Background(), in).Rules {
			if rr.Error != "" {
				t.Errorf("block %d rule %s: %s", i, rr.Name, rr.Error)
			}
		}
	}
}
