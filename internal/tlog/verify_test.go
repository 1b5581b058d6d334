package tlog_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog"
)

// logSource serves a log in process, as the audit API does; checkpoint,
// when set, replaces the latest checkpoint note and edit changes the
// entries it serves (tampering with a copy).
type logSource struct {
	l          *tlog.Log
	checkpoint []byte
	edit       func([]tlog.EntryJSON) []tlog.EntryJSON
}

func (s logSource) Key(context.Context) ([]byte, error) { return []byte(s.l.VerifierKey() + "\n"), nil }

func (s logSource) Checkpoint(ctx context.Context) ([]byte, error) {
	if s.checkpoint != nil {
		return s.checkpoint, nil
	}
	cp, err := s.l.Latest(ctx)
	return cp.Note, err
}

func (s logSource) Entries(ctx context.Context) ([]tlog.EntryJSON, error) {
	leaves, err := s.l.Leaves(ctx, 0, s.l.Size())
	if err != nil {
		return nil, err
	}
	var out []tlog.EntryJSON
	for _, lf := range leaves {
		out = append(out, tlog.EntryJSON{Index: lf.Index, Entry: string(lf.Entry), LeafHash: hex.EncodeToString(lf.Hash)})
	}
	if s.edit != nil {
		out = s.edit(out)
	}
	return out, nil
}

func (s logSource) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	return s.l.ConsistencyProof(ctx, from, to)
}

// signedLog returns a log of 40 entries with a checkpoint, then 20 more
// with a second checkpoint, then 5 uncovered ones; it returns both
// checkpoints' notes.
func signedLog(t *testing.T, dir string) (*tlog.Log, []byte, []byte) {
	t.Helper()
	ctx := context.Background()
	l, st := openLog(t, dir)
	t.Cleanup(func() { l.Close(); st.Close() })
	sign := func(n int) []byte {
		for i := range n {
			l.Append(entry(i))
		}
		l.Flush()
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cp.Note
	}
	cp40 := sign(40)
	cp60 := sign(20)
	for i := range 5 {
		l.Append(entry(i))
	}
	l.Flush()
	return l, cp40, cp60
}

func verifyOK(t *testing.T, src tlog.Source, opts tlog.VerifyOptions) *tlog.Verification {
	t.Helper()
	v, err := tlog.Verify(context.Background(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// kinds lists the problems' kinds and indexes, e.g. "entry@7 root".
func kinds(v *tlog.Verification) string {
	var out []string
	for _, p := range v.Problems {
		s := string(p.Kind)
		if p.Index != nil {
			s += "@" + strconv.FormatUint(*p.Index, 10)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func editEntry(idx uint64, fix bool) func([]tlog.EntryJSON) []tlog.EntryJSON {
	return func(es []tlog.EntryJSON) []tlog.EntryJSON {
		e := &es[idx]
		e.Entry = strings.Replace(e.Entry, `"result":"ok"`, `"result":"denied"`, 1)
		if fix {
			e.LeafHash = hex.EncodeToString(tlog.LeafHash([]byte(e.Entry)))
		}
		return es
	}
}

func TestVerifyOnline(t *testing.T) {
	dir := t.TempDir()
	l, cp40, cp60 := signedLog(t, dir)
	key := l.VerifierKey()

	v := verifyOK(t, logSource{l: l}, tlog.VerifyOptions{Key: key, Since: cp40})
	if !v.OK() || v.Checkpoint.Size != 60 || v.Uncovered != 5 || v.TrustOnFirstUse || v.Since == nil || v.Since.Size != 40 || !v.Since.Proved {
		t.Fatalf("intact log: %+v (%s)", v, kinds(v))
	}

	cases := []struct {
		name string
		src  logSource
		opts tlog.VerifyOptions
		want string
	}{
		{"entry edited", logSource{l: l, edit: editEntry(7, false)}, tlog.VerifyOptions{Key: key}, "entry@7 root first-difference@7"},
		{"entry and leaf hash edited", logSource{l: l, edit: editEntry(11, true)}, tlog.VerifyOptions{Key: key}, "root first-difference@11"},
		{"entry removed", logSource{l: l, edit: func(es []tlog.EntryJSON) []tlog.EntryJSON { return append(es[:12:12], es[13:]...) }}, tlog.VerifyOptions{Key: key}, "missing"},
		{"entry listed twice", logSource{l: l, edit: func(es []tlog.EntryJSON) []tlog.EntryJSON { return append(es, es[3]) }}, tlog.VerifyOptions{Key: key}, "entry@3"},
		{"entries reordered", logSource{l: l, edit: func(es []tlog.EntryJSON) []tlog.EntryJSON {
			es[3].Entry, es[9].Entry, es[3].LeafHash, es[9].LeafHash = es[9].Entry, es[3].Entry, es[9].LeafHash, es[3].LeafHash
			return es
		}}, tlog.VerifyOptions{Key: key}, "root first-difference@3"},
		{"rolled back", logSource{l: l, checkpoint: cp40}, tlog.VerifyOptions{Key: key, Since: cp60}, "history"},
		{"entry after the saved checkpoint edited", logSource{l: l, edit: editEntry(50, true)}, tlog.VerifyOptions{Key: key, Since: cp40}, "root first-difference@50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := verifyOK(t, tc.src, tc.opts)
			if got := kinds(v); got != tc.want {
				t.Fatalf("problems %q, want %q:\n%+v", got, tc.want, v.Problems)
			}
		})
	}
}

// TestVerifyCheckpointKey: the checkpoint opens only with the log's key;
// without a key Verify refuses unless trust on first use is asked for.
func TestVerifyCheckpointKey(t *testing.T) {
	l, _, _ := signedLog(t, t.TempDir())
	other := t.TempDir()
	_, otherKey, err := tlog.LoadOrCreateKey(other, "custody/test")
	if err != nil {
		t.Fatal(err)
	}
	v := verifyOK(t, logSource{l: l}, tlog.VerifyOptions{Key: otherKey})
	if kinds(v) != "checkpoint" || !strings.Contains(v.Problems[0].Detail, "signature invalid") || v.Checkpoint.Root != nil {
		t.Fatalf("another key: %+v", v)
	}
	if _, err := tlog.Verify(context.Background(), logSource{l: l}, tlog.VerifyOptions{}); err == nil {
		t.Fatal("Verify without a key or trust on first use succeeded")
	}
	v = verifyOK(t, logSource{l: l}, tlog.VerifyOptions{Key: "", TrustSourceKey: true})
	if !v.OK() || !v.TrustOnFirstUse {
		t.Fatalf("trust on first use: %+v", v)
	}
}

// TestVerifyForkedHistory: a log signed with the same key whose history
// differs from a saved checkpoint is inconsistent with it, whether the
// sizes match (fork) or it has grown (consistency proof fails).
func TestVerifyForkedHistory(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	la, cpA40, _ := signedLog(t, a)
	key, err := os.ReadFile(filepath.Join(a, tlog.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, tlog.KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lb, st := openLog(t, b)
	defer func() { lb.Close(); st.Close() }()
	for i := range 40 {
		lb.Append(entry(i + 1)) // different entries, same key
	}
	lb.Flush()
	if _, err := lb.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	vkey := la.VerifierKey()
	v := verifyOK(t, logSource{l: lb}, tlog.VerifyOptions{Key: vkey, Since: cpA40})
	if kinds(v) != "history" || !strings.Contains(v.Problems[0].Detail, "forked") {
		t.Fatalf("same size, other root: %+v", v.Problems)
	}
	for i := range 10 {
		lb.Append(entry(i))
	}
	lb.Flush()
	if _, err := lb.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	v = verifyOK(t, logSource{l: lb}, tlog.VerifyOptions{Key: vkey, Since: cpA40})
	if kinds(v) != "history history" || !v.Since.Proved {
		t.Fatalf("grown from another history: %+v", v.Problems)
	}
}

// TestVerifyExport: an export verifies offline; an edited export fails
// without proofs to locate the difference.
func TestVerifyExport(t *testing.T) {
	ctx := context.Background()
	l, cp40, _ := signedLog(t, t.TempDir())
	src := logSource{l: l}
	write := func(edit func([]tlog.EntryJSON) []tlog.EntryJSON) tlog.Export {
		t.Helper()
		cp, _ := src.Checkpoint(ctx)
		key, _ := src.Key(ctx)
		es, _ := logSource{l: l, edit: edit}.Entries(ctx)
		dir := filepath.Join(t.TempDir(), "export")
		if err := tlog.WriteExport(dir, cp, key, es); err != nil {
			t.Fatal(err)
		}
		return tlog.Export(dir)
	}
	v := verifyOK(t, write(nil), tlog.VerifyOptions{Key: l.VerifierKey(), Since: cp40})
	if !v.OK() || v.Checkpoint.Size != 60 || v.Since.Proved || v.Since.Size != 40 {
		t.Fatalf("intact export: %+v", v)
	}
	v = verifyOK(t, write(editEntry(5, true)), tlog.VerifyOptions{Key: l.VerifierKey(), Since: cp40})
	if got := kinds(v); got != "root history" {
		t.Fatalf("edited export: %q %+v", got, v.Problems)
	}
	v = verifyOK(t, write(editEntry(5, false)), tlog.VerifyOptions{Key: l.VerifierKey()})
	if got := kinds(v); got != "entry@5 root" {
		t.Fatalf("edited export: %q %+v", got, v.Problems)
	}
}

// memSource is a Source held in memory, for fuzzing.
type memSource struct {
	key, checkpoint []byte
	entries         []tlog.EntryJSON
}

func (m memSource) Key(context.Context) ([]byte, error)               { return m.key, nil }
func (m memSource) Checkpoint(context.Context) ([]byte, error)        { return m.checkpoint, nil }
func (m memSource) Entries(context.Context) ([]tlog.EntryJSON, error) { return m.entries, nil }
func (m memSource) Consistency(context.Context, uint64, uint64) ([][]byte, error) {
	return nil, tlog.ErrNoProofs
}

// FuzzVerify feeds Verify arbitrary checkpoints and entries from a source
// whose key it trusts on first use (the weakest setting: the source
// controls everything). It must never panic, and must report a problem
// unless the log is intact.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	l, st := openLog(f, dir)
	defer st.Close()
	ctx := context.Background()
	for i := range 5 {
		l.Append(entry(i))
	}
	l.Flush()
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := logSource{l: l}.Entries(ctx)
	var jsonl []byte
	for _, e := range good {
		b, _ := json.Marshal(e)
		jsonl = append(append(jsonl, b...), '\n')
	}
	key := []byte(l.VerifierKey())
	l.Close()
	f.Add(key, cp.Note, jsonl)
	f.Add(key, cp.Note, []byte(`{"index":18446744073709551615,"entry":"{}","leafHash":"00"}`))
	f.Add(key, []byte("custody/test\n99999999999999\nAAAA\n\n— x\n"), jsonl)
	f.Add([]byte("junk"), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, key, note, lines []byte) {
		var es []tlog.EntryJSON
		for _, ln := range bytes.Split(lines, []byte("\n")) {
			var e tlog.EntryJSON
			if json.Unmarshal(ln, &e) == nil {
				es = append(es, e)
			}
		}
		v, err := tlog.Verify(ctx, memSource{key: key, checkpoint: note, entries: es}, tlog.VerifyOptions{TrustSourceKey: true, Since: note})
		if err != nil {
			t.Fatal(err)
		}
		if v.OK() {
			// An intact log: the entries hash to the signed root.
			if uint64(len(es))-v.Uncovered != v.Checkpoint.Size {
				t.Fatalf("OK with %d entries for a checkpoint of size %d", len(es), v.Checkpoint.Size)
			}
		}
	})
}

// TestVerifyHugeCheckpoint: a source whose key is trusted on first use can
// sign any size; Verify reports the entries missing without allocating
// for the size it claims.
func TestVerifyHugeCheckpoint(t *testing.T) {
	signer, vkey, err := tlog.LoadOrCreateKey(t.TempDir(), "custody/huge")
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Sign(&note.Note{Text: tlog.CheckpointBody("custody/huge", 1<<50, make([]byte, 32))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	l, _, _ := signedLog(t, t.TempDir())
	es, _ := logSource{l: l}.Entries(context.Background())
	v := verifyOK(t, memSource{key: []byte(vkey), checkpoint: n, entries: es}, tlog.VerifyOptions{TrustSourceKey: true})
	if kinds(v) != "missing" || !strings.Contains(v.Problems[0].Detail, "1125899906842559 of the 1125899906842624 entries") {
		t.Fatalf("huge checkpoint: %+v", v.Problems)
	}
}
