package pypi_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPyPIReleaseRespelt: file names are sealed, but a file name is not
// the file's identity to pip. Other spellings of the project name
// ("Custody_Demo", "custody.demo") or of the version ("1.0.0.0",
// "01.0.0": PEP 440 equal to 1.0.0) named a second py3-none-any wheel of
// custody-demo 1.0.0 with other bytes, which was accepted, and pip
// install custody-demo==1.0.0 installed it instead of the published one.
// Each is refused (400, "File already exists") and nothing changes; a
// wheel for another platform still joins the release.
func TestPyPIReleaseRespelt(t *testing.T) {
	e := startE2E(t)
	py := python(t)
	upload := func(name, version, filetype, file string, content []byte) (int, string) {
		ct, body := uploadForm(name, version, filetype, file, content, content).encode(t)
		code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.writer, ct, nil, body)
		return code, string(b)
	}
	if code, b := upload("custody-demo", "1.0.0", "bdist_wheel", "custody_demo-1.0.0-py3-none-any.whl", wheel(t, "1.0.0", "original")); code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, b)
	}
	if code, b := upload("custody-demo", "1.0.0", "sdist", "custody_demo-1.0.0.tar.gz", sdist(t, "1.0.0")); code != http.StatusOK {
		t.Fatalf("upload sdist: %d %s", code, b)
	}
	before, blobs := e.index(), countFiles(t, filepath.Join(e.s.Data, "blobs"))
	for _, c := range []struct{ name, version, filetype, file string }{
		{"custody-demo", "1.0.0", "bdist_wheel", "Custody_Demo-1.0.0-py3-none-any.whl"},
		{"custody.demo", "1.0.0", "bdist_wheel", "custody.demo-1.0.0-py3-none-any.whl"},
		{"custody-demo", "1.0.0.0", "bdist_wheel", "custody_demo-1.0.0.0-py3-none-any.whl"},
		{"custody-demo", "01.0.0", "bdist_wheel", "custody_demo-01.0.0-py3-none-any.whl"},
		{"custody-demo", "1.0.0", "bdist_wheel", "custody_demo-1.0.0-PY3-None-Any.whl"},
		{"Custody-Demo", "1.0", "sdist", "Custody-Demo-1.0.tar.gz"},
		{"custody-demo", "1.0.0", "sdist", "custody_demo-1.0.0.zip"},
	} {
		content := wheel(t, c.version, "respelt")
		if c.filetype == "sdist" {
			content = sdist(t, c.version)
			if strings.HasSuffix(c.file, ".zip") {
				content = zipOf(t, map[string]string{"custody_demo-1.0.0/PKG-INFO": "x"})
			}
		}
		if code, b := upload(c.name, c.version, c.filetype, c.file, content); code != http.StatusBadRequest || !strings.Contains(b, "File already exists") {
			t.Errorf("upload %s: %d %s; want 400 File already exists", c.file, code, b)
		}
	}
	if after := e.index(); after != before {
		t.Errorf("refused uploads changed the index:\n%s\n%s", before, after)
	}
	if n := countFiles(t, filepath.Join(e.s.Data, "blobs")); n != blobs {
		t.Errorf("refused uploads stored %d blob files", n-blobs)
	}
	// pip installs the published bytes.
	target, out, err := e.pip(py, e.reader, "custody-demo==1.0.0")
	if err != nil {
		t.Fatalf("pip install: %v\n%s", err, out)
	}
	cmd := exec.Command(py, "-c", "import custody_demo; print(custody_demo.VALUE)")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+target)
	if got, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "original" {
		t.Errorf("pip installed VALUE %q (%v), want the published \"original\"", got, err)
	}
	// Another platform's wheel, and a new version, are new files.
	if code, b := upload("custody-demo", "1.0.0", "bdist_wheel", "custody_demo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.whl", wheel(t, "1.0.0", "linux")); code != http.StatusOK {
		t.Errorf("a wheel for another platform: %d %s", code, b)
	}
	if code, b := upload("custody-demo", "1.0.1", "bdist_wheel", "custody_demo-1.0.1-py3-none-any.whl", wheel(t, "1.0.1", "next")); code != http.StatusOK {
		t.Errorf("a new version: %d %s", code, b)
	}
}
