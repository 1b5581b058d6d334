package provenance

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/jsondoc"
)

// A predicate with a repeated member name reads differently in different
// parsers: refused.
func TestParseRefusesDuplicateKeys(t *testing.T) {
	m := map[string]string{}
	b, err := os.ReadFile(filepath.Join("testdata", "github.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	p, err := FromEnv(func(k string) string { return m[k] }, "", time.Unix(1795000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(p)
	if _, err := Parse(good); err != nil {
		t.Fatalf("valid predicate refused: %v", err)
	}
	dup := strings.Replace(string(good), `"builder":{`, `"builder":{"id":"https://attacker.example/builder",`, 1)
	if dup == string(good) {
		t.Fatal("test predicate has no builder")
	}
	if _, err := Parse([]byte(dup)); !errors.Is(err, jsondoc.ErrDuplicateKey) {
		t.Fatalf("Parse with a repeated builder id = %v, want a duplicate key", err)
	}
}
