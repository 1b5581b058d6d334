package vuln

import "testing"

// checkOrder asserts that Compare(eco, ...) orders asc strictly ascending,
// in every pair and in both directions.
func checkOrder(t *testing.T, eco string, asc []string) {
	t.Helper()
	for i := range asc {
		for j := range asc {
			got, err := Compare(eco, asc[i], asc[j])
			if err != nil {
				t.Fatalf("Compare(%q, %q, %q): %v", eco, asc[i], asc[j], err)
			}
			if want := cmpInt(i, j); got != want {
				t.Errorf("Compare(%q, %q, %q) = %d, want %d", eco, asc[i], asc[j], got, want)
			}
		}
	}
}

func checkEqual(t *testing.T, eco string, pairs [][2]string) {
	t.Helper()
	for _, p := range pairs {
		for _, q := range [][2]string{p, {p[1], p[0]}} {
			got, err := Compare(eco, q[0], q[1])
			if err != nil || got != 0 {
				t.Errorf("Compare(%q, %q, %q) = %d, %v; want 0", eco, q[0], q[1], got, err)
			}
		}
	}
}

func checkInvalid(t *testing.T, eco string, bad []string) {
	t.Helper()
	for _, v := range bad {
		if _, err := Compare(eco, v, "1"); err == nil {
			t.Errorf("Compare(%q, %q, ...) accepted an invalid version", eco, v)
		}
	}
}

func TestCompareSemver(t *testing.T) {
	// The precedence example of SemVer 2.0, section 11.
	checkOrder(t, "npm", []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"})
	checkEqual(t, "npm", [][2]string{{"v1.2.3", "1.2.3"}, {"=1.2.3", "1.2.3"}, {"1.0.0+build.5", "1.0.0"}})
	checkInvalid(t, "npm", []string{"", "abc", "1.2.3.4", "^1.2.3", "1.2.3-", "01.2.3"})
}

func TestCompareGo(t *testing.T) {
	checkOrder(t, "Go", []string{"0.16.0", "0.17.0", "1.20.9", "1.20.10", "1.21.0-0", "1.21rc1", "1.21.0", "1.21.3", "1.22.0"})
	checkEqual(t, "Go", [][2]string{{"v0.17.0", "0.17.0"}, {"go1.21.3", "1.21.3"}, {"1.22rc1", "1.22.0-rc1"}})
}

func TestComparePyPI(t *testing.T) {
	// The ordering example of PEP 440 ("Summary of permitted suffixes and
	// relative ordering"), extended with epochs and local versions.
	checkOrder(t, "PyPI", []string{
		"1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456", "1.0b2",
		"1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0+5",
		"1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1", "4.2", "4.2.7", "10.0", "1!0.1", "2!0.0.dev0",
	})
	checkEqual(t, "PyPI", [][2]string{
		{"1.0", "1.0.0"}, {"1.0c1", "1.0rc1"}, {"1.0-1", "1.0.post1"}, {"1.0alpha1", "1.0a1"},
		{"1.0.preview2", "1.0rc2"}, {"v1.0", "1.0"}, {"1.0.DEV1", "1.0.dev1"}, {"1.0a", "1.0a0"},
		{"1.0-r2", "1.0.post2"}, {"0!1.0", "1.0"}, {"1.0_beta_3", "1.0b3"}, {"1.0.post", "1.0.post0"},
	})
	checkInvalid(t, "PyPI", []string{"", "abc", "1.0foo", "1.0+", "1.0+a$b", "1.0.", "!1.0", "1.0a1a2"})
}

func TestCompareMaven(t *testing.T) {
	// From the Maven POM reference's version order specification.
	checkOrder(t, "Maven", []string{"1-alpha", "1-beta", "1-milestone", "1-rc", "1-snapshot", "1", "1-sp", "1-abc", "1-1", "1.1"})
	checkOrder(t, "Maven", []string{"1-foo2", "1-foo10"})
	checkOrder(t, "Maven", []string{"2.0-beta9", "2.0-rc1", "2.0", "2.3.1", "2.4", "2.12.2", "2.13.0", "2.14.1", "2.15.0"})
	checkOrder(t, "Maven", []string{"1.2.3-SNAPSHOT", "1.2.3", "1.2.3-1", "1.2.4", "1.10"})
	checkEqual(t, "Maven", [][2]string{
		{"1", "1.0"}, {"1", "1.0.0"}, {"1.ga", "1"}, {"1-ga", "1"}, {"1-0", "1"}, {"1.final", "1"},
		{"1.0.0.RELEASE", "1.0.0"}, {"1-rc", "1-cr"}, {"1.0-alpha1", "1.0-a1"}, {"1.0-b2", "1.0-beta-2"},
		{"1.0-M1", "1.0-milestone-1"}, {"1.0.0-Final", "1.0.0"},
	})
	checkInvalid(t, "Maven", []string{"", "   "})
}

func TestCompareDebian(t *testing.T) {
	checkOrder(t, "Debian:12", []string{
		"0.9", "1.0~~", "1.0~~a", "1.0~", "1.0~rc1", "1.0", "1.0-1", "1.0-1ubuntu1", "1.0a", "1.0+b1", "1.0.1", "2.0",
		"1:0.1", "1:1.0", "2:0.0.1",
	})
	checkOrder(t, "Debian", []string{"3.0.9-1", "3.0.10-1~deb12u1", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "3.0.11-1", "3.0.11-1+deb12u1"})
	checkOrder(t, "Ubuntu:22.04:LTS", []string{"2.35-0ubuntu3.1", "2.35-0ubuntu3.4", "2.35-0ubuntu3.10"})
	checkEqual(t, "Debian", [][2]string{{"0:1.0", "1.0"}, {"1.01", "1.1"}, {"1.0-0", "1.0-00"}})
	checkInvalid(t, "Debian", []string{"", "abc", "a:1.0", "1.0-", "1.0 1", "1.0$"})
}

func TestCompareAlpine(t *testing.T) {
	checkOrder(t, "Alpine:v3.19", []string{
		"1.0_alpha1", "1.0_alpha2", "1.0_beta1", "1.0_pre1", "1.0_rc1", "1.0", "1.0-r0", "1.0-r1", "1.0-r10",
		"1.0_cvs1", "1.0_svn1", "1.0_git20230717-r4", "1.0_hg1", "1.0_p1", "1.0_p2-r0", "1.0a", "1.0b", "1.0.1", "1.2", "1.10",
	})
	checkOrder(t, "Alpine", []string{"3.1.4-r0", "3.1.4-r1", "3.1.4_p1-r0", "3.1.5-r0"})
	checkOrder(t, "Alpine", []string{"1.36.1-r2", "1.36.1-r15"})
	// Leading zeros after the first component compare as strings.
	checkOrder(t, "Alpine", []string{"1.001", "1.01", "1.010", "1.09", "1.1", "1.2", "1.10"})
	// A suffix without a number sorts before the same suffix with one.
	checkOrder(t, "Alpine", []string{"1.0_rc-r0", "1.0_rc0-r0", "1.0_rc1"})
	// A commit hash sorts after the suffixes and before the revision.
	checkOrder(t, "Alpine", []string{"1.0_rc1~abc", "1.0", "1.0-r5", "1.0~abc", "1.0~abc-r1", "1.0~abd", "1.0_p1"})
	checkEqual(t, "Alpine", [][2]string{{"1.0-r1", "1.0-r01"}, {"10.2", "010.2"}})
	checkInvalid(t, "Alpine", []string{"", "abc", "1.0_foo", "1..2", "1.0-r", "1.0-1", "1.0_rc1_", "1.0~", "1.0~xyz", "1.0a.1"})
}

func TestCompareUnknownEcosystem(t *testing.T) {
	if _, err := Compare("crates.io", "1.0.0", "1.0.1"); err == nil {
		t.Fatal("Compare accepted an ecosystem it has no rules for")
	}
}

// fuzzAntisymmetry checks that a comparator never panics, that it accepts
// a version it accepted once with itself as equal, and that swapping the
// arguments negates the result.
func fuzzAntisymmetry(f *testing.F, eco string, seeds ...string) {
	for i, a := range seeds {
		f.Add(a, seeds[(i+1)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, errAB := Compare(eco, a, b)
		ba, errBA := Compare(eco, b, a)
		if (errAB == nil) != (errBA == nil) {
			t.Fatalf("Compare(%q, %q) err=%v but reversed err=%v", a, b, errAB, errBA)
		}
		if errAB != nil {
			return
		}
		if ab != -ba {
			t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if c, err := Compare(eco, a, a); err != nil || c != 0 {
			t.Fatalf("Compare(%q, %q) = %d, %v; want 0", a, a, c, err)
		}
	})
}

func FuzzCompareSemver(f *testing.F) {
	fuzzAntisymmetry(f, "npm", "1.0.0-alpha.1", "1.0.0", "v2.3.4+build", "1.0.0-rc.1", "0.0.1-0")
}

func FuzzCompareGo(f *testing.F) {
	fuzzAntisymmetry(f, "Go", "1.21.0-0", "1.22rc1", "v0.17.0", "go1.21.3")
}

func FuzzComparePyPI(f *testing.F) {
	fuzzAntisymmetry(f, "PyPI", "1.0.dev456", "1!1.0a1", "1.0.post1.dev2", "1.0+abc.5", "1.0-1", "2.0rc1")
}

func FuzzCompareMaven(f *testing.F) {
	fuzzAntisymmetry(f, "Maven", "1.0-alpha1", "2.0-beta9", "1.0.0.RELEASE", "1-sp", "1-foo10", "1..2--3")
}

func FuzzCompareDebian(f *testing.F) {
	fuzzAntisymmetry(f, "Debian", "1:1.2.13.dfsg-1", "3.0.11-1~deb12u1", "1.0~~a", "2.36-9+deb12u4", "0.9")
}

func FuzzCompareAlpine(f *testing.F) {
	fuzzAntisymmetry(f, "Alpine", "1.2.4_git20230717-r4", "3.1.4-r1", "1.0_rc1", "1.0a", "1.01.2")
}
