// Package spec is a promotion gate as written in a configuration file:
// plain data, read from YAML or JSON, with no CEL in sight. The config
// loader holds gates in this form; package gate compiles them (gate.Compile)
// where they are used, so loading a configuration never pulls in the rule
// engine.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Gate is a gate as written in a configuration file (YAML or JSON):
//
//	rules:
//	  - use: signed_by_trusted_key
//	    params: {keys: ["3f2a..."]}
//	  - use: no_findings_at_or_above
//	    params: {severity: HIGH}
//	  - name: release_tag
//	    expr: artifact.tags.exists(t, t.matches('^v[0-9]+'))
//	    message: artifact must carry a release tag
//	costLimit: 1000000
//	timeout: 500ms
type Gate struct {
	// Rules are checked in order; the gate passes when every rule passes.
	// At least one rule is required.
	Rules []Rule `json:"rules" yaml:"rules"`
	// CostLimit caps the CEL cost of each rule's evaluation (cel-go
	// cost units, about one per list element or comparison visited);
	// 0 means gate.DefaultCostLimit. A rule over the limit fails.
	CostLimit uint64 `json:"costLimit,omitempty" yaml:"costLimit,omitempty"`
	// Timeout caps one whole gate evaluation; 0 means
	// gate.DefaultTimeout. Rules still running when it expires fail.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// Rule is one rule: either a ready-made rule (Use, with Params) or a
// custom one (Name, Expr, Message).
type Rule struct {
	// Use names a ready-made rule (see gate.ReadyMade). Name, when also set,
	// renames it in results; Expr must be empty; Message, when set,
	// replaces the rule's own message.
	Use string `json:"use,omitempty" yaml:"use,omitempty"`
	// Params configure a ready-made rule; giving a parameter the rule
	// does not take is an error.
	Params Params `json:"params,omitzero" yaml:"params,omitempty"`
	// Name names a custom rule (letters, digits, '_', '-', '.').
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Expr is a custom rule's CEL expression; it must have type bool.
	Expr string `json:"expr,omitempty" yaml:"expr,omitempty"`
	// Message says, for humans, what the rule requires; reported with
	// the rule's result.
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
}

// Params are the parameters of the ready-made rules; each rule takes only
// the fields its documentation names. In CEL they are the variable
// params (type gate.Params), empty in a custom rule.
type Params struct {
	// Keys are trusted key IDs (key.ID), for signed_by_trusted_key.
	Keys []string `json:"keys,omitempty" yaml:"keys,omitempty"`
	// Builders are trusted SLSA builder IDs, compared exactly, for
	// slsa_provenance_trusted.
	Builders []string `json:"builders,omitempty" yaml:"builders,omitempty"`
	// Sources are trusted source repository URIs, compared after
	// gate.NormalizeSourceURI, for slsa_provenance_trusted.
	Sources []string `json:"sources,omitempty" yaml:"sources,omitempty"`
	// Branches are protected git refs for slsa_provenance_trusted; a bare
	// name "main" means "refs/heads/main" (gate.NormalizeRef). Default
	// ["refs/heads/main"].
	Branches []string `json:"branches,omitempty" yaml:"branches,omitempty"`
	// Severity is the threshold of no_findings_at_or_above: NONE, LOW,
	// MEDIUM, HIGH (the default) or CRITICAL.
	Severity string `json:"severity,omitempty" yaml:"severity,omitempty"`
	// Principals are allowed-signers principals (SSH) or OpenPGP user-ID
	// emails, for commit_signed_by.
	Principals []string `json:"principals,omitempty" yaml:"principals,omitempty"`
	// Fingerprints are signing-key fingerprints ("SHA256:..." for SSH,
	// hex for OpenPGP), for commit_signed_by.
	Fingerprints []string `json:"fingerprints,omitempty" yaml:"fingerprints,omitempty"`
	// Identity constraints of signed_by_identity, named as cosign's
	// --certificate-* flags (certidentity.Constraints): identity or
	// identityRegexp, and issuer or issuerRegexp, are required.
	Identity                 string `json:"identity,omitempty" yaml:"identity,omitempty"`
	IdentityRegexp           string `json:"identityRegexp,omitempty" yaml:"identityRegexp,omitempty"`
	Issuer                   string `json:"issuer,omitempty" yaml:"issuer,omitempty"`
	IssuerRegexp             string `json:"issuerRegexp,omitempty" yaml:"issuerRegexp,omitempty"`
	GitHubWorkflowRepository string `json:"githubWorkflowRepository,omitempty" yaml:"githubWorkflowRepository,omitempty"`
	GitHubWorkflowRef        string `json:"githubWorkflowRef,omitempty" yaml:"githubWorkflowRef,omitempty"`
	Repository               string `json:"repository,omitempty" yaml:"repository,omitempty"`
	Ref                      string `json:"ref,omitempty" yaml:"ref,omitempty"`
	Workflow                 string `json:"workflow,omitempty" yaml:"workflow,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("500ms",
// "2s") in YAML and JSON.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timeout must be a duration string such as \"500ms\": %w", err)
	}
	return d.parse(s)
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("timeout must be a duration string such as \"500ms\": %w", err)
	}
	return d.parse(s)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("timeout %q is not a duration such as \"500ms\": %w", s, err)
	}
	if v < 0 {
		return fmt.Errorf("timeout %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MaxBytes caps a gate specification Parse reads.
const MaxBytes = 1 << 20

// Parse reads a gate specification in YAML or JSON (JSON is YAML).
// Unknown fields are errors, so a misspelt parameter is caught rather than
// silently ignored. It does not compile the rules: call gate.Compile.
func Parse(r io.Reader) (Gate, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return Gate{}, fmt.Errorf("reading gate spec: %w", err)
	}
	if len(b) > MaxBytes {
		return Gate{}, fmt.Errorf("gate spec is larger than %d bytes", MaxBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return Gate{}, errors.New("gate spec is empty: it needs a rules list")
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Gate
	if err := dec.Decode(&s); err != nil {
		return Gate{}, fmt.Errorf("invalid gate spec: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Gate{}, errors.New("invalid gate spec: more than one YAML document")
	}
	return s, nil
}
