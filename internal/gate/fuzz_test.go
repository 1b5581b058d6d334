package gate

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/custody-dev/custody/internal/gate/spec"
)

// FuzzCompile: Compile must never panic, and whatever it accepts must
// evaluate without panicking, to a pass or a fail-closed error.
func FuzzCompile(f *testing.F) {
	for _, r := range readyRules {
		f.Add(r.Expr)
	}
	for _, s := range []string{
		"", "true", "1", "(", "artifact.digest", "artifact.nope == 1", "signatures[0].keyId == 'x'",
		pathological, `attestations[?'x'].orValue([]).size() == 0`, `now > timestamp('2026-01-01T00:00:00Z')`,
		`severityRank('HIGH') == 3`, `severityRank(artifact.digest) > 0`, `normalizeSourceURI('git+x.git') == 'x'`,
		`artifact.tags.exists(t, t.matches('('))`, `'a'.repeat(100000000) == ''`, `[1,2,3].map(x, [x, x]).size() == 3`,
		`{'a': 1}.a == 1`, `dyn(1) == 1`, `params.keys.size() == 0`, `b"\xff" == b""`, "\x00", `"\u2028" == ""`,
		strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300), strings.Repeat("!", 5000) + "true",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		g, err := Compile(spec.Gate{Rules: []spec.Rule{{Name: "fuzz", Expr: expr}}, Timeout: spec.Duration(200 * time.Millisecond)})
		if err != nil {
			if !strings.Contains(err.Error(), `"fuzz"`) {
				t.Fatalf("error does not name the rule: %v", err)
			}
			return
		}
		r := g.Evaluate(context.Background(), fuzzSeedInput())
		if len(r.Rules) != 1 || (r.Pass != r.Rules[0].Pass) || (r.Rules[0].Error != "" && r.Pass) {
			t.Fatalf("inconsistent result %+v", r)
		}
	})
}

func fuzzSeedInput() Input {
	p, _ := structpb.NewStruct(map[string]any{"result": "PASSED", "n": 1.5, "list": []any{"a", true, nil}})
	return Input{
		Artifact:     Artifact{Digest: "sha256:00", Tags: []string{"v1"}, Annotations: map[string]string{"a": "b"}},
		Signatures:   []Signature{{KeyID: "k"}},
		Attestations: map[string][]Attestation{"x": {{KeyID: "k", Predicate: p}}},
		Findings:     []Finding{{ID: "f", Severity: SeverityHigh}},
		Environment:  Environment{Name: "prod", Previous: "test"},
		Now:          time.Unix(1_800_000_000, 0).UTC(),
	}
}

// fuzzReader hands out fuzzer bytes as the pieces of an Input.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) str() string {
	n := int(r.byte() % 24)
	if n > len(r.b) {
		n = len(r.b)
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *fuzzReader) strs() []string {
	var out []string
	for range int(r.byte() % 4) {
		out = append(out, r.str())
	}
	if r.byte()%5 == 0 {
		return nil
	}
	return out
}

func (r *fuzzReader) time() time.Time {
	var b [8]byte
	for i := range b {
		b[i] = r.byte()
	}
	// Any instant, including ones outside CEL's timestamp range.
	return time.Unix(int64(binary.LittleEndian.Uint64(b[:]))>>8, int64(r.byte())*1000).UTC()
}

func (r *fuzzReader) severity() string {
	return []string{SeverityNone, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical, "", "high", r.str()}[r.byte()%8]
}

func (r *fuzzReader) input() Input {
	in := Input{
		Artifact:    Artifact{Digest: r.str(), Repository: r.str(), Tags: r.strs(), MediaType: r.str(), Created: r.time()},
		Environment: Environment{Name: r.str(), Previous: []string{"", "test", r.str()}[r.byte()%3]},
		Now:         r.time(),
		Revoked:     r.byte()%2 == 0,
	}
	if r.byte()%2 == 0 {
		in.Artifact.Annotations = map[string]string{r.str(): r.str()}
	}
	for range int(r.byte() % 4) {
		in.Signatures = append(in.Signatures, Signature{KeyID: []string{"kA-trusted", r.str()}[r.byte()%2], Identity: r.str(), Source: r.str(), SignedAt: r.time()})
	}
	for range int(r.byte() % 4) {
		if in.Attestations == nil {
			in.Attestations = map[string][]Attestation{}
		}
		pt := []string{"https://spdx.dev/Document", "https://cyclonedx.org/bom", r.str()}[r.byte()%3]
		var pred *structpb.Struct
		if r.byte()%3 != 0 {
			pred, _ = structpb.NewStruct(map[string]any{r.str(): r.str(), "result": r.str()})
		}
		in.Attestations[pt] = append(in.Attestations[pt], Attestation{KeyID: r.str(), Predicate: pred})
	}
	for range int(r.byte() % 3) {
		in.Provenance = append(in.Provenance, Provenance{BuilderID: r.str(), BuildType: r.str(), SourceURI: r.str(), SourceRef: r.str(), SourceCommit: r.str(), WorkflowPath: r.str(), InvocationID: r.str()})
	}
	for range int(r.byte() % 3) {
		in.TestResults = append(in.TestResults, TestResult{Result: []string{TestPassed, TestFailed, r.str()}[r.byte()%3], Type: r.str(), URL: r.str(), PassedTests: r.strs(), FailedTests: r.strs()})
	}
	for range int(r.byte() % 5) {
		in.Findings = append(in.Findings, Finding{ID: r.str(), Aliases: r.strs(), Severity: r.severity(), Score: float64(r.byte()) / 10, Package: r.str(), Version: r.str(), Fixed: r.str(), Kind: r.str(), Waived: r.byte()%2 == 0, WaiverReason: r.str()})
	}
	for range int(r.byte() % 4) {
		in.Promotions = append(in.Promotions, Promotion{Environment: r.str(), At: r.time(), By: r.str(), Digest: r.str()})
	}
	for range int(r.byte() % 3) {
		in.Notation = append(in.Notation, NotationSignature{Identity: r.str(), Issuer: r.str(), Format: r.str(), Policy: r.str(), SignedAt: r.time()})
	}
	return in
}

// FuzzEvaluate: the ready-made rules and a few custom ones must never
// panic on any input, and an erroring rule never passes.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1}, 64))
	f.Add(bytes.Repeat([]byte{0xff, 3, 2, 'a', 'b'}, 100))
	f.Add([]byte("\x03\x02kA-trusted\x00\x01\x02\x03\x04\x05\x06\x07\x08"))
	gs := prodSpec()
	gs.Rules = append(gs.Rules,
		spec.Rule{Name: "ann", Expr: `artifact.annotations.exists(k, artifact.annotations[k] == 'x')`},
		spec.Rule{Name: "pred", Expr: `attestations.exists(t, attestations[t].exists(a, a.predicate.result == 'PASSED'))`},
		spec.Rule{Name: "time", Expr: `now - artifact.created < duration('24h') && signatures.all(s, s.signedAt <= now)`},
		spec.Rule{Name: "sev", Expr: `findings.all(f, severityRank(f.severity) < 4)`},
		spec.Rule{Name: "notation", Expr: `notation.exists(s, s.identity.startsWith('CN=') && s.signedAt <= now)`},
	)
	g, err := Compile(gs)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := (&fuzzReader{b: data}).input()
		r := g.Evaluate(context.Background(), in)
		if len(r.Rules) != len(gs.Rules) {
			t.Fatalf("%d results", len(r.Rules))
		}
		all := true
		for _, rr := range r.Rules {
			if rr.Error != "" && rr.Pass {
				t.Fatalf("rule %s passed with error %q", rr.Name, rr.Error)
			}
			all = all && rr.Pass
		}
		if all != r.Pass {
			t.Fatalf("overall %v, rules %+v", r.Pass, r.Rules)
		}
	})
}

// FuzzParseSpec: ParseSpec and Compile must never panic on any document.
func FuzzParseSpec(f *testing.F) {
	f.Add(prodYAML)
	f.Add(`{"rules":[{"use":"not_revoked"}],"timeout":"1s"}`)
	f.Add("rules:\n  - name: x\n    expr: '1'\n")
	f.Add("rules: &a [*a]\n")
	f.Add("timeout: 99999999999999999999h\n")
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := spec.Parse(strings.NewReader(doc))
		if err != nil {
			return
		}
		if len(s.Rules) > 16 {
			s.Rules = s.Rules[:16]
		}
		if g, err := Compile(s); err == nil {
			_ = g.Evaluate(context.Background(), Input{})
		}
	})
}
