package origin

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/provenance"
)

// predicate is custody's own generic provenance, with one dependency.
func predicate(t testing.TB) string {
	getenv := func(k string) string {
		return map[string]string{"CUSTODY_BUILD_SOURCE_URI": "git+https://git.example.test/a", "CUSTODY_BUILD_BUILDER_ID": "https://ci.example.test"}[k]
	}
	p, err := provenance.FromEnv(getenv, "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	p.BuildDefinition.ResolvedDependencies = []provenance.ResourceDescriptor{{URI: "pkg:npm/x@1.0.0", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}}
	b, _ := json.Marshal(p)
	return string(b)
}

func FuzzParseDocument(f *testing.F) {
	pred := predicate(f)
	stmt := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[],"predicate":` + pred + `}`
	f.Add(pred)
	f.Add(stmt)
	f.Add(`{"payloadType":"application/vnd.in-toto+json","payload":"` + base64.StdEncoding.EncodeToString([]byte(stmt)) + `","signatures":[]}`)
	f.Add(`{"predicateType":"https://example/other","predicate":{}}`)
	f.Add(`{"payload":"!!"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := ParseDocument([]byte(doc))
		if err == nil && (p == nil || p.BuildDefinition.BuildType == "" || p.RunDetails.Builder.ID == "") {
			t.Fatalf("accepted %q without a build type and builder", doc)
		}
	})
}

func TestParseDocumentForms(t *testing.T) {
	pred := predicate(t)
	stmt := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[],"predicate":` + pred + `}`
	env := `{"payloadType":"application/vnd.in-toto+json","payload":"` + base64.StdEncoding.EncodeToString([]byte(stmt)) + `","signatures":[]}`
	for _, doc := range []string{pred, stmt, env} {
		p, err := ParseDocument([]byte(doc))
		if err != nil || len(p.BuildDefinition.ResolvedDependencies) != 1 {
			t.Errorf("%s: %v", doc, err)
		}
	}
	if _, err := ParseDocument([]byte(`{"predicateType":"https://example/other","predicate":` + pred + `}`)); err == nil {
		t.Error("another predicate type was read as provenance")
	}
}
