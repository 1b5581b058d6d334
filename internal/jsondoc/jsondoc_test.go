package jsondoc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	ok := []string{
		`{}`, `[]`, `1`, `"x"`, `null`, ` {"a":1} `,
		`{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}`,
		`{"layers":[],"config":{"layers":1}}`,
		`[{"a":1,"b":2},{"a":1,"b":2}]`,
		`{"a":"b","b":"a"}`, // a value equal to a name is not a name
		`{"a":["a","a"],"b":{"c":"a"}}`,
		deep(MaxDepth),
	}
	for _, s := range ok {
		if err := Check([]byte(s)); err != nil {
			t.Errorf("Check(%.60s) = %v, want nil", s, err)
		}
	}
	dup := []string{
		`{"layers":[{"digest":"x"}],"config":{},"layers":[]}`,
		`{"a":1,"a":1}`,
		`{"a":{"b":1,"b":2}}`,
		`[{"x":1},{"y":1,"y":1}]`,
		`{"layers":1,"Layers":2}`,      // encoding/json folds case
		`{"\u006cayers":1,"layers":2}`, // escapes decode first
		`{"s":1,"\u017f":2}`,           // 'ſ' folds to 's' in encoding/json
		`{"k":1,"\u212a":2}`,           // Kelvin sign folds to 'k'
		`{"a":{"x":1},"b":[1,{"c":1}],"a":2}`,
		"{\"\xff\":1,\"\xfe\":2}", // both decode to U+FFFD
	}
	for _, s := range dup {
		if err := Check([]byte(s)); !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("Check(%s) = %v, want a duplicate key", s, err)
		}
	}
	if err := Check([]byte(deep(MaxDepth + 1))); !errors.Is(err, ErrTooDeep) {
		t.Errorf("Check(depth %d) = %v, want ErrTooDeep", MaxDepth+1, err)
	}
	bad := []string{``, ` `, `{`, `{"a"}`, `{"a":1,}`, `{} {}`, `{}x`, `[1,]`, `{"a":1}]`, `nul`, `{"a":1 "b":2}`}
	for _, s := range bad {
		if err := Check([]byte(s)); err == nil || errors.Is(err, ErrDuplicateKey) {
			t.Errorf("Check(%q) = %v, want a syntax error", s, err)
		}
	}
}

func TestUnmarshal(t *testing.T) {
	var v struct{ A int }
	if err := Unmarshal([]byte(`{"a":1,"A":2}`), &v); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("Unmarshal = %v, want a duplicate key", err)
	}
	if err := Unmarshal([]byte(`{"a":1,"b":2}`), &v); err != nil || v.A != 1 {
		t.Fatalf("Unmarshal = %v, %+v", err, v)
	}
	if err := UnmarshalStrict([]byte(`{"a":1,"b":2}`), &v); err == nil {
		t.Fatal("UnmarshalStrict accepted an unknown field")
	}
	if err := UnmarshalStrict([]byte(`{"a":3}`), &v); err != nil || v.A != 3 {
		t.Fatalf("UnmarshalStrict = %v, %+v", err, v)
	}
}

// refCheck is an independent, recursive reading of the same rule, for
// the fuzzer to compare against.
func refCheck(b []byte) (dup, deep bool) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var walk func(depth int) (bool, bool)
	walk = func(depth int) (bool, bool) {
		tok, err := dec.Token()
		if err != nil {
			return false, false
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return false, false
		}
		if depth+1 > MaxDepth {
			return false, true
		}
		seen := map[string]bool{}
		for dec.More() {
			if d == '{' {
				tok, err := dec.Token()
				if err != nil {
					return false, false
				}
				k := strings.ToLower(strings.ToUpper(tok.(string)))
				if seen[k] {
					return true, false
				}
				seen[k] = true
			}
			if dup, deep := walk(depth + 1); dup || deep {
				return dup, deep
			}
		}
		_, _ = dec.Token()
		return false, false
	}
	return walk(0)
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"C":3}]}}`, `[[[]]]`,
		`{"schemaVersion":2,"layers":[{"digest":"sha256:x","size":1}],"layers":[]}`,
		`{"x":"\u0078","\u0078":1}`, `"str"`, `{"a":[{"a":1}],"b":{"a":{}}}`,
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		`{"a":1}{"a":1}`, `{"a":1,}`, "{\"\xff\":1,\"\xfe\":2}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b)
		valid := json.Valid(b)
		if err == nil && !valid {
			t.Fatalf("Check accepted invalid JSON %q", b)
		}
		if !valid {
			return
		}
		dup, deep := refCheck(b)
		switch {
		case errors.Is(err, ErrDuplicateKey):
			if !dup {
				t.Fatalf("Check found a duplicate in %q; the reference did not", b)
			}
		case errors.Is(err, ErrTooDeep):
			if !deep {
				t.Fatalf("Check found %q too deep; the reference did not", b)
			}
		case err != nil:
			t.Fatalf("Check refused valid JSON %q: %v", b, err)
		default:
			if dup || deep {
				t.Fatalf("Check accepted %q; the reference found dup=%v deep=%v", b, dup, deep)
			}
			// What Check accepts, encoding/json decodes.
			var v any
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("accepted %q but encoding/json refuses it: %v", b, err)
			}
		}
	})
}
