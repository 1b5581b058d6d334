package vuln

import (
	"fmt"
	"math"
	"strings"
)

// Severity is a qualitative severity rating.
type Severity string

// The severity ratings, from CVSS's qualitative scale, plus
// SeverityUnknown for an advisory that gives no usable severity.
const (
	SeverityUnknown  Severity = "UNKNOWN"
	SeverityNone     Severity = "NONE"
	SeverityLow      Severity = "LOW"
	SeverityMedium   Severity = "MEDIUM"
	SeverityHigh     Severity = "HIGH"
	SeverityCritical Severity = "CRITICAL"
)

// Rank orders severities: Unknown 0, None 1, Low 2, Medium 3, High 4,
// Critical 5.
func (s Severity) Rank() int {
	switch s {
	case SeverityNone:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// SeverityForScore maps a CVSS score (0.0 to 10.0) to its qualitative
// rating: 0 None, 0.1-3.9 Low, 4.0-6.9 Medium, 7.0-8.9 High, 9.0-10.0
// Critical.
func SeverityForScore(score float64) Severity {
	switch {
	case score <= 0:
		return SeverityNone
	case score < 4.0:
		return SeverityLow
	case score < 7.0:
		return SeverityMedium
	case score < 9.0:
		return SeverityHigh
	default:
		return SeverityCritical
	}
}

// maxVectorLen caps the length of a CVSS vector string.
const maxVectorLen = 512

// cvss3Optional are the temporal and environmental metrics a CVSS v3
// vector may carry and that the base score ignores, with their values.
var cvss3Optional = map[string]string{
	"E": "XUPFH", "RL": "XOTWU", "RC": "XURC",
	"CR": "XLMH", "IR": "XLMH", "AR": "XLMH",
	"MAV": "XNALP", "MAC": "XLH", "MPR": "XNLH", "MUI": "XNR", "MS": "XUC",
	"MC": "XNLH", "MI": "XNLH", "MA": "XNLH",
}

// cvss3Base are the base metrics and their allowed values.
var cvss3Base = map[string]string{
	"AV": "NALP", "AC": "LH", "PR": "NLH", "UI": "NR", "S": "UC",
	"C": "HLN", "I": "HLN", "A": "HLN",
}

// parseCVSS3 checks a "CVSS:3.0/..." or "CVSS:3.1/..." vector and returns
// its base metric values. Every base metric must appear exactly once;
// temporal and environmental metrics are allowed and ignored.
func parseCVSS3(vector string) (map[string]byte, error) {
	if len(vector) > maxVectorLen {
		return nil, fmt.Errorf("CVSS vector longer than %d bytes", maxVectorLen)
	}
	parts := strings.Split(vector, "/")
	if parts[0] != "CVSS:3.1" && parts[0] != "CVSS:3.0" {
		return nil, fmt.Errorf("CVSS vector %q does not start with CVSS:3.0/ or CVSS:3.1/", vector)
	}
	seen := map[string]bool{}
	base := map[string]byte{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, ":")
		if !ok || len(v) != 1 {
			return nil, fmt.Errorf("CVSS vector %q: malformed metric %q (want NAME:V)", vector, p)
		}
		if seen[k] {
			return nil, fmt.Errorf("CVSS vector %q: metric %s given twice", vector, k)
		}
		seen[k] = true
		if allowed, ok := cvss3Base[k]; ok {
			if !strings.Contains(allowed, v) {
				return nil, fmt.Errorf("CVSS vector %q: %s:%s is not a valid value", vector, k, v)
			}
			base[k] = v[0]
			continue
		}
		if allowed, ok := cvss3Optional[k]; ok {
			if !strings.Contains(allowed, v) {
				return nil, fmt.Errorf("CVSS vector %q: %s:%s is not a valid value", vector, k, v)
			}
			continue
		}
		return nil, fmt.Errorf("CVSS vector %q: unknown metric %q", vector, k)
	}
	for k := range cvss3Base {
		if _, ok := base[k]; !ok {
			return nil, fmt.Errorf("CVSS vector %q lacks the base metric %s", vector, k)
		}
	}
	return base, nil
}

// CVSS3BaseScore computes the base score of a CVSS v3.0 or v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" scores 9.8) with the
// CVSS v3.1 specification's formula and its Roundup function (v3.0 vectors
// use the same formula; the two versions' rounding differs by at most 0.1
// in rare cases).
func CVSS3BaseScore(vector string) (float64, error) {
	m, err := parseCVSS3(vector)
	if err != nil {
		return 0, err
	}
	changed := m["S"] == 'C'
	av := map[byte]float64{'N': 0.85, 'A': 0.62, 'L': 0.55, 'P': 0.2}[m["AV"]]
	ac := map[byte]float64{'L': 0.77, 'H': 0.44}[m["AC"]]
	var pr float64
	switch m["PR"] {
	case 'N':
		pr = 0.85
	case 'L':
		pr = 0.62
		if changed {
			pr = 0.68
		}
	case 'H':
		pr = 0.27
		if changed {
			pr = 0.5
		}
	}
	ui := map[byte]float64{'N': 0.85, 'R': 0.62}[m["UI"]]
	cia := map[byte]float64{'H': 0.56, 'L': 0.22, 'N': 0}
	iss := 1 - (1-cia[m["C"]])*(1-cia[m["I"]])*(1-cia[m["A"]])
	var impact float64
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	} else {
		impact = 6.42 * iss
	}
	exploit := 8.22 * av * ac * pr * ui
	if impact <= 0 {
		return 0, nil
	}
	if changed {
		return roundup(math.Min(1.08*(impact+exploit), 10)), nil
	}
	return roundup(math.Min(impact+exploit, 10)), nil
}

// roundup is CVSS v3.1's Roundup: the smallest number with one decimal
// place that is equal to or higher than x, computed on integers to avoid
// floating-point surprises.
func roundup(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}

// cvss4Base are the CVSS v4.0 base metrics and their values;
// cvss4Optional the threat, environmental and supplemental ones.
var cvss4Base = map[string]string{
	"AV": "NALP", "AC": "LH", "AT": "NP", "PR": "NLH", "UI": "NPA",
	"VC": "HLN", "VI": "HLN", "VA": "HLN", "SC": "HLN", "SI": "HLN", "SA": "HLN",
}

var cvss4Optional = map[string]string{
	"E": "XAPU", "CR": "XHML", "IR": "XHML", "AR": "XHML",
	"MAV": "XNALP", "MAC": "XLH", "MAT": "XNP", "MPR": "XNLH", "MUI": "XNPA",
	"MVC": "XHLN", "MVI": "XHLN", "MVA": "XHLN", "MSC": "XHLN", "MSI": "XSHLN", "MSA": "XSHLN",
	"S": "XNP", "AU": "XNY", "R": "XAUI", "V": "XDC", "RE": "XLMH", "U": "X",
}

// checkCVSS4 validates the syntax of a "CVSS:4.0/..." vector. custody
// does not compute CVSS v4 scores (the v4 score comes from a lookup table
// of macro vectors); see [Finding.Severity] for the fallback.
func checkCVSS4(vector string) error {
	if len(vector) > maxVectorLen {
		return fmt.Errorf("CVSS vector longer than %d bytes", maxVectorLen)
	}
	parts := strings.Split(vector, "/")
	if parts[0] != "CVSS:4.0" {
		return fmt.Errorf("CVSS vector %q does not start with CVSS:4.0/", vector)
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, ":")
		if !ok || v == "" {
			return fmt.Errorf("CVSS vector %q: malformed metric %q (want NAME:V)", vector, p)
		}
		if seen[k] {
			return fmt.Errorf("CVSS vector %q: metric %s given twice", vector, k)
		}
		seen[k] = true
		allowed, ok := cvss4Base[k]
		if !ok {
			allowed, ok = cvss4Optional[k]
		}
		if !ok {
			return fmt.Errorf("CVSS vector %q: unknown metric %q", vector, k)
		}
		if k == "U" {
			switch v {
			case "X", "Clear", "Green", "Amber", "Red":
				continue
			}
			return fmt.Errorf("CVSS vector %q: U:%s is not a valid value", vector, v)
		}
		if len(v) != 1 || !strings.Contains(allowed, v) {
			return fmt.Errorf("CVSS vector %q: %s:%s is not a valid value", vector, k, v)
		}
	}
	for k := range cvss4Base {
		if !seen[k] {
			return fmt.Errorf("CVSS vector %q lacks the base metric %s", vector, k)
		}
	}
	return nil
}
