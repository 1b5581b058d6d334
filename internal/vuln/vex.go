package vuln

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/custody-dev/custody/internal/ecosystem"
	"github.com/custody-dev/custody/internal/jsondoc"
)

// MaxVEXSize is the largest OpenVEX document ParseVEX reads, in bytes.
const MaxVEXSize = 4 << 20

// VEXStatus is an OpenVEX statement status.
type VEXStatus string

// The OpenVEX statuses.
const (
	VEXNotAffected        VEXStatus = "not_affected"
	VEXAffected           VEXStatus = "affected"
	VEXFixed              VEXStatus = "fixed"
	VEXUnderInvestigation VEXStatus = "under_investigation"
)

// vexJustifications are OpenVEX's justification labels for not_affected.
var vexJustifications = map[string]bool{
	"component_not_present":                             true,
	"vulnerable_code_not_present":                       true,
	"vulnerable_code_not_in_execute_path":               true,
	"vulnerable_code_cannot_be_controlled_by_adversary": true,
	"inline_mitigations_already_exist":                  true,
}

// VEXDocument is an OpenVEX v0.2.0 document
// (https://github.com/openvex/spec/blob/main/OPENVEX-SPEC.md).
//
// Expiry is custody's extension: the field "custody_expires" (an RFC 3339
// time), on a statement or, as the default for all its statements, on the
// document. A waiver stops applying at that instant; a statement without
// either never expires. OpenVEX consumers ignore fields they do not know,
// so documents carrying it stay valid OpenVEX.
type VEXDocument struct {
	Context     string         `json:"@context"`
	ID          string         `json:"@id"`
	Author      string         `json:"author"`
	Role        string         `json:"role,omitempty"`
	Timestamp   time.Time      `json:"timestamp"`
	LastUpdated *time.Time     `json:"last_updated,omitempty"`
	Version     int            `json:"version"`
	Tooling     string         `json:"tooling,omitempty"`
	Expires     *time.Time     `json:"custody_expires,omitempty"`
	Statements  []VEXStatement `json:"statements"`
}

// VEXStatement is one OpenVEX statement: the status of one vulnerability
// in some products.
type VEXStatement struct {
	ID              string           `json:"@id,omitempty"`
	Vulnerability   VEXVulnerability `json:"vulnerability"`
	Timestamp       *time.Time       `json:"timestamp,omitempty"`
	LastUpdated     *time.Time       `json:"last_updated,omitempty"`
	Products        []VEXProduct     `json:"products"`
	Status          VEXStatus        `json:"status"`
	StatusNotes     string           `json:"status_notes,omitempty"`
	Justification   string           `json:"justification,omitempty"`
	ImpactStatement string           `json:"impact_statement,omitempty"`
	ActionStatement string           `json:"action_statement,omitempty"`
	// Expires is custody's "custody_expires" extension (see VEXDocument).
	Expires *time.Time `json:"custody_expires,omitempty"`
}

// VEXVulnerability names the vulnerability a statement is about.
type VEXVulnerability struct {
	ID          string   `json:"@id,omitempty"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
}

// VEXProduct is a product (or, in Subcomponents, a component of it): an
// IRI in ID (usually a purl), identifiers ("purl", "cpe22", "cpe23") and
// hashes ("sha-256": hex, ...).
type VEXProduct struct {
	ID            string            `json:"@id,omitempty"`
	Identifiers   map[string]string `json:"identifiers,omitempty"`
	Hashes        map[string]string `json:"hashes,omitempty"`
	Subcomponents []VEXProduct      `json:"subcomponents,omitempty"`
}

// Waiver records why ApplyWaivers waived a finding.
type Waiver struct {
	Document        string    `json:"document,omitempty"` // the VEX document's @id
	Author          string    `json:"author"`
	Status          VEXStatus `json:"status"` // VEXNotAffected or VEXFixed
	Justification   string    `json:"justification,omitempty"`
	ImpactStatement string    `json:"impactStatement,omitempty"`
	// Timestamp is when the statement was made (or last updated).
	Timestamp time.Time `json:"timestamp"`
	// Expires is when the waiver lapses; zero when it does not.
	Expires time.Time `json:"expires,omitzero"`
}

// ParseVEX reads and validates one OpenVEX v0.2.0 JSON document of at
// most MaxVEXSize bytes. It requires an OpenVEX @context, an author and a
// timestamp, and for every statement a vulnerability name, at least one
// product, a known status, and for not_affected a known justification or
// an impact statement.
func ParseVEX(r io.Reader) (*VEXDocument, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxVEXSize+1))
	if err != nil {
		return nil, fmt.Errorf("vex: %w", err)
	}
	if len(data) > MaxVEXSize {
		return nil, fmt.Errorf("vex: document larger than %d bytes", MaxVEXSize)
	}
	if err := jsondoc.Check(data); err != nil {
		return nil, fmt.Errorf("vex: not an OpenVEX JSON document: %w", err)
	}
	var d VEXDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("vex: not an OpenVEX JSON document: %w%s", err, timeHint(err))
	}
	if dec.More() {
		return nil, errors.New("vex: trailing data after the JSON document")
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("vex: %w", err)
	}
	return &d, nil
}

func (d *VEXDocument) validate() error {
	if !strings.HasPrefix(d.Context, "https://openvex.dev/ns") {
		return fmt.Errorf(`@context %q is not OpenVEX (want "https://openvex.dev/ns/v0.2.0")`, d.Context)
	}
	if d.Author == "" {
		return errors.New(`the document has no "author"`)
	}
	if d.Timestamp.IsZero() {
		return errors.New(`the document has no "timestamp" (RFC 3339)`)
	}
	for i, s := range d.Statements {
		where := fmt.Sprintf("statements[%d]", i)
		if s.Vulnerability.Name == "" && s.Vulnerability.ID == "" {
			return fmt.Errorf("%s: the vulnerability has no name", where)
		}
		if len(s.Products) == 0 {
			return fmt.Errorf("%s: no products; a statement must name the products it is about", where)
		}
		for j, p := range s.Products {
			if !p.identified() {
				return fmt.Errorf("%s.products[%d]: no @id, identifiers or hashes", where, j)
			}
			for k, c := range p.Subcomponents {
				if !c.identified() {
					return fmt.Errorf("%s.products[%d].subcomponents[%d]: no @id, identifiers or hashes", where, j, k)
				}
			}
		}
		switch s.Status {
		case VEXNotAffected:
			if s.Justification == "" && s.ImpactStatement == "" {
				return fmt.Errorf("%s: status not_affected needs a justification or an impact_statement", where)
			}
			if s.Justification != "" && !vexJustifications[s.Justification] {
				return fmt.Errorf("%s: unknown justification %q", where, s.Justification)
			}
		case VEXAffected, VEXFixed, VEXUnderInvestigation:
		default:
			return fmt.Errorf("%s: unknown status %q (want not_affected, affected, fixed or under_investigation)", where, s.Status)
		}
	}
	return nil
}

func (p *VEXProduct) identified() bool {
	return p.ID != "" || len(p.Identifiers) > 0 || len(p.Hashes) > 0
}

// ApplyWaivers splits findings into those that stand (kept) and those a
// VEX statement waives (waived, with Finding.Waiver set), both in input
// order.
//
// A statement concerns a finding when its vulnerability name, @id or one
// of its aliases equals (ignoring case) the finding's ID or one of its
// aliases, and one of its products is the finding's package (a purl; a
// statement purl without a version or qualifiers matches every version and
// qualifier) or is the finding's Subject (by digest "sha256:...", a
// "sha-256" hash, or an image purl) with no subcomponents or a
// subcomponent that is the package. Of the statements that concern a
// finding, the latest (by last_updated, else timestamp, else the
// document's) decides, as OpenVEX prescribes; statements dated after now
// are ignored. The finding is waived when that statement's status is
// not_affected or fixed and its custody_expires, if any, is after now.
// Findings of KindUnpinned are never waived.
func ApplyWaivers(findings []Finding, docs []*VEXDocument, now time.Time) (kept, waived []Finding) {
	for _, f := range findings {
		if f.Kind == KindUnpinned {
			kept = append(kept, f)
			continue
		}
		var best *Waiver
		for _, d := range docs {
			if d == nil {
				continue
			}
			for i := range d.Statements {
				s := &d.Statements[i]
				if !s.concerns(&f) {
					continue
				}
				at := s.effective(d)
				if at.After(now) {
					continue
				}
				if best != nil && at.Before(best.Timestamp) {
					continue
				}
				w := &Waiver{Document: d.ID, Author: d.Author, Status: s.Status, Justification: s.Justification,
					ImpactStatement: s.ImpactStatement, Timestamp: at}
				switch {
				case s.Expires != nil:
					w.Expires = *s.Expires
				case d.Expires != nil:
					w.Expires = *d.Expires
				}
				best = w
			}
		}
		if best != nil && (best.Status == VEXNotAffected || best.Status == VEXFixed) &&
			(best.Expires.IsZero() || best.Expires.After(now)) {
			f.Waiver = best
			waived = append(waived, f)
			continue
		}
		kept = append(kept, f)
	}
	return kept, waived
}

// effective is when the statement was last made.
func (s *VEXStatement) effective(d *VEXDocument) time.Time {
	switch {
	case s.LastUpdated != nil:
		return *s.LastUpdated
	case s.Timestamp != nil:
		return *s.Timestamp
	case d.LastUpdated != nil:
		return *d.LastUpdated
	}
	return d.Timestamp
}

func (s *VEXStatement) concerns(f *Finding) bool {
	names := append([]string{s.Vulnerability.Name, s.Vulnerability.ID}, s.Vulnerability.Aliases...)
	ids := append([]string{f.ID}, f.Aliases...)
	hit := false
	for _, n := range names {
		for _, id := range ids {
			if n != "" && strings.EqualFold(n, id) {
				hit = true
			}
		}
	}
	if !hit {
		return false
	}
	for i := range s.Products {
		p := &s.Products[i]
		if p.isPackage(f.PURL) {
			return true
		}
		if f.Subject != "" && p.isSubject(f.Subject) {
			if len(p.Subcomponents) == 0 {
				return true
			}
			for j := range p.Subcomponents {
				if p.Subcomponents[j].isPackage(f.PURL) {
					return true
				}
			}
		}
	}
	return false
}

func (p *VEXProduct) purls() []string {
	var out []string
	if strings.HasPrefix(p.ID, "pkg:") {
		out = append(out, p.ID)
	}
	if u := p.Identifiers["purl"]; u != "" {
		out = append(out, u)
	}
	return out
}

func (p *VEXProduct) isPackage(purl string) bool {
	if purl == "" {
		return false
	}
	for _, u := range p.purls() {
		if purlMatches(u, purl) {
			return true
		}
	}
	return false
}

// isSubject reports whether the product is subject: a digest
// ("sha256:<hex>") or a purl.
func (p *VEXProduct) isSubject(subject string) bool {
	if p.ID == subject {
		return true
	}
	if alg, hex, ok := strings.Cut(subject, ":"); ok && !strings.HasPrefix(subject, "pkg:") {
		vexAlg := map[string]string{"sha256": "sha-256", "sha512": "sha-512", "sha384": "sha-384"}[alg]
		if vexAlg != "" && strings.EqualFold(p.Hashes[vexAlg], hex) {
			return true
		}
		for _, u := range p.purls() {
			// pkg:oci/name@sha256:... names an image by digest.
			if pu, err := packageurl.FromString(u); err == nil && pu.Type == "oci" && pu.Version == subject {
				return true
			}
		}
		return false
	}
	for _, u := range p.purls() {
		if purlMatches(u, subject) {
			return true
		}
	}
	return false
}

// purlMatches reports whether the purl pattern (from a VEX statement)
// names target: same type, namespace and name, and the pattern's version
// and qualifiers, where given, equal to target's.
func purlMatches(pattern, target string) bool {
	p, err := packageurl.FromString(pattern)
	if err != nil {
		return false
	}
	t, err := packageurl.FromString(target)
	if err != nil {
		return false
	}
	if !strings.EqualFold(p.Type, t.Type) || p.Namespace != t.Namespace {
		return false
	}
	if p.Type == "pypi" {
		if ecosystem.NormalizePyPIName(p.Name) != ecosystem.NormalizePyPIName(t.Name) {
			return false
		}
	} else if p.Name != t.Name {
		return false
	}
	if p.Version != "" && p.Version != t.Version {
		return false
	}
	tq := t.Qualifiers.Map()
	for k, v := range p.Qualifiers.Map() {
		if tq[k] != v {
			return false
		}
	}
	return true
}
