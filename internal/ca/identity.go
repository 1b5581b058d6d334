package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net/url"
	"strings"
)

// Identity is what a workload certificate says about its holder, taken
// from the verified claims of its OIDC token.
type Identity struct {
	// Issuer is the token's issuer.
	Issuer string
	// Subject is what the proof of possession signs: the token's email
	// when it has one (verified), else its sub, as cosign signs it.
	Subject string
	// Email or URI is the certificate's subject alternative name.
	Email string
	URI   string
	// Extensions are the Fulcio extensions (OIDs 1.3.6.1.4.1.57264.1.*).
	Extensions []pkix.Extension
}

// The Fulcio certificate extensions (Fulcio's docs/oid-info.md).
var (
	oidIssuerV1            = fulcioOID(1) // deprecated raw-bytes issuer, still read by older verifiers
	oidGitHubTrigger       = fulcioOID(2)
	oidGitHubSHA           = fulcioOID(3)
	oidGitHubWorkflow      = fulcioOID(4)
	oidGitHubRepository    = fulcioOID(5)
	oidGitHubRef           = fulcioOID(6)
	oidIssuer              = fulcioOID(8)
	oidBuildSignerURI      = fulcioOID(9)
	oidBuildSignerDigest   = fulcioOID(10)
	oidRunnerEnvironment   = fulcioOID(11)
	oidSourceRepoURI       = fulcioOID(12)
	oidSourceRepoDigest    = fulcioOID(13)
	oidSourceRepoRef       = fulcioOID(14)
	oidSourceRepoID        = fulcioOID(15)
	oidSourceRepoOwnerURI  = fulcioOID(16)
	oidSourceRepoOwnerID   = fulcioOID(17)
	oidBuildConfigURI      = fulcioOID(18)
	oidBuildConfigDigest   = fulcioOID(19)
	oidBuildTrigger        = fulcioOID(20)
	oidRunInvocationURI    = fulcioOID(21)
	oidSourceRepoVisbility = fulcioOID(22)
)

func fulcioOID(n int) asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, n}
}

// platform is how a CI system's token claims become extensions.
type platform struct {
	// signer is the build signer URI template, which is also the
	// certificate's URI SAN.
	signer string
	// fields: OID -> template of literal text and {claim} references; an
	// extension whose claims are missing is left out.
	fields []field
	// legacy are the deprecated raw-bytes GitHub extensions (1.2 to 1.6).
	legacy []field
}

type field struct {
	oid  asn1.ObjectIdentifier
	tmpl string
}

// github lays GitHub Actions' claims out as Fulcio does; {url} is the
// GitHub server (https://github.com, or a GitHub Enterprise Server's).
var github = platform{
	signer: "{url}/{job_workflow_ref}",
	fields: []field{
		{oidBuildSignerURI, "{url}/{job_workflow_ref}"},
		{oidBuildSignerDigest, "{job_workflow_sha}"},
		{oidRunnerEnvironment, "{runner_environment}"},
		{oidSourceRepoURI, "{url}/{repository}"},
		{oidSourceRepoDigest, "{sha}"},
		{oidSourceRepoRef, "{ref}"},
		{oidSourceRepoID, "{repository_id}"},
		{oidSourceRepoOwnerURI, "{url}/{repository_owner}"},
		{oidSourceRepoOwnerID, "{repository_owner_id}"},
		{oidBuildConfigURI, "{url}/{workflow_ref}"},
		{oidBuildConfigDigest, "{workflow_sha}"},
		{oidBuildTrigger, "{event_name}"},
		{oidRunInvocationURI, "{url}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}"},
		{oidSourceRepoVisbility, "{repository_visibility}"},
	},
	legacy: []field{
		{oidGitHubTrigger, "{event_name}"},
		{oidGitHubSHA, "{sha}"},
		{oidGitHubWorkflow, "{workflow}"},
		{oidGitHubRepository, "{repository}"},
		{oidGitHubRef, "{ref}"},
	},
}

// gitlab lays GitLab CI's claims out as Fulcio does; {url} is the issuer
// (the GitLab instance), {git_ref} the full ref.
var gitlab = platform{
	signer: "https://{ci_config_ref_uri}",
	fields: []field{
		{oidBuildSignerURI, "https://{ci_config_ref_uri}"},
		{oidBuildSignerDigest, "{ci_config_sha}"},
		{oidRunnerEnvironment, "{runner_environment}"},
		{oidSourceRepoURI, "{url}/{project_path}"},
		{oidSourceRepoDigest, "{sha}"},
		{oidSourceRepoRef, "{git_ref}"},
		{oidSourceRepoID, "{project_id}"},
		{oidSourceRepoOwnerURI, "{url}/{namespace_path}"},
		{oidSourceRepoOwnerID, "{namespace_id}"},
		{oidBuildConfigURI, "https://{ci_config_ref_uri}"},
		{oidBuildConfigDigest, "{ci_config_sha}"},
		{oidBuildTrigger, "{pipeline_source}"},
		{oidRunInvocationURI, "{url}/{project_path}/-/jobs/{job_id}"},
		{oidSourceRepoVisbility, "{project_visibility}"},
	},
}

// IdentityOf derives a workload certificate's identity from the verified
// claims of an OIDC token (string values; booleans as "true"/"false"):
//   - a token with an email claim: the email SAN (the email must be
//     verified), the proof signs the email;
//   - a GitHub Actions token (job_workflow_ref): the workflow URI SAN and
//     the build platform extensions as Fulcio writes them;
//   - a GitLab CI token (ci_config_ref_uri): likewise, GitLab's layout;
//   - otherwise the sub claim must be a URI with a scheme and host, which
//     is the URI SAN.
//
// The issuer extension is always there.
func IdentityOf(claims map[string]string) (Identity, error) {
	iss, sub := claims["iss"], claims["sub"]
	if iss == "" || sub == "" {
		return Identity{}, errors.New("the token has no issuer or subject")
	}
	id := Identity{Issuer: iss, Subject: sub}
	id.add(oidIssuerV1, iss, false)
	id.add(oidIssuer, iss, true)
	if email := claims["email"]; email != "" {
		if claims["email_verified"] != "true" {
			return Identity{}, errors.New("the token's email is not verified by its issuer")
		}
		if !certEmail(email) {
			return Identity{}, errors.New("the token's email cannot be a certificate's email address: it must be local@domain in printable ASCII without spaces")
		}
		id.Subject, id.Email = email, email
		return id, nil
	}
	var p *platform
	vars := map[string]string{}
	for k, v := range claims {
		vars[k] = v
	}
	switch {
	case claims["job_workflow_ref"] != "":
		p = &github
		vars["url"] = githubURL(iss)
	case claims["ci_config_ref_uri"] != "":
		p = &gitlab
		vars["url"] = strings.TrimSuffix(iss, "/")
		// The signer URI is https:// and this claim: it must name the
		// issuer's own GitLab instance, or any issuer whose tokens carry
		// the claim could be certified as any workflow anywhere.
		instance := vars["url"]
		for _, scheme := range []string{"https://", "http://"} {
			instance = strings.TrimPrefix(instance, scheme)
		}
		if !strings.HasPrefix(claims["ci_config_ref_uri"], instance+"/") {
			return Identity{}, errors.New("the token's ci_config_ref_uri names another host than its issuer's GitLab instance")
		}
		switch claims["ref_type"] {
		case "branch":
			vars["git_ref"] = "refs/heads/" + claims["ref"]
		case "tag":
			vars["git_ref"] = "refs/tags/" + claims["ref"]
		}
	}
	if p == nil {
		u, err := url.Parse(sub)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return Identity{}, errors.New("the token has no email, no CI workflow claims (GitHub Actions' job_workflow_ref, GitLab's ci_config_ref_uri) and its subject is not a URI: nothing to name in the certificate")
		}
		id.URI = sub
		return id, nil
	}
	san, ok := expand(p.signer, vars)
	if !ok {
		return Identity{}, errors.New("the token lacks the claims of its build signer URI")
	}
	if _, err := url.Parse(san); err != nil {
		return Identity{}, errors.New("the token's build signer is not a valid URI")
	}
	id.URI = san
	for _, f := range p.fields {
		if v, ok := expand(f.tmpl, vars); ok {
			id.add(f.oid, v, true)
		}
	}
	for _, f := range p.legacy {
		if v, ok := expand(f.tmpl, vars); ok {
			id.add(f.oid, v, false)
		}
	}
	return id, nil
}

// certEmail reports whether email can be a certificate's email SAN: an
// IA5String (RFC 5280), here printable ASCII without spaces, as
// local@domain with neither part empty.
func certEmail(email string) bool {
	for i := 0; i < len(email); i++ {
		if email[i] <= ' ' || email[i] > '~' {
			return false
		}
	}
	at := strings.LastIndexByte(email, '@')
	return at > 0 && at < len(email)-1
}

// githubIssuer is GitHub Actions' OIDC issuer on github.com.
const githubIssuer = "https://token.actions.githubusercontent.com"

// githubURL is the server of an issuer whose tokens have GitHub Actions'
// claims: github.com for GitHub's own issuer, else the issuer's origin (a
// GitHub Enterprise Server's issuer is https://HOST/_services/token;
// Forgejo's and others' have the same claims). Only GitHub's issuer may
// name workflows on github.com.
func githubURL(iss string) string {
	if strings.TrimSuffix(iss, "/") == githubIssuer {
		return "https://github.com"
	}
	if u, err := url.Parse(iss); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return strings.TrimSuffix(iss, "/")
}

// expand fills a template's {claim} references; ok is false when one is
// missing or empty.
func expand(tmpl string, vars map[string]string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), true
		}
		j := strings.IndexByte(tmpl[i:], '}')
		v := vars[tmpl[i+1:i+j]]
		if v == "" {
			return "", false
		}
		b.WriteString(tmpl[:i])
		b.WriteString(v)
		tmpl = tmpl[i+j+1:]
	}
}

// add appends an extension: DER UTF8String (the v2 extensions) or the raw
// bytes (the deprecated ones).
func (id *Identity) add(oid asn1.ObjectIdentifier, v string, der bool) {
	val := []byte(v)
	if der {
		b, err := asn1.MarshalWithParams(v, "utf8")
		if err != nil {
			return // not valid UTF-8: left out
		}
		val = b
	}
	id.Extensions = append(id.Extensions, pkix.Extension{Id: oid, Value: val})
}

func (id Identity) emails() []string {
	if id.Email == "" {
		return nil
	}
	return []string{id.Email}
}

func (id Identity) uris() []*url.URL {
	if id.URI == "" {
		return nil
	}
	u, err := url.Parse(id.URI)
	if err != nil {
		return nil
	}
	return []*url.URL{u}
}
