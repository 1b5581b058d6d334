// Package jsondoc reads the JSON documents custody makes decisions on
// (manifests, indexes, attestations, signature payloads, policies) so that
// every reader sees the same document.
//
// JSON (RFC 8259) leaves the meaning of an object with a repeated member
// name open: Go's encoding/json keeps the last one, many other parsers the
// first. A manifest with `"layers":[<missing>], ..., "layers":[]` would be
// checked as one document and pulled as another. custody therefore refuses
// such documents outright. Because encoding/json also matches struct fields
// case-insensitively, names that differ only in case ("layers", "Layers")
// are refused as well: they too would be read differently by a
// case-sensitive parser.
//
// Check streams the document through encoding/json's tokenizer: memory
// grows with the member names of the objects currently open, never with a
// tree of the document, and nesting is capped at MaxDepth.
package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxDepth caps how deeply arrays and objects may nest.
const MaxDepth = 256

// ErrDuplicateKey is wrapped by the error Check returns for an object with
// a repeated member name.
var ErrDuplicateKey = errors.New("duplicate key")

// ErrTooDeep is wrapped by the error Check returns for a document nested
// deeper than MaxDepth.
var ErrTooDeep = errors.New("JSON nested too deeply")

// Check reports whether b is exactly one JSON value in which no object
// repeats a member name (compared after case folding; see the package
// documentation) and nesting stays within MaxDepth.
func Check(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers are not converted, only skipped
	// names[i] holds the folded member names of the i-th open object
	// (nil for an open array).
	var names []map[string]struct{}
	expectKey := false // the next token in the innermost object is a name
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(names) != 0 {
				return io.ErrUnexpectedEOF
			}
			return errors.New("empty JSON document")
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(names) >= MaxDepth {
					return fmt.Errorf("%w: more than %d levels", ErrTooDeep, MaxDepth)
				}
				var m map[string]struct{}
				if t == '{' {
					m = map[string]struct{}{}
				}
				names = append(names, m)
				expectKey = t == '{'
			case '}', ']':
				names = names[:len(names)-1]
				// Back in an object, the next token is a name.
				expectKey = len(names) > 0 && names[len(names)-1] != nil
			}
		case string:
			if expectKey {
				cur := names[len(names)-1]
				k := fold(t)
				if _, dup := cur[k]; dup {
					return fmt.Errorf("%w %q", ErrDuplicateKey, truncate(t, 100))
				}
				cur[k] = struct{}{}
				expectKey = false
				continue
			}
			expectKey = len(names) > 0 && names[len(names)-1] != nil
		default:
			expectKey = len(names) > 0 && names[len(names)-1] != nil
		}
		if len(names) == 0 {
			// One complete top-level value: nothing may follow it.
			if _, err := dec.Token(); err != io.EOF {
				if err == nil {
					return errors.New("trailing data after the JSON document")
				}
				return err
			}
			return nil
		}
	}
}

// Unmarshal checks b with Check, then decodes it into v with encoding/json.
func Unmarshal(b []byte, v any) error {
	if err := Check(b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// UnmarshalStrict is Unmarshal that also refuses members v has no field for.
func UnmarshalStrict(b []byte, v any) error {
	if err := Check(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// fold maps a member name to the form encoding/json compares struct field
// names in (Unicode case folding, including 'ſ' to 's' and the Kelvin sign
// to 'k').
func fold(s string) string {
	return strings.ToLower(strings.ToUpper(s))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
