package cli

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/tlog"
)

// Files of an audit export directory.
const (
	exportCheckpoint = "checkpoint"
	exportKey        = "log-key.pub"
	exportEntries    = "entries.jsonl"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and checkpoint the tamper-evident audit log",
		Long: `The audit log records every state change and refusal as an entry of an
append-only RFC 6962 Merkle tree; the server signs checkpoints (tree size
and root hash) with its log key. See docs/audit.md.`,
	}
	cmd.AddCommand(newAuditVerifyCmd(), newAuditExportCmd(), newAuditCheckpointCmd())
	return cmd
}

func newAuditCheckpointCmd() *cobra.Command {
	var (
		serverURL string
		sign      bool
	)
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint (save it for verify --since-checkpoint)",
		Example: `  custody audit checkpoint --server http://127.0.0.1:5000 > cp.txt
  custody audit checkpoint --server http://127.0.0.1:5000 --sign`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAuditClient(serverURL)
			if err != nil {
				return err
			}
			var b []byte
			if sign {
				b, err = c.do(http.MethodPost, "/api/v1/audit/checkpoint")
			} else {
				b, err = c.do(http.MethodGet, "/api/v1/audit/checkpoint")
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	registerServer(cmd.Flags(), &serverURL)
	cmd.Flags().BoolVar(&sign, "sign", false, "ask the server to sign a checkpoint of the current tree first")
	return cmd
}

func newAuditExportCmd() *cobra.Command {
	var serverURL string
	cmd := &cobra.Command{
		Use:   "export DIR",
		Short: "Write the latest checkpoint, the log's public key and every entry to DIR",
		Long: `export writes DIR/checkpoint (the latest signed checkpoint),
DIR/log-key.pub (the server's public key, as the server serves it) and
DIR/entries.jsonl (one {"index","entry","leafHash"} object a line), so that
'custody audit verify --export DIR --key KEY' works offline.`,
		Example: `  custody audit export --server http://127.0.0.1:5000 ./audit-2026-11`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			c, err := newAuditClient(serverURL)
			if err != nil {
				return err
			}
			cp, err := c.do(http.MethodGet, "/api/v1/audit/checkpoint")
			if err != nil {
				return err
			}
			key, err := c.do(http.MethodGet, "/api/v1/audit/key")
			if err != nil {
				return err
			}
			entries, err := c.entries()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			var buf bytes.Buffer
			for _, e := range entries {
				b, _ := json.Marshal(e)
				buf.Write(b)
				buf.WriteByte('\n')
			}
			for name, b := range map[string][]byte{exportCheckpoint: cp, exportKey: key, exportEntries: buf.Bytes()} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %d entries and the checkpoint to %s\n", len(entries), dir)
			return nil
		},
	}
	registerServer(cmd.Flags(), &serverURL)
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		serverURL, exportDir, keyFile, sinceFile string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log against its signed checkpoint",
		Long: `verify checks the audit log end to end:

  1. the latest checkpoint's signature, with the log's public key (--key;
     without it, the key the server or export offers, which only proves the
     log is consistent with itself: trust on first use);
  2. every entry: recomputes its RFC 6962 leaf hash, checks it is in
     canonical form and that no index is missing;
  3. recomputes the Merkle root of the first <size> entries and compares it
     with the checkpoint's root (online, it also pinpoints the first entry
     that differs from the signed tree, using consistency proofs);
  4. with --since-checkpoint FILE (a checkpoint saved earlier with 'custody
     audit checkpoint'): that the current checkpoint extends the saved one
     (consistency proof, and the recomputed root of the saved size);
  5. online: that the log records every tag the registry holds (an ok
     tag.set entry for its current digest), so that a change the
     metadata holds but the log lacks is reported (not offline).

It prints every problem found and exits with status 1 if there is any.`,
		Example: `  custody audit verify --server http://127.0.0.1:5000 --key log-key.pub
  custody audit verify --export ./audit-2026-11 --key log-key.pub --since-checkpoint cp-2026-10.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if exportDir != "" && cmd.Flags().Changed("server") {
				return errors.New("give --server or --export, not both")
			}
			var src auditSource
			if exportDir != "" {
				src = exportSource(exportDir)
			} else {
				c, err := newAuditClient(serverURL)
				if err != nil {
					return err
				}
				src = c
			}
			v := &auditVerifier{src: src, out: cmd.OutOrStdout(), warn: cmd.ErrOrStderr()}
			if err := v.run(keyFile, sinceFile); err != nil {
				return err
			}
			if len(v.problems) > 0 {
				return fmt.Errorf("audit log verification failed: %d problem(s)", len(v.problems))
			}
			return nil
		},
	}
	f := cmd.Flags()
	registerServer(f, &serverURL)
	f.StringVar(&exportDir, "export", "", "verify an export directory (custody audit export) offline")
	f.StringVar(&keyFile, "key", "", "the log's public key (log-key.pub from the server's data directory)")
	f.StringVar(&sinceFile, "since-checkpoint", "", "a checkpoint saved earlier: check the log still extends it")
	return cmd
}

// auditSource is where verify reads the log from.
type auditSource interface {
	key() ([]byte, error)
	checkpoint() ([]byte, error)
	entries() ([]tlog.EntryJSON, error)
	// consistency returns a consistency proof, or errNoProofs offline.
	consistency(from, to uint64) ([][]byte, error)
	// reconcile returns the server's reconciliation of its tags with the
	// log, or errNoProofs offline.
	reconcile() (tlog.Reconciliation, error)
}

var errNoProofs = errors.New("no proofs offline")

type auditClient struct{ base string }

// newAuditClient talks to the server --server, CUSTODY_SERVER or the last
// login names.
func newAuditClient(flag string) (auditClient, error) {
	base, err := resolveServer(flag)
	return auditClient{base: base}, err
}

var auditHTTP = &http.Client{Timeout: time.Minute}

func (c auditClient) do(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if err := authorize(req, c.base); err != nil {
		return nil, err
	}
	resp, err := auditHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p problem.Details
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, p.Title, p.Detail)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return b, nil
}

func (c auditClient) key() ([]byte, error) { return c.do(http.MethodGet, "/api/v1/audit/key") }
func (c auditClient) checkpoint() ([]byte, error) {
	return c.do(http.MethodGet, "/api/v1/audit/checkpoint")
}

func (c auditClient) entries() ([]tlog.EntryJSON, error) {
	var out []tlog.EntryJSON
	for start, size := uint64(0), uint64(1); start < size; start += tlog.MaxEntries {
		b, err := c.do(http.MethodGet, fmt.Sprintf("/api/v1/audit/entries?start=%d&end=%d", start, start+tlog.MaxEntries))
		if err != nil {
			return nil, err
		}
		var r tlog.EntriesResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("entries: %w", err)
		}
		size = r.Size
		out = append(out, r.Entries...)
	}
	return out, nil
}

func (c auditClient) consistency(from, to uint64) ([][]byte, error) {
	b, err := c.do(http.MethodGet, fmt.Sprintf("/api/v1/audit/proof/consistency?from=%d&to=%d", from, to))
	if err != nil {
		return nil, err
	}
	var r tlog.ProofResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return r.Hashes, nil
}

func (c auditClient) reconcile() (tlog.Reconciliation, error) {
	var r tlog.Reconciliation
	b, err := c.do(http.MethodGet, "/api/v1/audit/reconcile")
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reconciliation: %w", err)
	}
	return r, nil
}

type exportSource string

func (d exportSource) reconcile() (tlog.Reconciliation, error) {
	return tlog.Reconciliation{}, errNoProofs
}

func (d exportSource) key() ([]byte, error) { return os.ReadFile(filepath.Join(string(d), exportKey)) }
func (d exportSource) checkpoint() ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), exportCheckpoint))
}
func (d exportSource) consistency(uint64, uint64) ([][]byte, error) { return nil, errNoProofs }

func (d exportSource) entries() ([]tlog.EntryJSON, error) {
	f, err := os.Open(filepath.Join(string(d), exportEntries))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tlog.EntryJSON
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var e tlog.EntryJSON
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", exportEntries, line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

type auditVerifier struct {
	src       auditSource
	out, warn io.Writer
	problems  []string
}

func (v *auditVerifier) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	v.problems = append(v.problems, msg)
	fmt.Fprintf(v.out, "FAIL: %s\n", msg)
}

func (v *auditVerifier) run(keyFile, sinceFile string) error {
	var (
		vkey []byte
		err  error
	)
	if keyFile != "" {
		vkey, err = os.ReadFile(keyFile)
	} else {
		fmt.Fprintln(v.warn, "warning: no --key given: using the public key the log itself offers (trust on first use); this only shows the log is consistent with itself. Pin the key with --key.")
		vkey, err = v.src.key()
	}
	if err != nil {
		return fmt.Errorf("reading the log's public key: %w", err)
	}
	cpNote, err := v.src.checkpoint()
	if err != nil {
		return fmt.Errorf("reading the checkpoint: %w", err)
	}
	cp, err := tlog.OpenCheckpoint(string(vkey), cpNote)
	if err != nil {
		v.fail("checkpoint: %v", err)
		return nil
	}
	fmt.Fprintf(v.out, "checkpoint: origin %q, size %d, root %s (signature valid)\n", cp.Origin, cp.Size, hex.EncodeToString(cp.Root))

	entries, err := v.src.entries()
	if err != nil {
		return fmt.Errorf("reading entries: %w", err)
	}
	hashes, complete := v.checkEntries(entries, cp.Size)
	if complete {
		root := tlog.RootFromLeafHashes(hashes)
		if !bytes.Equal(root, cp.Root) {
			v.fail("root mismatch: the %d entries hash to root %s, the signed checkpoint says %s", cp.Size, hex.EncodeToString(root), hex.EncodeToString(cp.Root))
			v.locate(hashes, cp)
		}
	}
	if sinceFile != "" {
		v.checkSince(sinceFile, string(vkey), cp, hashes, complete)
	}
	if err := v.reconcile(); err != nil {
		return err
	}
	if len(v.problems) == 0 {
		fmt.Fprintf(v.out, "OK: %d entries match the signed checkpoint\n", cp.Size)
	}
	return nil
}

// reconcile reports the tags the registry holds that the log does not
// record.
func (v *auditVerifier) reconcile() error {
	rec, err := v.src.reconcile()
	if errors.Is(err, errNoProofs) {
		fmt.Fprintln(v.warn, "note: offline, the registry's tags are not reconciled with the log")
		return nil
	}
	if err != nil {
		return fmt.Errorf("reconciling the registry's tags with the log: %w", err)
	}
	for _, u := range rec.Unrecorded {
		v.fail("tag %s:%s points at %s, but no audit entry records it being set (a change missing from the log)", u.Repo, u.Tag, u.Digest)
	}
	if rec.Truncated {
		v.fail("more tags than listed are missing from the log")
	}
	fmt.Fprintf(v.out, "reconciliation: %d tags checked against the log, %d unrecorded\n", rec.Tags, len(rec.Unrecorded))
	return nil
}

// checkEntries checks each entry and returns the recomputed leaf hashes of
// the first size entries, and whether all of them are present.
func (v *auditVerifier) checkEntries(entries []tlog.EntryJSON, size uint64) ([][]byte, bool) {
	hashes := make([][]byte, size)
	var extra uint64
	for _, e := range entries {
		h := tlog.LeafHash([]byte(e.Entry))
		if hex.EncodeToString(h) != e.LeafHash {
			v.fail("entry %d: its content hashes to %s but the stored leaf hash is %s (entry modified after it was logged)", e.Index, hex.EncodeToString(h), e.LeafHash)
		}
		if _, err := tlog.ParseEntry([]byte(e.Entry)); err != nil {
			v.fail("entry %d: %v", e.Index, err)
		}
		if e.Index >= size {
			extra++
			continue
		}
		if hashes[e.Index] != nil {
			v.fail("entry %d: listed twice", e.Index)
		}
		hashes[e.Index] = h
	}
	complete := true
	var missing []string
	for i, h := range hashes {
		if h == nil {
			complete = false
			missing = append(missing, fmt.Sprint(i))
		}
	}
	if !complete {
		if len(missing) > 20 {
			missing = append(missing[:20], "...")
		}
		v.fail("%d of the %d entries the checkpoint covers are missing: index %s", int(size)-(len(entries)-int(extra)), size, strings.Join(missing, ", "))
	}
	if extra > 0 {
		fmt.Fprintf(v.out, "note: %d entries after index %d are not covered by the checkpoint yet\n", extra, size)
	}
	return hashes, complete
}

// locate finds the first entry that differs from the signed tree, by
// binary search over consistency proofs from prefixes of the recomputed
// tree to the checkpoint (online only).
func (v *auditVerifier) locate(hashes [][]byte, cp tlog.Checkpoint) {
	good := func(m uint64) (bool, error) {
		if m == 0 {
			return true, nil
		}
		p, err := v.src.consistency(m, cp.Size)
		if err != nil {
			return false, err
		}
		return proof.VerifyConsistency(rfc6962.DefaultHasher, m, cp.Size, p, tlog.RootFromLeafHashes(hashes[:m]), cp.Root) == nil, nil
	}
	lo, hi := uint64(0), cp.Size // good(lo); !good(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := good(mid)
		if err != nil {
			if !errors.Is(err, errNoProofs) {
				fmt.Fprintf(v.warn, "warning: cannot locate the differing entry: %v\n", err)
			}
			return
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	v.fail("entry %d is the first that differs from the signed tree (entries were modified, removed, inserted or reordered from here)", lo)
}

// checkSince checks that cp extends the checkpoint saved in file.
func (v *auditVerifier) checkSince(file, vkey string, cp tlog.Checkpoint, hashes [][]byte, complete bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		v.fail("--since-checkpoint: %v", err)
		return
	}
	old, err := tlog.OpenCheckpoint(vkey, b)
	if err != nil {
		v.fail("saved checkpoint %s: %v", file, err)
		return
	}
	switch {
	case old.Size > cp.Size:
		v.fail("inconsistent history: the current checkpoint (size %d) is smaller than the saved checkpoint (size %d): the log was rolled back or an old checkpoint is being replayed", cp.Size, old.Size)
		return
	case old.Size == cp.Size:
		if !bytes.Equal(old.Root, cp.Root) {
			v.fail("inconsistent history: the saved and current checkpoints both have size %d but different roots (forked log)", cp.Size)
		}
		return
	}
	p, err := v.src.consistency(old.Size, cp.Size)
	switch {
	case errors.Is(err, errNoProofs):
	case err != nil:
		v.fail("consistency proof %d -> %d: %v", old.Size, cp.Size, err)
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Root, cp.Root); err != nil {
			v.fail("inconsistent history: the consistency proof from the saved checkpoint (size %d) to the current one (size %d) does not verify: %v", old.Size, cp.Size, err)
		}
	}
	if complete {
		if root := tlog.RootFromLeafHashes(hashes[:old.Size]); !bytes.Equal(root, old.Root) {
			v.fail("inconsistent history: the first %d entries hash to %s, not to the saved checkpoint's root %s", old.Size, hex.EncodeToString(root), hex.EncodeToString(old.Root))
		}
	}
	if len(v.problems) == 0 {
		fmt.Fprintf(v.out, "consistent with the saved checkpoint of size %d\n", old.Size)
	}
}
