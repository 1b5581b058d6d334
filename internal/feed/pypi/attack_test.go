package pypi_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/feed/feedtest"
)

// TestPyPIReleaseRespelt: file names are sealed, but a file name is not
// the file's identity to pip. Other spellings of the project name
// ("Custody_Demo", "custody.demo") or of the version ("1.0.0.0",
// "01.0.0": PEP 440 equal to 1.0.0) named a second py3-none-any wheel of
// custody-demo 1.0.0 with other bytes, which was accepted, and pip
// install custody-demo==1.0.0 installed it instead of the published one.
// Each is refused (400, "File already exists") and nothing changes; a
// wheel for another platform still joins the release. So is a local
// version of the release (1.0.0+evil): PEP 440's ==1.0.0 ignores local
// labels and pip takes the highest match, so it too was installed for
// custody-demo==1.0.0.
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
	before, blobs := e.index(), e.s.BlobFiles(t)
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
				content = feedtest.Zip(t, map[string]string{"custody_demo-1.0.0/PKG-INFO": "x"})
			}
		}
		if code, b := upload(c.name, c.version, c.filetype, c.file, content); code != http.StatusBadRequest || !strings.Contains(b, "File already exists") {
			t.Errorf("upload %s: %d %s; want 400 File already exists", c.file, code, b)
		}
	}
	// A local version of the release would be installed for ==1.0.0.
	for _, v := range []string{"1.0.0+evil", "1.0+evil", "1.0.0+0"} {
		file := "custody_demo-" + v + "-py3-none-any.whl"
		if code, b := upload("custody-demo", v, "bdist_wheel", file, wheel(t, v, "local")); code != http.StatusBadRequest || !strings.Contains(b, "would be installed for ==1.0.0") {
			t.Errorf("upload %s: %d %s; want 400", file, code, b)
		}
	}
	if after := e.index(); after != before {
		t.Errorf("refused uploads changed the index:\n%s\n%s", before, after)
	}
	if n := e.s.BlobFiles(t); n != blobs {
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
	// Local versions of a version without a public release are files
	// like any (a +cpu and a +cu121 build side by side).
	for _, v := range []string{"2.0.0+cpu", "2.0.0+cu121"} {
		if code, b := upload("custody-demo", v, "bdist_wheel", "custody_demo-"+v+"-py3-none-any.whl", wheel(t, v, v)); code != http.StatusOK {
			t.Errorf("local version %s: %d %s", v, code, b)
		}
	}
}

// TestPyPIZipDirectoryBomb: a wheel is listed with archive/zip, which
// keeps every directory record in memory at about five times its size,
// so a 1 GiB upload of bare records held some 5 GiB in the server. The
// directory is read within feed.MaxZipDirectory: 400 naming it, nothing
// stored.
func TestPyPIZipDirectoryBomb(t *testing.T) {
	e := startE2E(t)
	bomb := feedtest.BareZipDirectory(1_000_000)
	blobs := e.s.BlobFiles(t)
	ct, body := uploadForm("custody-demo", "1.0.0", "bdist_wheel", "custody_demo-1.0.0-py3-none-any.whl", bomb, bomb).encode(t)
	code, b := e.call("POST", "/pypi/pyfeed/", "basic:__token__:"+e.writer, ct, nil, body)
	if code != http.StatusBadRequest || !strings.Contains(string(b), "directory is larger than") || !strings.Contains(string(b), "nothing was stored") {
		t.Errorf("upload: %d %s; want 400 naming the directory", code, b)
	}
	if n := e.s.BlobFiles(t); n != blobs {
		t.Errorf("the refused upload stored %d blob files", n-blobs)
	}
	if idx := e.index(); !strings.Contains(idx, "Not Found") {
		t.Errorf("index after the refusal: %s", idx)
	}
}
