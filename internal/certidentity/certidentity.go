// Package certidentity is the one meaning of a keyless signer's identity:
// what a short-lived code-signing certificate (Fulcio's, or custody's own
// CA's, internal/ca) says about who signed, read with sigstore-go's
// certificate.SummarizeCertificate (the subject alternative name and
// Fulcio's extensions), and the one rule matching it against identity
// constraints as cosign's --certificate-* flags state them. custody
// verify, the promotion gates' signed_by_identity rule and CEL rules all
// use it.
package certidentity

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
)

// Identity is what a certificate says about its holder.
type Identity struct {
	// Subject is the subject alternative name: an email, or for CI
	// workloads the build signer URI
	// (https://github.com/OWNER/REPO/.github/workflows/FILE@REF).
	Subject string `json:"subject"`
	// Issuer is the OIDC issuer that vouched for the subject (Fulcio's
	// extension 1.3.6.1.4.1.57264.1.8, or the deprecated .1.1).
	Issuer string `json:"issuer"`
	// Extensions are all of Fulcio's extensions the certificate carries.
	Extensions certificate.Extensions `json:"extensions"`
}

// Of reads the identity of a certificate. A certificate without a subject
// alternative name or an issuer names nobody and is refused.
func Of(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("no certificate")
	}
	s, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return Identity{}, fmt.Errorf("certificate identity: %w", err)
	}
	if s.Extensions.Issuer == "" {
		return Identity{}, errors.New("certificate identity: no OIDC issuer extension (1.3.6.1.4.1.57264.1.8)")
	}
	return Identity{Subject: s.SubjectAlternativeName, Issuer: s.Extensions.Issuer, Extensions: s.Extensions}, nil
}

// Claims are the identity as a flat map, the form gates read
// (signatures[].certificate in CEL): "subject", "issuer", and every
// extension the certificate carries under sigstore-go's JSON name
// (sourceRepositoryURI, sourceRepositoryRef, buildConfigURI,
// githubWorkflowRepository, runnerEnvironment, ...). Absent extensions
// are absent keys.
func (id Identity) Claims() map[string]string {
	out := map[string]string{}
	b, err := json.Marshal(id.Extensions)
	if err == nil {
		_ = json.Unmarshal(b, &out)
	}
	out["subject"], out["issuer"] = id.Subject, id.Issuer
	return out
}

// Constraints are identity constraints, named as cosign's flags are. An
// empty field constrains nothing; Check requires an identity and an
// issuer constraint (exact or regular expression), as cosign does.
// Regular expressions are Go's (RE2) and match anywhere in the value,
// like cosign's: anchor them (^...$) to match the whole value.
type Constraints struct {
	// Identity (--certificate-identity) is the exact subject;
	// IdentityRegexp (--certificate-identity-regexp) a pattern for it.
	Identity       string `json:"identity,omitempty"`
	IdentityRegexp string `json:"identityRegexp,omitempty"`
	// Issuer (--certificate-oidc-issuer) is the exact OIDC issuer;
	// IssuerRegexp (--certificate-oidc-issuer-regexp) a pattern for it.
	Issuer       string `json:"issuer,omitempty"`
	IssuerRegexp string `json:"issuerRegexp,omitempty"`
	// GitHubWorkflowRepository, GitHubWorkflowRef, GitHubWorkflowName,
	// GitHubWorkflowTrigger and GitHubWorkflowSHA
	// (--certificate-github-workflow-*) compare GitHub's extensions
	// 1.3.6.1.4.1.57264.1.5, .1.6, .1.4, .1.2 and .1.3 exactly.
	GitHubWorkflowRepository string `json:"githubWorkflowRepository,omitempty"`
	GitHubWorkflowRef        string `json:"githubWorkflowRef,omitempty"`
	GitHubWorkflowName       string `json:"githubWorkflowName,omitempty"`
	GitHubWorkflowTrigger    string `json:"githubWorkflowTrigger,omitempty"`
	GitHubWorkflowSHA        string `json:"githubWorkflowSha,omitempty"`
	// Repository, Ref and Workflow are the same for any CI platform:
	// the source repository URI (.1.12, "https://github.com/acme/app" or
	// "https://gitlab.example/group/app"), the source ref (.1.14,
	// "refs/heads/main") and the build configuration URI (.1.18, the
	// workflow or .gitlab-ci.yml file at its ref), compared exactly.
	Repository string `json:"repository,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Workflow   string `json:"workflow,omitempty"`
}

// IsZero reports whether no constraint is set.
func (c Constraints) IsZero() bool { return c == Constraints{} }

// Check validates the constraints: an identity (exact or regexp, not
// both), an issuer (exact or regexp, not both), and regular expressions
// that compile.
func (c Constraints) Check() error {
	switch {
	case c.Identity == "" && c.IdentityRegexp == "":
		return errors.New("an identity constraint is required: --certificate-identity or --certificate-identity-regexp")
	case c.Identity != "" && c.IdentityRegexp != "":
		return errors.New("give --certificate-identity or --certificate-identity-regexp, not both")
	case c.Issuer == "" && c.IssuerRegexp == "":
		return errors.New("an issuer constraint is required: --certificate-oidc-issuer or --certificate-oidc-issuer-regexp")
	case c.Issuer != "" && c.IssuerRegexp != "":
		return errors.New("give --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, not both")
	}
	for _, re := range []string{c.IdentityRegexp, c.IssuerRegexp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("invalid regular expression %q: %w", re, err)
		}
	}
	return nil
}

// Match reports whether the identity (as Claims) meets every constraint;
// the error names the first that does not hold. Constraints that do not
// Check match nothing.
func (c Constraints) Match(claims map[string]string) error {
	if err := c.Check(); err != nil {
		return err
	}
	type rule struct {
		name, claim, exact, re string
	}
	rules := []rule{
		{"identity", "subject", c.Identity, c.IdentityRegexp},
		{"OIDC issuer", "issuer", c.Issuer, c.IssuerRegexp},
		{"GitHub workflow repository", "githubWorkflowRepository", c.GitHubWorkflowRepository, ""},
		{"GitHub workflow ref", "githubWorkflowRef", c.GitHubWorkflowRef, ""},
		{"GitHub workflow name", "githubWorkflowName", c.GitHubWorkflowName, ""},
		{"GitHub workflow trigger", "githubWorkflowTrigger", c.GitHubWorkflowTrigger, ""},
		{"GitHub workflow SHA", "githubWorkflowSHA", c.GitHubWorkflowSHA, ""},
		{"source repository", "sourceRepositoryURI", c.Repository, ""},
		{"source ref", "sourceRepositoryRef", c.Ref, ""},
		{"workflow", "buildConfigURI", c.Workflow, ""},
	}
	for _, r := range rules {
		got := claims[r.claim]
		switch {
		case r.exact != "" && got != r.exact:
			return fmt.Errorf("%s is %q, not %q", r.name, got, r.exact)
		case r.re != "":
			re, _ := regexp.Compile(r.re) // checked above
			if !re.MatchString(got) {
				return fmt.Errorf("%s %q does not match %q", r.name, got, r.re)
			}
		}
	}
	return nil
}

// String describes the constraints for reports.
func (c Constraints) String() string {
	var parts []string
	add := func(n, v string) {
		if v != "" {
			parts = append(parts, n+"="+v)
		}
	}
	add("identity", c.Identity)
	add("identity-regexp", c.IdentityRegexp)
	add("issuer", c.Issuer)
	add("issuer-regexp", c.IssuerRegexp)
	add("github-workflow-repository", c.GitHubWorkflowRepository)
	add("github-workflow-ref", c.GitHubWorkflowRef)
	add("github-workflow-name", c.GitHubWorkflowName)
	add("github-workflow-trigger", c.GitHubWorkflowTrigger)
	add("github-workflow-sha", c.GitHubWorkflowSHA)
	add("repository", c.Repository)
	add("ref", c.Ref)
	add("workflow", c.Workflow)
	return strings.Join(parts, ", ")
}
