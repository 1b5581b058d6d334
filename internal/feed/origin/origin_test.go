package origin

import (
	"encoding/base64"
	"testing"
)

func FuzzParseDocument(f *testing.F) {
	pred := `{"buildDefinition":{"buildType":"https://custody.dev/generic/v1","externalParameters":{},"resolvedDependencies":[{"uri":"pkg:npm/x@1.0.0","digest":{"sha512":"00"}}]},"runDetails":{"builder":{"id":"https://ci"}}}`
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
	pred := `{"buildDefinition":{"buildType":"https://custody.dev/generic/v1","externalParameters":{},"resolvedDependencies":[{"uri":"pkg:npm/x@1.0.0","digest":{"sha256":"` + "ab" + `"}}]},"runDetails":{"builder":{"id":"https://ci"}}}`
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
