package e2e

import (
	"context"
	"fmt"
	"github.com/custody-dev/custody/internal/sign"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestMeasureDrill times drills of an environment of 10 images of 4
// layers of 4 MiB (160 MiB) into a layout and into a second server; it
// asserts nothing about the time and runs only when asked:
//
//	CUSTODY_MEASURE_DRILL=1 go test -count=1 -v -run TestMeasureDrill ./test/e2e/
func TestMeasureDrill(t *testing.T) {
	if os.Getenv("CUSTODY_MEASURE_DRILL") == "" {
		t.Skip("set CUSTODY_MEASURE_DRILL=1 to time drills")
	}
	site := newDrillSite(t)
	for i := 0; i < 10; i++ {
		img, _ := random.Image(4<<20, 4)
		dg, _ := img.Digest()
		d, _ := name.NewDigest(fmt.Sprintf("%s/apps/svc%d@%s", site.srv.Host(), i, dg))
		if err := remote.Write(d, img, site.auth); err != nil {
			t.Fatal(err)
		}
		signBy(t, site, d)
		mustCustody(t, site.home, "", nil, "promote", d.String(), "--to", "prod", "--server", site.srv.URL)
	}
	rep, out, err := site.drill(t, "--into", filepath.Join(t.TempDir(), "m"))
	if err != nil || !rep.OK {
		t.Fatalf("%v %s", err, out)
	}
	var bytes int64
	for _, a := range rep.Artifacts {
		bytes += a.Bytes
	}
	t.Logf("layout: %d artifacts, %d MiB re-hashed, %.2fs", len(rep.Artifacts), bytes>>20, rep.Seconds)
	other := newDrillSite(t)
	mustCustody(t, site.home, other.srv.AdminPassword()+"\n", nil, "login", other.srv.Host(), "-u", "admin", "--password-stdin")
	rep, out, err = site.drill(t, "--into", other.srv.Host()+"/r", "--manifests", t.TempDir())
	if err != nil || !rep.OK {
		t.Fatalf("%v %s", err, out)
	}
	t.Logf("registry: %d artifacts, %.2fs", len(rep.Artifacts), rep.Seconds)
}

// signBy signs d with the site's CI key.
func signBy(t *testing.T, site drillSite, d name.Digest) {
	t.Helper()
	if _, err := sign.Sign(context.Background(), d, site.ci, sign.Options{Remote: []remote.Option{site.auth}}); err != nil {
		t.Fatal(err)
	}
}
