// Package conformance runs the OCI distribution-spec conformance suite (its
// current development version, built by scripts/install-clients.sh as
// oci-conformance) against a real `custody serve` with authentication on,
// every API and data set enabled, and the suite's default auth caching. Any
// failed spec fails the test, which lists them.
package conformance

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/testserver"
)

func TestOCIConformance(t *testing.T) {
	suite := testserver.Client(t, "oci-conformance")
	srv := testserver.Start(t, testserver.Options{Auth: true})
	results := t.TempDir()

	cmd := exec.Command(suite)
	// The suite reads ./oci-conformance.yaml when present: run it where
	// there is none, configured by the environment alone.
	cmd.Dir = t.TempDir()
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		// "dev" turns on what the stable defaults leave off: upload
		// cancel, required Docker-Content-Digest headers and ?tag=.
		"OCI_VERSION=dev",
		"OCI_REGISTRY="+srv.Host(),
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME=admin",
		"OCI_PASSWORD="+srv.AdminPassword(),
		"OCI_RESULTS_DIR="+results,
		"OCI_LOG=error",
		// Every workflow and data set, named so that a change of the
		// suite's defaults cannot quietly turn one off.
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_DATA_SHA512=true",
	)
	out, err := cmd.Output()
	report := string(out)
	if !strings.Contains(report, "OCI Conformance Result:") {
		t.Fatalf("the conformance suite did not report (%v):\n%s\nserver log:\n%s", err, report, srv.Logs())
	}
	failed := failures(report)
	if err != nil || len(failed) > 0 {
		t.Errorf("OCI conformance: %d failed specs (suite exit: %v):\n%s", len(failed), err, strings.Join(failed, "\n"))
		summary := report
		if i := strings.Index(report, "OCI Conformance Result:"); i >= 0 {
			summary = report[i:]
		}
		t.Logf("summary (every request and answer in %s):\n%s", filepath.Join(results, "report.html"), summary)
	}
	if !strings.Contains(report, "sha512 blobs") || !strings.Contains(report, "Blob upload cancel") {
		t.Errorf("the suite did not run the sha512 and upload-cancel workflows:\n%s", report)
	}
}

// failures returns the failed leaf specs of the suite's text report, each
// with the reasons listed under it ("  - reason" lines).
func failures(report string) []string {
	var out []string
	var name string
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "OCI Conformance Test/") && strings.HasSuffix(line, ": FAIL"):
			name = strings.TrimSuffix(line, ": FAIL")
		case strings.HasPrefix(line, "- ") && name != "":
			out = append(out, name+": "+strings.TrimPrefix(line, "- "))
		default:
			name = ""
		}
	}
	return out
}
