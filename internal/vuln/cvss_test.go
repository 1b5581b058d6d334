package vuln

import "testing"

func TestCVSS3BaseScore(t *testing.T) {
	// Scores as published by NVD for these vectors.
	for _, tc := range []struct {
		vector string
		score  float64
		sev    Severity
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, SeverityCritical},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, SeverityCritical}, // Log4Shell
		{"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9, SeverityCritical},  // scope change raises PR weight
		{"CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2, SeverityHigh},      // CVE-2021-23337
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, SeverityHigh},      // typical DoS
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, SeverityHigh},      // local privilege escalation
		{"CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.8, SeverityHigh},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, SeverityMedium}, // reflected XSS
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9, SeverityMedium},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 5.3, SeverityMedium},
		{"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6, SeverityLow},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, SeverityNone},
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, SeverityCritical},
		// Temporal and environmental metrics do not change the base score.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H/MAV:L", 9.8, SeverityCritical},
		// Metric order is free.
		{"CVSS:3.1/S:U/A:H/I:H/C:H/UI:N/PR:N/AC:L/AV:N", 9.8, SeverityCritical},
	} {
		got, err := CVSS3BaseScore(tc.vector)
		if err != nil {
			t.Errorf("CVSS3BaseScore(%q): %v", tc.vector, err)
			continue
		}
		if got != tc.score {
			t.Errorf("CVSS3BaseScore(%q) = %.1f, want %.1f", tc.vector, got, tc.score)
		}
		if s := SeverityForScore(got); s != tc.sev {
			t.Errorf("SeverityForScore(%.1f) = %s, want %s", got, s, tc.sev)
		}
	}
}

func TestCVSS3Invalid(t *testing.T) {
	for _, v := range []string{
		"",
		"AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", // no prefix
		"CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", // v2
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",                        // A missing
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L",                // A twice
		"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",                    // bad value
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",               // unknown metric
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",                   // empty metric
		"CVSS:3.1/AV:NN/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",                   // long value
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", // v4 is not v3
	} {
		if s, err := CVSS3BaseScore(v); err == nil {
			t.Errorf("CVSS3BaseScore(%q) = %.1f, want an error", v, s)
		}
	}
}

func TestRoundup(t *testing.T) {
	// The CVSS v3.1 specification's examples for Roundup (Appendix A).
	for in, want := range map[float64]float64{4.02: 4.1, 4.00: 4.0, 4.000001: 4.0, 3.99999: 4.0, 0.0: 0.0} {
		if got := roundup(in); got != want {
			t.Errorf("roundup(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestCheckCVSS4(t *testing.T) {
	if err := checkCVSS4("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N"); err != nil {
		t.Errorf("valid v4 vector refused: %v", err)
	}
	if err := checkCVSS4("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N/E:A/U:Amber"); err != nil {
		t.Errorf("valid v4 vector with threat and supplemental metrics refused: %v", err)
	}
	for _, v := range []string{
		"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N", // SA missing
		"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:Q",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
	} {
		if err := checkCVSS4(v); err == nil {
			t.Errorf("checkCVSS4(%q) accepted it", v)
		}
	}
}

func FuzzCVSS(f *testing.F) {
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	f.Add("CVSS:3.0/AV:P/AC:H/PR:H/UI:R/S:C/C:L/I:N/A:N/E:P")
	f.Add("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N/U:Red")
	f.Add("CVSS:3.1/AV:N/AV:N")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := CVSS3BaseScore(v)
		if err == nil && (s < 0 || s > 10) {
			t.Fatalf("CVSS3BaseScore(%q) = %v, outside 0..10", v, s)
		}
		_ = checkCVSS4(v)
	})
}
