package provenance

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// maxWorkflowBytes caps the workflow file FromEnv hashes.
const maxWorkflowBytes = 4 << 20

// FromEnv describes the running CI job from its environment, read through
// getenv (os.Getenv in production), with the dependencies pinned by the
// lockfiles under workspace (see Dependencies; "" skips them), finishing
// at now. The platform is detected in this order:
//
// GitHub Actions (GITHUB_ACTIONS=true): source git+$GITHUB_SERVER_URL/
// $GITHUB_REPOSITORY at $GITHUB_REF and $GITHUB_SHA; workflow path from
// $GITHUB_WORKFLOW_REF; builder.id $GITHUB_SERVER_URL/actions/runner/
// $RUNNER_ENVIRONMENT ("github-hosted" or "self-hosted"); invocationId
// .../actions/runs/$GITHUB_RUN_ID/attempts/$GITHUB_RUN_ATTEMPT. GitHub
// exposes no start time, so startedOn is set only from
// CUSTODY_BUILD_STARTED_ON.
//
// GitLab CI (GITLAB_CI=true): source git+$CI_PROJECT_URL at
// refs/tags/$CI_COMMIT_TAG, refs/heads/$CI_COMMIT_BRANCH or
// $CI_MERGE_REQUEST_REF_PATH, and $CI_COMMIT_SHA; workflow path
// $CI_CONFIG_PATH (default .gitlab-ci.yml); builder.id
// $CI_SERVER_URL/-/runners/$CI_RUNNER_ID; invocationId $CI_JOB_URL;
// startedOn $CI_JOB_STARTED_AT.
//
// Any other CI, through these variables (CUSTODY_BUILD_SOURCE_URI and
// CUSTODY_BUILD_BUILDER_ID are required):
//
//	CUSTODY_BUILD_SOURCE_URI     repository, e.g. git+https://git.example.com/team/app
//	CUSTODY_BUILD_REF            full git ref, e.g. refs/heads/main
//	CUSTODY_BUILD_COMMIT         commit hash (hex)
//	CUSTODY_BUILD_WORKFLOW_PATH  pipeline file, relative to the workspace
//	CUSTODY_BUILD_BUILDER_ID     URI of the build platform, e.g. https://ci.example.com/agents/linux
//	CUSTODY_BUILD_INVOCATION_ID  URI or ID of this run
//	CUSTODY_BUILD_STARTED_ON     RFC 3339 start time (any platform)
//
// When the workflow file exists in the workspace its SHA-256 is recorded.
// Everything here is the job's own word: a job can set any variable it
// likes. Use FromClaims where the server must vouch for the facts.
func FromEnv(getenv func(string) string, workspace string, now time.Time) (*Predicate, error) {
	if getenv == nil {
		return nil, errors.New("provenance.FromEnv: no getenv")
	}
	var (
		p   *Predicate
		err error
	)
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		p, err = fromGitHubEnv(getenv)
	case getenv("GITLAB_CI") == "true":
		p, err = fromGitLabEnv(getenv)
	case getenv("CUSTODY_BUILD_SOURCE_URI") != "":
		p, err = fromGenericEnv(getenv)
	default:
		return nil, errors.New("no CI platform detected (GITHUB_ACTIONS, GITLAB_CI): set CUSTODY_BUILD_SOURCE_URI and CUSTODY_BUILD_BUILDER_ID to describe the build")
	}
	if err != nil {
		return nil, err
	}
	if err := checkCommits(p); err != nil {
		return nil, err
	}
	md := p.RunDetails.Metadata
	if s := getenv("CUSTODY_BUILD_STARTED_ON"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, fmt.Errorf("CUSTODY_BUILD_STARTED_ON=%q is not an RFC 3339 time (e.g. 2026-11-22T05:00:00Z)", s)
		}
		md.StartedOn = utc(t)
	}
	if !now.IsZero() {
		md.FinishedOn = utc(now)
	}
	ep := &p.BuildDefinition.ExternalParameters
	if workspace != "" {
		if ep.Workflow != nil && ep.Workflow.Path != "" {
			d, err := fileSHA256(workspace, ep.Workflow.Path)
			if err != nil {
				return nil, err
			}
			if d != "" {
				ep.Workflow.Digest = map[string]string{"sha256": d}
			}
		}
		deps, err := Dependencies(workspace)
		if err != nil {
			return nil, err
		}
		p.BuildDefinition.ResolvedDependencies = append(p.BuildDefinition.ResolvedDependencies, deps...)
	}
	if n := len(p.BuildDefinition.ResolvedDependencies); n > MaxDependencies {
		return nil, fmt.Errorf("%d dependencies, more than the %d a provenance can carry", n, MaxDependencies)
	}
	return p, nil
}

// checkCommits refuses commit hashes that are not 40 hex digits (a SHA-1
// git commit, the only length in-toto's gitCommit digest allows).
func checkCommits(p *Predicate) error {
	ep := p.BuildDefinition.ExternalParameters
	if ep.Source != nil && ep.Source.Commit != "" && !isCommit(ep.Source.Commit) {
		return fmt.Errorf("commit %q is not a 40-digit hex git commit hash", ep.Source.Commit)
	}
	if ep.Workflow != nil && ep.Workflow.Digest["gitCommit"] != "" && !isCommit(ep.Workflow.Digest["gitCommit"]) {
		return fmt.Errorf("workflow commit %q is not a 40-digit hex git commit hash", ep.Workflow.Digest["gitCommit"])
	}
	return nil
}

func isCommit(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 40 && err == nil
}

func utc(t time.Time) *time.Time {
	t = t.UTC().Truncate(time.Second)
	return &t
}

// newPredicate fills the parts every platform shares.
func newPredicate(buildType string, src Source, wf *Workflow, builderID, invocation string) *Predicate {
	p := &Predicate{
		BuildDefinition: BuildDefinition{
			BuildType:          buildType,
			ExternalParameters: ExternalParameters{Source: &src, Workflow: wf},
		},
		RunDetails: RunDetails{
			Builder:  Builder{ID: builderID},
			Metadata: &Metadata{InvocationID: invocation},
		},
	}
	if src.Commit != "" {
		uri := src.URI
		if src.Ref != "" {
			uri += "@" + src.Ref
		}
		p.BuildDefinition.ResolvedDependencies = []ResourceDescriptor{{URI: uri, Digest: map[string]string{"gitCommit": strings.ToLower(src.Commit)}}}
	}
	return p
}

// require returns the named variables, or an error naming the missing ones.
func require(getenv func(string) string, names ...string) (map[string]string, error) {
	got := map[string]string{}
	var missing []string
	for _, n := range names {
		if v := getenv(n); v != "" {
			got[n] = v
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment lacks %s", strings.Join(missing, ", "))
	}
	return got, nil
}

func fromGitHubEnv(getenv func(string) string) (*Predicate, error) {
	v, err := require(getenv, "GITHUB_REPOSITORY", "GITHUB_REF", "GITHUB_SHA", "GITHUB_RUN_ID")
	if err != nil {
		return nil, fmt.Errorf("GitHub Actions: %w", err)
	}
	server := strings.TrimSuffix(orDefault(getenv("GITHUB_SERVER_URL"), "https://github.com"), "/")
	repo := v["GITHUB_REPOSITORY"]
	src := Source{URI: "git+" + server + "/" + repo, Ref: v["GITHUB_REF"], Commit: v["GITHUB_SHA"]}
	var wf *Workflow
	if wr := getenv("GITHUB_WORKFLOW_REF"); wr != "" {
		wfRepo, wfPath, wfRef, err := splitWorkflowRef(wr)
		if err != nil {
			return nil, fmt.Errorf("GitHub Actions: GITHUB_WORKFLOW_REF: %w", err)
		}
		wf = &Workflow{Repository: "git+" + server + "/" + wfRepo, Path: wfPath, Ref: wfRef}
	}
	runner := orDefault(getenv("RUNNER_ENVIRONMENT"), "unknown")
	attempt := orDefault(getenv("GITHUB_RUN_ATTEMPT"), "1")
	inv := fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", server, repo, v["GITHUB_RUN_ID"], attempt)
	p := newPredicate(BuildTypeGitHubActions, src, wf, server+"/actions/runner/"+runner, inv)
	p.BuildDefinition.InternalParameters.Strings = nonEmpty(map[string]string{
		"platform":            "github-actions",
		"event_name":          getenv("GITHUB_EVENT_NAME"),
		"repository_id":       getenv("GITHUB_REPOSITORY_ID"),
		"repository_owner_id": getenv("GITHUB_REPOSITORY_OWNER_ID"),
		"runner_environment":  getenv("RUNNER_ENVIRONMENT"),
		"run_id":              v["GITHUB_RUN_ID"],
		"run_attempt":         attempt,
		"workflow_ref":        getenv("GITHUB_WORKFLOW_REF"),
	})
	return p, nil
}

// splitWorkflowRef splits "owner/repo/.github/workflows/x.yml@refs/heads/main".
func splitWorkflowRef(wr string) (repo, file, ref string, err error) {
	pathPart, ref, ok := strings.Cut(wr, "@")
	parts := strings.SplitN(pathPart, "/", 3)
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("%q is not owner/repo/path@ref", wr)
	}
	return parts[0] + "/" + parts[1], parts[2], ref, nil
}

func fromGitLabEnv(getenv func(string) string) (*Predicate, error) {
	v, err := require(getenv, "CI_SERVER_URL", "CI_PROJECT_URL", "CI_COMMIT_SHA", "CI_JOB_URL")
	if err != nil {
		return nil, fmt.Errorf("GitLab CI: %w", err)
	}
	ref := ""
	switch {
	case getenv("CI_COMMIT_TAG") != "":
		ref = "refs/tags/" + getenv("CI_COMMIT_TAG")
	case getenv("CI_COMMIT_BRANCH") != "":
		ref = "refs/heads/" + getenv("CI_COMMIT_BRANCH")
	case getenv("CI_MERGE_REQUEST_REF_PATH") != "":
		ref = getenv("CI_MERGE_REQUEST_REF_PATH")
	default:
		ref = getenv("CI_COMMIT_REF_NAME")
	}
	projectURI := "git+" + strings.TrimSuffix(v["CI_PROJECT_URL"], "/")
	src := Source{URI: projectURI, Ref: ref, Commit: v["CI_COMMIT_SHA"]}
	wf := &Workflow{Repository: projectURI, Path: orDefault(getenv("CI_CONFIG_PATH"), ".gitlab-ci.yml"), Ref: ref}
	server := strings.TrimSuffix(v["CI_SERVER_URL"], "/")
	p := newPredicate(BuildTypeGitLabCI, src, wf, server+"/-/runners/"+orDefault(getenv("CI_RUNNER_ID"), "unknown"), v["CI_JOB_URL"])
	if s := getenv("CI_JOB_STARTED_AT"); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			p.RunDetails.Metadata.StartedOn = utc(t)
		}
	}
	p.BuildDefinition.InternalParameters.Strings = nonEmpty(map[string]string{
		"platform":        "gitlab-ci",
		"project_id":      getenv("CI_PROJECT_ID"),
		"pipeline_id":     getenv("CI_PIPELINE_ID"),
		"pipeline_source": getenv("CI_PIPELINE_SOURCE"),
		"job_id":          getenv("CI_JOB_ID"),
		"job_name":        getenv("CI_JOB_NAME"),
		"runner_id":       getenv("CI_RUNNER_ID"),
	})
	return p, nil
}

func fromGenericEnv(getenv func(string) string) (*Predicate, error) {
	v, err := require(getenv, "CUSTODY_BUILD_SOURCE_URI", "CUSTODY_BUILD_BUILDER_ID")
	if err != nil {
		return nil, err
	}
	src := Source{URI: v["CUSTODY_BUILD_SOURCE_URI"], Ref: getenv("CUSTODY_BUILD_REF"), Commit: getenv("CUSTODY_BUILD_COMMIT")}
	var wf *Workflow
	if wp := getenv("CUSTODY_BUILD_WORKFLOW_PATH"); wp != "" {
		wf = &Workflow{Repository: src.URI, Path: wp, Ref: src.Ref}
	}
	p := newPredicate(BuildTypeGeneric, src, wf, v["CUSTODY_BUILD_BUILDER_ID"], getenv("CUSTODY_BUILD_INVOCATION_ID"))
	p.BuildDefinition.InternalParameters.Strings = map[string]string{"platform": "generic"}
	return p, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonEmpty(m map[string]string) map[string]string {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// fileSHA256 hashes a workspace file, streaming; "" if it does not exist.
// The path must stay inside the workspace.
func fileSHA256(workspace, rel string) (string, error) {
	clean := path.Clean(filepath.ToSlash(rel))
	if !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", fmt.Errorf("workflow path %q leaves the workspace", rel)
	}
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return "", fmt.Errorf("opening workspace: %w", err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(clean))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("workflow file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxWorkflowBytes+1))
	if err != nil {
		return "", fmt.Errorf("hashing workflow file %s: %w", rel, err)
	}
	if n > maxWorkflowBytes {
		return "", fmt.Errorf("workflow file %s is larger than %d bytes", rel, maxWorkflowBytes)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
