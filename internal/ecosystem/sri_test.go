package ecosystem

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sri(alg string, sum []byte) (expr, hexValue string) {
	return alg + "-" + base64.StdEncoding.EncodeToString(sum), hex.EncodeToString(sum)
}

// TestParseSRI pins the one Subresource Integrity decoder. Where the two
// former copies disagreed:
//   - sha384: the provenance copy read it, the SBOM copy ignored it; it is
//     a W3C SRI algorithm and is read.
//   - "?options": the provenance copy cut them off, the SBOM copy failed
//     to decode the value and dropped the hash; the spec says options are
//     ignored, so they are cut off.
//   - several algorithms: provenance kept all, the SBOM copy the
//     strongest; ParseSRI keeps all and Strongest picks by the spec's
//     priority (sha512 > sha384 > sha256, then npm's legacy sha1).
func TestParseSRI(t *testing.T) {
	s1 := sha1.Sum([]byte("x"))
	s256 := sha256.Sum256([]byte("x"))
	s384 := sha512.Sum384([]byte("x"))
	s512 := sha512.Sum512([]byte("x"))
	e1, h1 := sri("sha1", s1[:])
	e256, h256 := sri("sha256", s256[:])
	e384, h384 := sri("sha384", s384[:])
	e512, h512 := sri("sha512", s512[:])
	other, _ := sri("sha512", make([]byte, 64))
	for _, tc := range []struct {
		name, in  string
		want      map[string]string
		strongest string
	}{
		{"empty", "", nil, ""},
		{"sha512", e512, map[string]string{"sha512": h512}, "sha512"},
		{"sha384 alone", e384, map[string]string{"sha384": h384}, "sha384"},
		{"sha384 beats sha256", e256 + " " + e384, map[string]string{"sha256": h256, "sha384": h384}, "sha384"},
		{"options ignored", e384 + "?foo=bar", map[string]string{"sha384": h384}, "sha384"},
		{"options on each", e256 + "?a " + e512 + "?b?c", map[string]string{"sha256": h256, "sha512": h512}, "sha512"},
		{"sha1 is npm's legacy", e1, map[string]string{"sha1": h1}, "sha1"},
		{"every algorithm", e1 + "\t" + e512 + "\n" + e256, map[string]string{"sha1": h1, "sha256": h256, "sha512": h512}, "sha512"},
		{"unknown algorithm", "md5-1B2M2Y8AsgTpgAmY7PhCfg== " + e256, map[string]string{"sha256": h256}, "sha256"},
		{"upper-case algorithm is not one", "SHA256-" + e256[len("sha256-"):], nil, ""},
		{"wrong length for the algorithm", "sha384-" + e256[len("sha256-"):], nil, ""},
		{"not base64", "sha256-!!!!", nil, ""},
		{"no dash", "sha256", nil, ""},
		{"unpadded base64 is not the spec's", "sha256-" + base64.RawStdEncoding.EncodeToString(s256[:]), nil, ""},
		{"first of one algorithm wins", e512 + " " + other, map[string]string{"sha512": h512}, "sha512"},
	} {
		got := ParseSRI(tc.in)
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s: ParseSRI(%q) (-want +got):\n%s", tc.name, tc.in, d)
		}
		alg, v, ok := Strongest(got)
		if alg != tc.strongest || ok != (tc.strongest != "") || (ok && v != got[alg]) {
			t.Errorf("%s: Strongest = %s %s %v, want %s", tc.name, alg, v, ok, tc.strongest)
		}
	}
}

func TestFileHash(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:ABcd0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab": "sha256:abcd0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab",
		"sha256:00":          "",
		"md5:00112233":       "",
		"sha512:" + hex128(): "sha512:" + hex128(),
		"sha256":             "",
	} {
		got, ok := FileHash(in)
		if got != want || ok != (want != "") {
			t.Errorf("FileHash(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}

func hex128() string {
	b := make([]byte, 64)
	return hex.EncodeToString(b)
}
