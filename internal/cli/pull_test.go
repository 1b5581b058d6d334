package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pullJSON is the -o json output of pull.
type pullJSON struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Directory string `json:"directory"`
	Files     []struct {
		Name   string `json:"name"`
		Path   string `json:"path"`
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"files"`
}

func TestPushPullRoundTrip(t *testing.T) {
	host := startRegistry(t)
	contents := map[string][]byte{
		"notes.md": []byte("# release notes\n"),
		"blob.bin": randomBytes(t, 5<<20),
		"app.tgz":  randomBytes(t, 1234),
	}
	paths := makeFiles(t, contents)
	ref := host + "/cli/roundtrip:v1"

	code, out, errOut := run(t, append(append([]string{"push", "-o", "json"}, paths...), ref)...)
	if code != 0 {
		t.Fatalf("push: exit %d: %s", code, errOut)
	}
	var pushed pushJSON
	if err := json.Unmarshal([]byte(out), &pushed); err != nil {
		t.Fatalf("push output is not JSON: %v", err)
	}

	dir := filepath.Join(t.TempDir(), "dest")
	code, out, errOut = run(t, "pull", "-o", "json", "--dir", dir, ref)
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, errOut)
	}
	var pulled pullJSON
	if err := json.Unmarshal([]byte(out), &pulled); err != nil {
		t.Fatalf("pull output is not JSON: %v\n%s", err, out)
	}
	if pulled.Digest != pushed.Digest || pulled.Directory != dir || len(pulled.Files) != len(contents) {
		t.Errorf("pull result %+v does not match push result %+v", pulled, pushed)
	}
	for i, f := range pulled.Files {
		if f.Digest != pushed.Files[i].Digest || f.Name != pushed.Files[i].Name {
			t.Errorf("file %d: pulled %+v, pushed %+v", i, f, pushed.Files[i])
		}
		got, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, contents[f.Name]) {
			t.Errorf("%s: content differs after round trip", f.Name)
		}
	}

	// Text output, by digest, with the short flag.
	dir2 := t.TempDir()
	code, out, errOut = run(t, "pull", "-d", dir2, host+"/cli/roundtrip@"+pushed.Digest)
	if code != 0 {
		t.Fatalf("pull by digest: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "pulled "+host+"/cli/roundtrip@"+pushed.Digest+" (3 files,") ||
		!strings.Contains(out, filepath.Join(dir2, "blob.bin")) {
		t.Errorf("unexpected output %q", out)
	}

	// "-o DIR" names the destination directory.
	dir3 := filepath.Join(t.TempDir(), "o-dir")
	code, out, errOut = run(t, "pull", ref, "-o", dir3)
	if code != 0 {
		t.Fatalf("pull -o DIR: exit %d: %s", code, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(dir3, "notes.md")); err != nil || !bytes.Equal(got, contents["notes.md"]) {
		t.Errorf("pull -o DIR did not write into %s: %v (output %q)", dir3, err, out)
	}
	if code, _, errOut = run(t, "pull", ref, "-o", dir3, "-d", dir2); code == 0 || !strings.Contains(errOut, "give the directory once") {
		t.Errorf("pull with both -o DIR and -d: exit %d, %q", code, errOut)
	}
}

func TestPullErrors(t *testing.T) {
	host := startRegistry(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not found", []string{"pull", "-d", t.TempDir(), host + "/nothing:here"}, "not found in registry " + host},
		{"no ref", []string{"pull"}, "accepts 1 arg"},
		{"-o DIR and -d", []string{"pull", "-o", "xml", "-d", t.TempDir(), host + "/r:v1"}, `-o "xml" is not an output format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want failure mentioning %q", code, errOut, tt.want)
			}
		})
	}
}
