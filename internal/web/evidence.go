package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/custody-dev/custody/internal/apiclient"
	"github.com/custody-dev/custody/internal/assessment"
	"github.com/custody-dev/custody/internal/bundle"
)

// The Evidence page: forms that download an evidence bundle from
// GET /api/v1/export (through /evidence/bundle, which streams the API's
// answer into the download with the browser's session as the credential:
// the page neither buffers nor decides anything, and a refusal is an
// error page rather than problem JSON in the browser), the trust-root fingerprint the bundle is verified
// against (GET /api/v1/keys/trust), and the maturity assessment per
// repository (GET /api/v1/assessment) with what is missing and the
// command that closes each gap.

// evidenceRoutes registers the Evidence page's routes.
func (s *Site) evidenceRoutes() {
	s.page("GET /evidence", s.evidence)
	s.page("GET /evidence/bundle", s.evidenceBundle)
}

// evidenceBundle streams GET /api/v1/export with the form's fields into
// the download. Until the first byte the answer is still the page's: a
// refusal (a mistyped reference, an unknown environment) is the error page
// with the API's words, and a way back.
func (s *Site) evidenceBundle(w http.ResponseWriter, r *Request) error {
	q := url.Values{}
	for _, k := range []string{"ref", "environment", "project", "at", "metadataOnly"} {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	d := &download{w: w}
	err := r.API.Download(r.Context(), "/api/v1/export?"+q.Encode(), "", d, nil)
	if err != nil && !d.started {
		return err
	}
	if err != nil { // the status is sent: cut the download short
		s.opts.Log.Warn("an evidence bundle download broke off", "err", err)
		panic(http.ErrAbortHandler)
	}
	d.start()
	return nil
}

// download is an evidence bundle's answer, begun at its first byte.
type download struct {
	w       http.ResponseWriter
	started bool
}

func (d *download) start() {
	if d.started {
		return
	}
	d.started = true
	h := d.w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", `attachment; filename="evidence.tar"`)
	d.w.WriteHeader(http.StatusOK)
}

func (d *download) Write(b []byte) (int, error) {
	d.start()
	return d.w.Write(b)
}

// assessmentPage is the repositories of one page of the assessment.
const assessmentPage = 20

type evidenceView struct {
	Host string
	// Fingerprint is the hex SHA-256 of the trust root's bytes; Trust is
	// what they say.
	Fingerprint string
	Trust       bundle.Trust
	// Project filters the assessment; Assessment is nil when the API
	// refused it (AssessmentRefused says why).
	Project           string
	Assessment        *assessment.Report
	Repositories      []assessedRepository
	AssessmentRefused string
	First             bool
	FirstLink, Next   string
}

// evidence shows the export forms, the trust root and the assessment.
func (s *Site) evidence(w http.ResponseWriter, r *Request) error {
	q := r.URL.Query()
	v := evidenceView{Host: r.Host, Project: strings.TrimSpace(q.Get("project")), First: q.Get("after") == ""}
	var trust []byte
	if err := r.Get("/api/v1/keys/trust", &trust); err != nil {
		return err
	}
	v.Fingerprint = bundle.Fingerprint(trust)
	if err := json.Unmarshal(trust, &v.Trust); err != nil {
		return fmt.Errorf("reading the trust root: %w", err)
	}
	api := url.Values{"limit": {strconv.Itoa(assessmentPage)}}
	if v.Project != "" {
		api.Set("project", v.Project)
	}
	if a := q.Get("after"); a != "" {
		api.Set("after", a)
	}
	var rep assessment.Report
	err := r.Get("/api/v1/assessment?"+api.Encode(), &rep)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && (ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound):
		// The rest of the page is the caller's; the assessment is the
		// auditors'. Say what the API said.
		v.AssessmentRefused = ae.Detail
		if v.AssessmentRefused == "" {
			v.AssessmentRefused = ae.Title
		}
	case err != nil:
		return err
	default:
		v.Assessment = &rep
	}
	link := url.Values{}
	if v.Project != "" {
		link.Set("project", v.Project)
	}
	v.FirstLink = "/evidence"
	if len(link) > 0 {
		v.FirstLink += "?" + link.Encode()
	}
	v.FirstLink += "#assessment"
	if v.Assessment != nil && rep.Next != "" {
		link.Set("after", rep.Next)
		v.Next = "/evidence?" + link.Encode() + "#assessment"
	}
	if v.Assessment != nil {
		for _, repo := range rep.Repositories {
			v.Repositories = append(v.Repositories, newAssessedRepository(repo))
		}
	}
	return r.Render(w, http.StatusOK, "evidence.html", "Evidence", v)
}

// assessedRepository is one repository's assessment with its failing
// criteria split: those between it and the next stage or level first
// (the gaps to close now), the others after.
type assessedRepository struct {
	assessment.Repository
	Next, Later []assessment.Result
}

func newAssessedRepository(r assessment.Repository) assessedRepository {
	next := map[string]bool{}
	for _, id := range append(append([]string{}, r.NextStage...), r.NextLevel...) {
		next[id] = true
	}
	a := assessedRepository{Repository: r}
	for _, c := range r.Criteria {
		switch {
		case c.Pass:
		case next[c.ID]:
			a.Next = append(a.Next, c)
		default:
			a.Later = append(a.Later, c)
		}
	}
	return a
}
