package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/promotion/promotionhttp"
	"github.com/opencontainers/go-digest"
)

// The Environments pages: for each project what every environment runs
// now or at a chosen instant (/environments), and for one repository its
// environments with their history, pending approvals (Approve, Reject),
// gate evaluation, promotion, rollback and revocation
// (/environments/{repository}). Everything comes from and goes to the
// promotion API (/api/v1/projects, /environments, /promotions,
// /rejections, /gate, /rollback, /revocations); buttons show only when
// the environment answer's "can" says the caller may.

// environmentsRoutes registers the Environments pages.
func (s *Site) environmentsRoutes() {
	s.page("GET /environments", s.environments)
	s.page("GET /environments/{name...}", s.environmentRepository)
	s.page("POST /environments/approve", s.environmentPromote)
	s.page("POST /environments/promote", s.environmentPromote)
	s.page("POST /environments/reject", s.environmentReject)
	s.page("POST /environments/rollback", s.environmentRollback)
	s.page("POST /environments/revoke", s.environmentRevoke)
	s.page("POST /environments/gate", s.environmentGate)
}

// environmentsView is the overview: each project's repositories by
// environment at At.
type environmentsView struct {
	// At is the chosen instant ("" for now); AtInput is its value for the
	// datetime-local input.
	At, AtInput string
	Shown       time.Time
	Projects    []projectView
}

type projectView struct {
	promotionhttp.ProjectInfo
	Rows []projectRow
	// Pending counts the promotions waiting for approvals now, per
	// environment (in the project's order); Waiting lists them.
	Pending []int
	Waiting []promotion.Pending
}

type projectRow struct {
	Repository string
	// Cells are the environments' deployments, in the project's order.
	Cells []promotion.Deployment
}

// environments shows what every environment of every project runs, now
// or at ?at=.
func (s *Site) environments(w http.ResponseWriter, r *Request) error {
	at := apiInstant(r.URL.Query().Get("at"))
	v := environmentsView{At: at, Projects: []projectView{}}
	var projects []promotionhttp.ProjectInfo
	if err := r.Get("/api/v1/projects", &projects); err != nil {
		if ae := (*apiclient.Error)(nil); errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return r.Render(w, http.StatusOK, "environments.html", "Environments", v) // none configured
		}
		return err
	}
	for _, p := range projects {
		pv := projectView{ProjectInfo: p, Pending: make([]int, len(p.Environments))}
		rows := map[string]int{}
		for j, e := range p.Environments {
			q := url.Values{"project": {p.Name}, "environment": {e.Name}}
			if at != "" {
				q.Set("at", at)
			}
			var pe promotionhttp.ProjectEnvironment
			if err := r.Get("/api/v1/environments?"+q.Encode(), &pe); err != nil {
				return err
			}
			v.Shown = pe.At
			pv.Pending[j] = len(pe.Pending)
			pv.Waiting = append(pv.Waiting, pe.Pending...)
			if at != "" {
				v.AtInput = pickerValue(pe.At)
			}
			for _, d := range pe.Deployments {
				k, ok := rows[d.Repository]
				if !ok {
					k = len(pv.Rows)
					rows[d.Repository] = k
					pv.Rows = append(pv.Rows, projectRow{Repository: d.Repository, Cells: make([]promotion.Deployment, len(p.Environments))})
				}
				pv.Rows[k].Cells[j] = d
			}
		}
		v.Projects = append(v.Projects, pv)
	}
	return r.Render(w, http.StatusOK, "environments.html", "Environments", v)
}

// pickerLayouts are the values of a datetime-local input (step="1"
// sends seconds, browsers may leave them out).
var pickerLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04"}

// apiInstant is the ?at= the API is asked for: a date picker's value
// (no zone; the page labels it UTC) as RFC 3339 in UTC, anything else as
// given (the API reads it or says what it takes).
func apiInstant(at string) string {
	at = strings.TrimSpace(at)
	for _, l := range pickerLayouts {
		if t, err := time.ParseInLocation(l, at, time.UTC); err == nil {
			return t.Format(time.RFC3339)
		}
	}
	return at
}

// pickerValue is t as a datetime-local input's value, in UTC.
func pickerValue(t time.Time) string { return t.UTC().Format(pickerLayouts[0]) }

// repositoryEnvView is one repository's environments.
type repositoryEnvView struct {
	Repository, Project string
	At, AtInput         string
	Environments        []envView
	// Can is what the caller may do (any environment's answer: the grants
	// are per repository).
	Can promotionhttp.Abilities
	// Done is the last action's outcome (post/redirect/get).
	Done string
	// Gate is an evaluation or a refused promotion's gate, with its
	// digest and environment.
	Gate *gateView
}

// envView is one environment of a repository; History is cut to its
// newest historyRows positions, Earlier counts the rest.
type envView struct {
	promotionhttp.EnvironmentStatus
	Earlier int
}

// historyRows is how many positions of an environment's history a page
// shows (the newest; `custody env ENV REPOSITORY` lists all).
const historyRows = pageSize

type gateView struct {
	Digest, Environment string
	Refused             string // the refusal, when a promotion was refused
	Result              gate.Result
	Problems            []string
}

// environmentRepository shows one repository's environments.
func (s *Site) environmentRepository(w http.ResponseWriter, r *Request) error {
	v, err := s.repositoryEnv(r, r.PathValue("name"), r.URL.Query().Get("project"), r.URL.Query().Get("at"))
	if err != nil {
		return err
	}
	v.Done = v.notice(r.URL.Query())
	return r.Render(w, http.StatusOK, "environment.html", "Environments of "+v.Repository, v)
}

func (s *Site) repositoryEnv(r *Request, repo, project, at string) (*repositoryEnvView, error) {
	v := &repositoryEnvView{Repository: repo, Project: project, At: apiInstant(at)}
	var projects []promotionhttp.ProjectInfo
	if err := r.Get("/api/v1/projects", &projects); err != nil {
		return nil, err
	}
	var envs []promotionhttp.EnvironmentInfo
	for _, p := range projects {
		if p.Name == project {
			envs = p.Environments
		}
	}
	if envs == nil {
		return nil, NotFound("No project named " + project + ": open the repository from the Environments page.")
	}
	for _, e := range envs {
		q := url.Values{"repository": {repo}, "environment": {e.Name}}
		if v.At != "" {
			q.Set("at", v.At)
		}
		var st promotionhttp.EnvironmentStatus
		if err := r.Get("/api/v1/environments?"+q.Encode(), &st); err != nil {
			return nil, err
		}
		for i, j := 0, len(st.History)-1; i < j; i, j = i+1, j-1 { // newest first
			st.History[i], st.History[j] = st.History[j], st.History[i]
		}
		v.Can = st.Can
		if v.At != "" {
			v.AtInput = pickerValue(st.At)
		}
		ev := envView{EnvironmentStatus: st}
		if len(ev.History) > historyRows {
			ev.Earlier = len(ev.History) - historyRows
			ev.History = ev.History[:historyRows]
		}
		v.Environments = append(v.Environments, ev)
	}
	return v, nil
}

// back is the repository's environments page after an action, with the
// action's notice: its kind (a key of envNotices), digest and environment.
func back(repo, project, done, dgst, env string) string {
	q := url.Values{"project": {project}, "done": {done}}
	if dgst != "" {
		q.Set("digest", dgst)
	}
	if env != "" {
		q.Set("env", env)
	}
	return "/environments/" + urlPathEscape(repo) + "?" + q.Encode()
}

// envNotices are the notices an action redirects to (?done=KEY): fixed
// texts, filled in only with a well-formed digest and one of the
// project's environments, so a link from elsewhere cannot make this site
// say something of its choosing (?done=Sign+in+again+at+...).
var envNotices = map[string]string{
	"promoted":   "%[1]s promoted to %[2]s.",
	"approved":   "Approval recorded: %[1]s for %[2]s has %[3]d of %[4]d approvals.",
	"rejected":   "Rejected the promotion of %[1]s to %[2]s.",
	"rolledback": "Rolled back %[2]s.",
	"revoked":    "Revoked %[1]s.",
}

// notice is the page's notice for q's done, digest and env; "" when q
// names no known notice or names something that is not the project's.
func (v *repositoryEnvView) notice(q url.Values) string {
	f, ok := envNotices[q.Get("done")]
	if !ok {
		return ""
	}
	dgst, env := q.Get("digest"), q.Get("env")
	if dgst != "" {
		if _, err := digest.Parse(dgst); err != nil {
			return ""
		}
		dgst = shortDigest(dgst)
	}
	if env != "" && !slices.ContainsFunc(v.Environments, func(e envView) bool { return e.Environment == env }) {
		return ""
	}
	if q.Get("done") == "approved" {
		n, err1 := strconv.Atoi(q.Get("approvals"))
		need, err2 := strconv.Atoi(q.Get("needed"))
		if err1 != nil || err2 != nil || n < 0 || need < n || need > 1000 {
			return ""
		}
		return fmt.Sprintf(f, dgst, env, n, need)
	}
	return fmt.Sprintf(f, dgst, env)
}

// form reads the action forms' common fields.
func actionForm(r *Request) (repo, project, dgst, env, reason string) {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return f("repository"), f("project"), f("digest"), f("environment"), f("reason")
}

// environmentPromote promotes (or approves: the same API call, which
// records the caller's signed approval while approvals are missing).
func (s *Site) environmentPromote(w http.ResponseWriter, r *Request) error {
	repo, project, dgst, env, reason := actionForm(r)
	var out promotion.Outcome
	err := r.Call(http.MethodPost, "/api/v1/promotions", promotion.Request{Repository: repo, Digest: dgst, Environment: env, Reason: reason}, &out)
	var ae *apiclient.Error
	if errors.As(err, &ae) && len(ae.Body) > 0 {
		var pp promotionhttp.PromotionProblem
		if json.Unmarshal(ae.Body, &pp) == nil && len(pp.Outcome.Gate.Rules) > 0 {
			// Refused by the gate: nothing changed; show why.
			v, verr := s.repositoryEnv(r, repo, project, "")
			if verr != nil {
				return verr
			}
			v.Gate = &gateView{Digest: dgst, Environment: env, Refused: ae.Detail, Result: pp.Outcome.Gate, Problems: pp.Outcome.Problems}
			return r.Render(w, ae.Status, "environment.html", "Promotion refused", v)
		}
	}
	if err != nil {
		return err
	}
	to := back(repo, project, "promoted", dgst, env)
	if out.Pending {
		to = back(repo, project, "approved", dgst, env) + "&" +
			url.Values{"approvals": {strconv.Itoa(len(out.Approvers))}, "needed": {strconv.Itoa(out.Needed)}}.Encode()
	}
	http.Redirect(w, r.Request, to, http.StatusSeeOther)
	return nil
}

// environmentReject rejects a promotion pending approval.
func (s *Site) environmentReject(w http.ResponseWriter, r *Request) error {
	repo, project, dgst, env, reason := actionForm(r)
	if err := r.Call(http.MethodPost, "/api/v1/rejections", promotion.Request{Repository: repo, Digest: dgst, Environment: env, Reason: reason}, nil); err != nil {
		return err
	}
	http.Redirect(w, r.Request, back(repo, project, "rejected", dgst, env), http.StatusSeeOther)
	return nil
}

// environmentRollback points an environment back at its previous digest.
func (s *Site) environmentRollback(w http.ResponseWriter, r *Request) error {
	repo, project, _, env, reason := actionForm(r)
	if err := r.Call(http.MethodPost, "/api/v1/rollback", promotionhttp.RollbackRequest{Repository: repo, Environment: env, Reason: reason}, nil); err != nil {
		return err
	}
	http.Redirect(w, r.Request, back(repo, project, "rolledback", "", env), http.StatusSeeOther)
	return nil
}

// environmentRevoke revokes a digest.
func (s *Site) environmentRevoke(w http.ResponseWriter, r *Request) error {
	repo, project, dgst, _, reason := actionForm(r)
	if err := r.Call(http.MethodPost, "/api/v1/revocations", promotionhttp.RevokeRequest{Repository: repo, Digest: dgst, Reason: reason}, nil); err != nil {
		return err
	}
	http.Redirect(w, r.Request, back(repo, project, "revoked", dgst, ""), http.StatusSeeOther)
	return nil
}

// environmentGate evaluates an environment's gate on a digest (changes
// nothing, so it renders the result rather than redirecting).
func (s *Site) environmentGate(w http.ResponseWriter, r *Request) error {
	repo, project, dgst, env, _ := actionForm(r)
	var out struct {
		Gate     gate.Result `json:"gate"`
		Problems []string    `json:"problems"`
	}
	if err := r.Call(http.MethodPost, "/api/v1/gate", promotion.Request{Repository: repo, Digest: dgst, Environment: env}, &out); err != nil {
		return err
	}
	v, err := s.repositoryEnv(r, repo, project, "")
	if err != nil {
		return err
	}
	v.Gate = &gateView{Digest: dgst, Environment: env, Result: out.Gate, Problems: out.Problems}
	return r.Render(w, http.StatusOK, "environment.html", "Gate of "+env, v)
}
