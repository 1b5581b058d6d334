package generic

import (
	"net/http"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for path, want := range map[string]location{
		"/generic/tools/":                 {repo: "tools"},
		"/generic/tools/app/":             {repo: "tools", name: "app"},
		"/generic/tools/app/1.0/":         {repo: "tools", name: "app", version: "1.0"},
		"/generic/tools/app/1.0/a.tar.gz": {repo: "tools", name: "app", version: "1.0", file: "a.tar.gz"},
		"/generic/t-1/a_b/V1_rc.2/f (1)":  {repo: "t-1", name: "a_b", version: "V1_rc.2", file: "f (1)"},
	} {
		got, msg := parse(path)
		if msg != "" || got != want {
			t.Errorf("parse(%q) = %+v, %q; want %+v", path, got, msg, want)
		}
	}
	for _, path := range []string{
		"/generic/", "/generic/tools", "/generic/tools/app", "/generic//app/1/f", "/generic/tools//1/f",
		"/generic/tools/app//f", "/generic/tools/app/1/f/", "/generic/tools/app/1/a/b", "/generic/Tools/app/1/f",
		"/generic/tools/app/-1/f", "/generic/tools/app/1/..", "/generic/tools/app/1/.env", "/generic/tools/app/1/a\x00b",
		"/generic/tools/app/1/a\\b", "/generic/tools/../1/f", "/generic/tools/app/1/" + strings.Repeat("f", 256),
		"/generic/tools/" + strings.Repeat("a", 250) + "/1/f",
	} {
		if l, msg := parse(path); msg == "" {
			t.Errorf("parse(%q) = %+v, accepted", path, l)
		}
	}
}

func TestExpectedDigest(t *testing.T) {
	const hexSum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	const b64Sum = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
	for _, tc := range []struct {
		hdr  map[string]string
		want string
		ok   bool
	}{
		{nil, "", true},
		{map[string]string{"X-Checksum-Sha256": hexSum}, "sha256:" + hexSum, true},
		{map[string]string{"X-Checksum-Sha256": strings.ToUpper(hexSum)}, "sha256:" + hexSum, true},
		{map[string]string{"Digest": "SHA-256=" + b64Sum}, "sha256:" + hexSum, true},
		{map[string]string{"Digest": "md5=xyz, sha-256=" + b64Sum}, "sha256:" + hexSum, true},
		{map[string]string{"X-Checksum-Sha256": hexSum, "Digest": "sha-256=" + b64Sum}, "sha256:" + hexSum, true},
		{map[string]string{"X-Checksum-Sha256": "abc"}, "", false},
		{map[string]string{"X-Checksum-Sha256": strings.Repeat("z", 64)}, "", false},
		{map[string]string{"Digest": "sha-256=!!"}, "", false},
		{map[string]string{"X-Checksum-Sha256": strings.Repeat("0", 64), "Digest": "sha-256=" + b64Sum}, "", false},
	} {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		got, err := expectedDigest(h)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("expectedDigest(%v) = %q, %v", tc.hdr, got, err)
		}
	}
}
