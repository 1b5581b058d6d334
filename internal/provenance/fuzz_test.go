package provenance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, env := range []string{"github.env", "gitlab.env"} {
		m := map[string]string{}
		b, err := os.ReadFile(filepath.Join("testdata", env))
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				m[k] = v
			}
		}
		p, err := FromEnv(func(k string) string { return m[k] }, "", time.Unix(1795000000, 0))
		if err != nil {
			f.Fatal(err)
		}
		out, _ := json.Marshal(p)
		f.Add(out)
	}
	f.Add([]byte(`{"buildDefinition":{"buildType":"t","externalParameters":{"source":1,"workflow":{"path":2}},"internalParameters":{"a":[1]}},"runDetails":{"builder":{"id":"b"}}}`))
	f.Add([]byte(`{"buildDefinition":{"buildType":"t","externalParameters":null},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"2026-01-01T00:00:00Z"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.BuildDefinition.BuildType == "" || p.RunDetails.Builder.ID == "" {
			t.Fatal("accepted a predicate without buildType or builder")
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted predicate does not re-encode: %v", err)
		}
		p2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded predicate does not parse: %v\n%s", err, out)
		}
		if p2.SourceURI() != p.SourceURI() || p2.RunDetails.Builder.ID != p.RunDetails.Builder.ID {
			t.Fatal("round trip changed the predicate")
		}
		_ = Check(p, Expect{SourceURIPrefix: "https://github.com/acme"})
	})
}
