package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/custody-dev/custody/internal/key"
)

// The command rows time whole client processes, start to exit, the way a
// deploy pipeline or a shell runs them: custody against the tool people
// use for the same job, on the same artifact, alternating one process of
// each, procRuns pairs per run. Their unit is runs/s (1 / the median wall
// time), so custody/peer above 1 means custody is faster.
//
//   - startup: custody version against crane version (the start-up cost
//     every command pays).
//   - sign: custody sign --key cosign.key against cosign sign --key
//     cosign.key --tlog-upload=false, both storing the cosign v2 .sig tag.
//   - verify: custody verify REF --trust-root FILE --require
//     sbom,provenance (signature, SLSA provenance and SPDX SBOM) against
//     cosign verify-attestation --key cosign.pub --type slsaprovenance1
//     (one predicate), on an image cosign signed and attested.
//
// The peers come from -clients (default $CUSTODY_CLIENTS_BIN, else
// <repo>/.cache/bin). Without them the rows time custody alone (peer n/a).
var cmdRows = []string{"startup", "sign", "verify"}

// procRuns is how many processes of each side one run times (-quick:
// quickProcRuns).
const (
	procRuns      = 15
	quickProcRuns = 3
)

// errNoPeer: the sign and verify rows need cosign to make their fixture.
var errNoPeer = errors.New("no cosign in -clients")

// cosignPassword protects the fixture's cosign key.
const cosignPassword = "custody-bench"

// cmdFixture is what the command rows run against: a custody server with
// an image signed and attested by cosign, the cosign key pair and a
// custody trust root holding its public key.
type cmdFixture struct {
	srv      *server
	dir      string
	ref      string // repo@digest on the server
	key, pub string // cosign key files
	trust    string // custody trust root with pub
	env      []string
}

// clientBin returns the path of a peer client, or "" when it is missing.
func (h *harness) clientBin(name string) string {
	dir := h.o.clients
	if dir == "" {
		dir = os.Getenv("CUSTODY_CLIENTS_BIN")
	}
	if dir == "" {
		dir = filepath.Join(h.root, ".cache", "bin")
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		return ""
	}
	return p
}

// fixture starts the command rows' server and signs and attests an image
// with cosign, once per harness run.
func (h *harness) fixture() (_ *cmdFixture, err error) {
	if h.cmdFixErr != nil {
		return nil, h.cmdFixErr
	}
	if h.cmdFix != nil {
		return h.cmdFix, nil
	}
	defer func() {
		if err != nil {
			h.cmdFixErr = err // not half a fixture on the next call
		}
	}()
	cosign := h.clientBin("cosign")
	if cosign == "" {
		return nil, errNoPeer
	}
	dir := filepath.Join(h.work, "cmd-rows")
	data := filepath.Join(dir, "data")
	home := filepath.Join(dir, "home")
	for _, d := range []string{data, home, filepath.Join(home, ".docker")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	srv, err := h.startCustody(dir, data)
	if err != nil {
		return nil, err
	}
	f := &cmdFixture{srv: srv, dir: dir, env: []string{
		"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"COSIGN_PASSWORD=" + cosignPassword, "CUSTODY_KEY_PASSWORD=" + cosignPassword,
		"SIGSTORE_NO_CACHE=true", "TUF_ROOT=" + filepath.Join(home, "tuf"),
	}}
	h.cmdFix = f
	img, err := random.Image(1<<20, 3)
	if err != nil {
		return nil, err
	}
	dg, _ := img.Digest()
	f.ref = srv.addr + "/bench/app@" + dg.String()
	ref, err := name.NewDigest(f.ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, remote.WithContext(h.ctx)); err != nil {
		return nil, err
	}
	f.key, f.pub = filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if _, err := f.run(cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, "cosign")); err != nil {
		return nil, err
	}
	pemPub, err := os.ReadFile(f.pub)
	if err != nil {
		return nil, err
	}
	pub, err := key.ParsePublicKey(pemPub)
	if err != nil {
		return nil, err
	}
	id, err := key.ID(pub)
	if err != nil {
		return nil, err
	}
	tr := key.TrustRoot{MediaType: key.TrustRootMediaType, Keys: []key.TrustedKey{{
		ID: id, Algorithm: key.ECDSAP256, Status: key.Active, PublicKey: string(pemPub),
		ValidFor: key.Validity{Start: time.Now().Add(-time.Hour)},
	}}}
	b, err := json.Marshal(tr)
	if err != nil {
		return nil, err
	}
	f.trust = filepath.Join(dir, "trust-root.json")
	if err := os.WriteFile(f.trust, b, 0o644); err != nil {
		return nil, err
	}
	prov := filepath.Join(dir, "provenance.json")
	sbom := filepath.Join(dir, "sbom.spdx.json")
	if err := os.WriteFile(prov, []byte(`{"buildDefinition":{"buildType":"https://custody.dev/bench","externalParameters":{"source":{"uri":"git+https://example.org/app","ref":"refs/heads/main","commit":"6f8e2c1d3b4a59687766554433221100ffeeddcc"}}},"runDetails":{"builder":{"id":"https://example.org/builder"}}}`), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app","documentNamespace":"https://example.org/app","creationInfo":{"created":"2026-11-22T00:00:00Z","creators":["Tool: bench"]},"packages":[]}`), 0o644); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"sign", "--key", f.key, "--tlog-upload=false", "--allow-insecure-registry", "--yes", f.ref},
		{"attest", "--key", f.key, "--type", "slsaprovenance1", "--predicate", prov, "--tlog-upload=false", "--allow-insecure-registry", "--yes", f.ref},
		{"attest", "--key", f.key, "--type", "spdxjson", "--predicate", sbom, "--tlog-upload=false", "--allow-insecure-registry", "--yes", f.ref},
	} {
		if _, err := f.run(cosign, args...); err != nil {
			return nil, err
		}
	}
	// Both verifiers must accept the fixture before they are timed.
	for _, c := range [][]string{h.cmdArgs("verify", targetCustody), h.cmdArgs("verify", targetReference)} {
		if _, err := f.run(c[0], c[1:]...); err != nil {
			return nil, fmt.Errorf("fixture check: %w", err)
		}
	}
	return f, nil
}

func (h *harness) closeFixture() {
	if h.cmdFix != nil {
		h.cmdFix.srv.stop()
	}
}

// run runs one client process in the fixture's environment.
func (f *cmdFixture) run(bin string, args ...string) (float64, error) {
	return runProc(f.env, bin, args...)
}

// runProc runs one process with env added to the harness's environment
// and returns its CPU seconds (user + system).
func runProc(env []string, bin string, args ...string) (float64, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return math.NaN(), nil
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), nil
}

// cmdArgs is the command line a command row runs for target ("" for a
// peer that is missing).
func (h *harness) cmdArgs(row, target string) []string {
	f := h.cmdFix
	if target == targetCustody {
		switch row {
		case "startup":
			return []string{h.custodyBin, "version"}
		case "sign":
			return []string{h.custodyBin, "sign", "--key", f.key, "--storage", "tag", f.ref}
		case "verify":
			return []string{h.custodyBin, "verify", f.ref, "--trust-root", f.trust, "--require", "sbom,provenance"}
		}
	}
	switch row {
	case "startup":
		if c := h.clientBin("crane"); c != "" {
			return []string{c, "version"}
		}
	case "sign":
		if c := h.clientBin("cosign"); c != "" {
			return []string{c, "sign", "--key", f.key, "--tlog-upload=false", "--allow-insecure-registry", "--yes", f.ref}
		}
	case "verify":
		if c := h.clientBin("cosign"); c != "" {
			return []string{c, "verify-attestation", "--key", f.pub, "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry", f.ref}
		}
	}
	return nil
}

// measureCmdRow runs one run of a command row: procRuns processes of
// custody and of the peer, alternating, and returns each side's sample
// (the peer's unit empty when it is missing).
func (h *harness) measureCmdRow(row string) (cust, peer sample, err error) {
	run := func(bin string, args ...string) (float64, error) { return runProc(nil, bin, args...) }
	if row != "startup" {
		f, err := h.fixture()
		if err != nil {
			return cust, peer, err
		}
		run = f.run
	}
	sides := [][]string{h.cmdArgs(row, targetCustody), h.cmdArgs(row, targetReference)}
	var wall, cpu [2][]float64
	n := procRuns
	if h.o.quick {
		n = quickProcRuns
	}
	for range n {
		for i, c := range sides {
			if c == nil {
				continue
			}
			if err := h.ctx.Err(); err != nil {
				return cust, peer, err
			}
			t0 := time.Now()
			cs, err := run(c[0], c[1:]...)
			if err != nil {
				return cust, peer, err
			}
			wall[i] = append(wall[i], time.Since(t0).Seconds())
			cpu[i] = append(cpu[i], cs)
		}
	}
	mk := func(i int) sample {
		if len(wall[i]) == 0 {
			return sample{}
		}
		m := median(wall[i])
		return sample{unit: "runs/s", value: 1 / m, ops: len(wall[i]), seconds: m, cpu: math.Round(median(cpu[i])*1000) / 1000}
	}
	return mk(0), mk(1), nil
}

// cmdRow measures a command row: -runs runs of measureCmdRow, each run's
// median a sample.
func (h *harness) cmdRow(row *Row) error {
	row.Peer = map[string]string{
		"startup": "crane version",
		"sign":    "cosign sign --key (v2, tag)",
		"verify":  "cosign verify-attestation --key --type slsaprovenance1 (v2)",
	}[row.Name]
	for run := range h.o.runs {
		c, p, err := h.measureCmdRow(row.Name)
		if err != nil {
			return fmt.Errorf("%s (run %d): %w", row.Name, run+1, err)
		}
		row.Unit, row.Ops = c.unit, c.ops
		for _, x := range []struct {
			t *Target
			s sample
		}{{&row.Custody, c}, {&row.Reference, p}} {
			if x.s.unit == "" {
				continue
			}
			x.t.Samples = append(x.t.Samples, x.s.value)
			x.t.Seconds = append(x.t.Seconds, x.s.seconds)
			x.t.CPUSamples = append(x.t.CPUSamples, x.s.cpu)
		}
		logf("%-14s run %d custody %.1f ms (CPU %.1f ms), peer %s", row.Name, run+1, c.seconds*1000, c.cpu*1000, peerMS(p))
	}
	row.Custody.Median = median(row.Custody.Samples)
	row.Custody.CPU = median(row.Custody.CPUSamples)
	if len(row.Reference.Samples) > 0 {
		row.Reference.Median = median(row.Reference.Samples)
		row.Reference.CPU = median(row.Reference.CPUSamples)
		row.Ratio = row.Custody.Median / row.Reference.Median
	}
	return nil
}

func peerMS(s sample) string {
	if s.unit == "" {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms (CPU %.1f ms)", s.seconds*1000, s.cpu*1000)
}
