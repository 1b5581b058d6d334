package ecosystem

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// sriAlgorithms are the hash algorithms an integrity string may name, with
// their digest lengths in bytes, weakest first. sha256, sha384 and sha512
// are the W3C Subresource Integrity algorithms; sha1 is not, but npm's
// lockfiles (lockfileVersion 1) still carry "sha1-" integrity, so it is
// read and ranked weakest.
var sriAlgorithms = []struct {
	name string
	size int
}{{"sha1", 20}, {"sha256", 32}, {"sha384", 48}, {"sha512", 64}}

func sriRank(alg string) int {
	for i, a := range sriAlgorithms {
		if a.name == alg {
			return i
		}
	}
	return -1
}

// ParseSRI decodes a Subresource Integrity string (W3C SRI, section 3.3):
// whitespace-separated hash expressions "<alg>-<base64>[?<options>]".
// It returns algorithm -> lowercase hex for each expression whose
// algorithm is sha1, sha256, sha384 or sha512 and whose value is standard
// (padded) base64 of exactly that algorithm's digest length; options after
// "?" are ignored, as the spec says, and unknown algorithms or malformed
// values are skipped, not errors. When one algorithm is listed more than
// once, the first valid value is kept. It returns nil when nothing is left.
func ParseSRI(sri string) map[string]string {
	var d map[string]string
	for _, expr := range strings.Fields(sri) {
		alg, val, ok := strings.Cut(expr, "-")
		if !ok {
			continue
		}
		val, _, _ = strings.Cut(val, "?")
		r := sriRank(alg)
		if r < 0 {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(val)
		if err != nil || len(raw) != sriAlgorithms[r].size {
			continue
		}
		if _, dup := d[alg]; dup {
			continue
		}
		if d == nil {
			d = map[string]string{}
		}
		d[alg] = hex.EncodeToString(raw)
	}
	return d
}

// Strongest returns the entry of a digest set (as ParseSRI returns) with
// the strongest algorithm, the one W3C SRI's "getPrioritizedHashFunction"
// would pick: sha512, then sha384, sha256, sha1. ok is false when the set
// names none of them.
func Strongest(d map[string]string) (alg, hexValue string, ok bool) {
	for i := len(sriAlgorithms) - 1; i >= 0; i-- {
		if v, found := d[sriAlgorithms[i].name]; found {
			return sriAlgorithms[i].name, v, true
		}
	}
	return "", "", false
}

// fileHashSize is the hex length of each algorithm pip's --hash and
// poetry's file "hash" accept.
var fileHashSize = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}

// FileHash checks a pip or poetry file hash "alg:hex" (sha256, sha384 or
// sha512 of the right length) and returns it with the hex in lower case.
func FileHash(s string) (string, bool) {
	alg, h, ok := strings.Cut(s, ":")
	if !ok || len(h) != fileHashSize[alg] || !isHex(h) {
		return "", false
	}
	return alg + ":" + strings.ToLower(h), true
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
