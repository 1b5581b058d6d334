package provenance

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Claims are the string claims of a CI job's OIDC ID token, which the
// caller has VERIFIED (signature, issuer, audience, expiry) before calling
// FromClaims. The JSON tags are the claim names, so a verified token's
// claims decode straight into it; claims that are numbers in a token
// (GitLab's runner_id) are not used.
type Claims struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`

	// Shared by both platforms (GitLab's ref is a bare name; its ref_type
	// says "branch" or "tag").
	Ref               string `json:"ref"`
	RefType           string `json:"ref_type"`
	SHA               string `json:"sha"`
	RunnerEnvironment string `json:"runner_environment"`

	// GitHub Actions.
	Repository        string `json:"repository"`
	RepositoryID      string `json:"repository_id"`
	RepositoryOwnerID string `json:"repository_owner_id"`
	WorkflowRef       string `json:"workflow_ref"`
	WorkflowSHA       string `json:"workflow_sha"`
	JobWorkflowRef    string `json:"job_workflow_ref"`
	JobWorkflowSHA    string `json:"job_workflow_sha"`
	RunID             string `json:"run_id"`
	RunAttempt        string `json:"run_attempt"`
	EventName         string `json:"event_name"`

	// GitLab CI.
	ProjectPath    string `json:"project_path"`
	ProjectID      string `json:"project_id"`
	CIConfigRefURI string `json:"ci_config_ref_uri"`
	CIConfigSHA    string `json:"ci_config_sha"`
	PipelineID     string `json:"pipeline_id"`
	PipelineSource string `json:"pipeline_source"`
	JobID          string `json:"job_id"`
}

// ClaimsOptions are what FromClaims takes besides the claims.
type ClaimsOptions struct {
	// ServerURL is the platform's web address: GitHub's defaults to
	// https://github.com (set it for GitHub Enterprise Server), GitLab's
	// to the token issuer (which is the instance URL).
	ServerURL string
	// StartedOn and FinishedOn bound the run as the server saw it (for
	// instance token issue time and upload time); zero values are left out.
	StartedOn, FinishedOn time.Time
	// ReportedDependencies are dependencies the job reported (for
	// instance from its lockfiles). They are recorded after the source
	// commit, but only the source comes from the token: the platform does
	// not vouch for these.
	ReportedDependencies []ResourceDescriptor
}

// FromClaims builds the provenance a platform signs (the level 3 mode):
// the source repository, ref and commit, the workflow, and the run are
// taken only from verified token claims, never from the job's own word.
// builderID is the custody builder's identity (the trust boundary the
// verifier will name in Expect.BuilderID).
//
// GitHub Actions claims are recognised by repository and workflow_ref;
// GitLab CI claims by project_path. The workflow is the top-level one
// (workflow_ref, or ci_config_ref_uri) with its commit as a gitCommit
// digest; a reusable workflow (job_workflow_ref) is recorded in
// internalParameters.
func FromClaims(c Claims, builderID string, opts ClaimsOptions) (*Predicate, error) {
	if builderID == "" {
		return nil, errors.New("provenance.FromClaims: builder ID is required")
	}
	var (
		p   *Predicate
		err error
	)
	switch {
	case c.Repository != "" && c.WorkflowRef != "":
		p, err = fromGitHubClaims(c, builderID, opts)
	case c.ProjectPath != "":
		p, err = fromGitLabClaims(c, builderID, opts)
	default:
		return nil, errors.New("token claims are neither GitHub Actions (repository, workflow_ref) nor GitLab CI (project_path)")
	}
	if err != nil {
		return nil, err
	}
	if err := checkCommits(p); err != nil {
		return nil, err
	}
	if !opts.StartedOn.IsZero() {
		p.RunDetails.Metadata.StartedOn = utc(opts.StartedOn)
	}
	if !opts.FinishedOn.IsZero() {
		p.RunDetails.Metadata.FinishedOn = utc(opts.FinishedOn)
	}
	deps := &p.BuildDefinition.ResolvedDependencies
	*deps = append(*deps, opts.ReportedDependencies...)
	if len(*deps) > MaxDependencies {
		return nil, fmt.Errorf("%d dependencies, more than the %d a provenance can carry", len(*deps), MaxDependencies)
	}
	return p, nil
}

func missingClaims(c map[string]string) error {
	var missing []string
	for k, v := range c {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("token lacks the claims %s", strings.Join(missing, ", "))
}

func fromGitHubClaims(c Claims, builderID string, opts ClaimsOptions) (*Predicate, error) {
	if err := missingClaims(map[string]string{"repository": c.Repository, "ref": c.Ref, "sha": c.SHA, "workflow_ref": c.WorkflowRef, "run_id": c.RunID}); err != nil {
		return nil, fmt.Errorf("GitHub Actions: %w", err)
	}
	wfRepo, wfPath, wfRef, err := splitWorkflowRef(c.WorkflowRef)
	if err != nil {
		return nil, fmt.Errorf("GitHub Actions: workflow_ref: %w", err)
	}
	if !strings.EqualFold(wfRepo, c.Repository) {
		return nil, fmt.Errorf("GitHub Actions: workflow_ref %q is not in repository %q", c.WorkflowRef, c.Repository)
	}
	server := strings.TrimSuffix(orDefault(opts.ServerURL, "https://github.com"), "/")
	repoURI := "git+" + server + "/" + c.Repository
	wf := &Workflow{Repository: repoURI, Path: wfPath, Ref: wfRef}
	if c.WorkflowSHA != "" {
		wf.Digest = map[string]string{"gitCommit": strings.ToLower(c.WorkflowSHA)}
	}
	attempt := orDefault(c.RunAttempt, "1")
	inv := fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", server, c.Repository, c.RunID, attempt)
	p := newPredicate(BuildTypeGitHubActions, Source{URI: repoURI, Ref: c.Ref, Commit: c.SHA}, wf, builderID, inv)
	p.BuildDefinition.InternalParameters.Strings = nonEmpty(map[string]string{
		"platform":            "github-actions",
		"issuer":              c.Issuer,
		"job_workflow_ref":    c.JobWorkflowRef,
		"job_workflow_sha":    c.JobWorkflowSHA,
		"runner_environment":  c.RunnerEnvironment,
		"event_name":          c.EventName,
		"repository_id":       c.RepositoryID,
		"repository_owner_id": c.RepositoryOwnerID,
		"run_id":              c.RunID,
		"run_attempt":         attempt,
	})
	return p, nil
}

func fromGitLabClaims(c Claims, builderID string, opts ClaimsOptions) (*Predicate, error) {
	if err := missingClaims(map[string]string{"project_path": c.ProjectPath, "ref": c.Ref, "sha": c.SHA, "pipeline_id": c.PipelineID}); err != nil {
		return nil, fmt.Errorf("GitLab CI: %w", err)
	}
	server := strings.TrimSuffix(orDefault(opts.ServerURL, c.Issuer), "/")
	if !strings.HasPrefix(server, "https://") && !strings.HasPrefix(server, "http://") {
		return nil, errors.New("GitLab CI: no server URL: the token has no iss claim and ClaimsOptions.ServerURL is empty")
	}
	ref := c.Ref
	switch c.RefType {
	case "branch":
		ref = "refs/heads/" + c.Ref
	case "tag":
		ref = "refs/tags/" + c.Ref
	}
	repoURI := "git+" + server + "/" + c.ProjectPath
	var wf *Workflow
	if c.CIConfigRefURI != "" {
		// host/group/project//path/to/.gitlab-ci.yml@refs/heads/main
		loc, wfRef, ok := strings.Cut(c.CIConfigRefURI, "@")
		repo, file, ok2 := strings.Cut(loc, "//")
		if !ok || !ok2 || repo == "" || file == "" {
			return nil, fmt.Errorf("GitLab CI: ci_config_ref_uri %q is not host/project//path@ref", c.CIConfigRefURI)
		}
		scheme := "https://"
		if strings.HasPrefix(server, "http://") {
			scheme = "http://"
		}
		wf = &Workflow{Repository: "git+" + scheme + repo, Path: file, Ref: wfRef}
		if c.CIConfigSHA != "" {
			wf.Digest = map[string]string{"gitCommit": strings.ToLower(c.CIConfigSHA)}
		}
	}
	inv := fmt.Sprintf("%s/%s/-/pipelines/%s", server, c.ProjectPath, c.PipelineID)
	if c.JobID != "" {
		inv = fmt.Sprintf("%s/%s/-/jobs/%s", server, c.ProjectPath, c.JobID)
	}
	p := newPredicate(BuildTypeGitLabCI, Source{URI: repoURI, Ref: ref, Commit: c.SHA}, wf, builderID, inv)
	p.BuildDefinition.InternalParameters.Strings = nonEmpty(map[string]string{
		"platform":           "gitlab-ci",
		"issuer":             c.Issuer,
		"project_id":         c.ProjectID,
		"pipeline_id":        c.PipelineID,
		"pipeline_source":    c.PipelineSource,
		"job_id":             c.JobID,
		"runner_environment": c.RunnerEnvironment,
	})
	return p, nil
}
