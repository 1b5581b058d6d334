package attest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/key"
)

// benchStatement is a provenance statement with n dependencies (about
// 150 bytes each), the size a real build's provenance reaches.
func benchStatement(b *testing.B, n int) *Statement {
	b.Helper()
	deps := make([]string, n)
	for i := range deps {
		deps[i] = fmt.Sprintf(`{"uri":"pkg:npm/package-%d@1.2.%d","digest":{"sha512":"%0128x"}}`, i, i, i)
	}
	pred := `{"buildDefinition":{"buildType":"t","externalParameters":{},"resolvedDependencies":[` + strings.Join(deps, ",") + `]},"runDetails":{"builder":{"id":"b"}}}`
	s, err := StatementFor("app", digestOf([]byte("app")), PredicateSLSAProvenanceV1, []byte(pred))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkSignVerify(b *testing.B) {
	for _, alg := range []key.Algorithm{key.ECDSAP256, key.Ed25519} {
		for _, n := range []int{10, 1000} {
			s := newKey(b, alg)
			stmt := benchStatement(b, n)
			env, err := Sign(context.Background(), s, "", stmt)
			if err != nil {
				b.Fatal(err)
			}
			keys := ResolverFromKeys(s.Public())
			b.Run(fmt.Sprintf("sign/%s/deps=%d", alg, n), func(b *testing.B) {
				b.SetBytes(int64(len(env)))
				for b.Loop() {
					if _, err := Sign(context.Background(), s, "", stmt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("verify/%s/deps=%d", alg, n), func(b *testing.B) {
				b.SetBytes(int64(len(env)))
				for b.Loop() {
					if _, err := Verify(env, keys); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
