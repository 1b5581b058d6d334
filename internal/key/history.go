package key

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// HistoryFile is the ring's trust-root history: an append-only file of
// JSON lines, each the ring's keys (revoked ones included, with their
// status) as they stood after a change. Create, Rotate and Revoke append
// to it, and Archive appends the ring's state whenever it differs from
// the last line (a ring older than the history, or edited by hand).
const HistoryFile = "trust-history.jsonl"

// MaxHistoryLine caps one line of the history (a ring of a few hundred
// keys).
const MaxHistoryLine = 4 << 20

// state returns every key of the ring, revoked ones included, as a trust
// root stamped with the current time.
func (r *Ring) state() (TrustRoot, error) {
	keys, err := r.List()
	if err != nil {
		return TrustRoot{}, err
	}
	tr := TrustRoot{MediaType: TrustRootMediaType, Keys: []TrustedKey{}, Generated: r.Now().UTC().Truncate(time.Second)}
	for _, k := range keys {
		pub, err := r.PublicKeyPEM(k)
		if err != nil {
			return TrustRoot{}, err
		}
		tr.Keys = append(tr.Keys, TrustedKey{
			ID:        k.ID,
			Algorithm: k.Algorithm,
			Status:    k.Status,
			PublicKey: string(pub),
			ValidFor:  Validity{Start: k.NotBefore, End: k.NotAfter},
		})
	}
	if tr.TimestampAuthorities, err = r.TimestampAuthorities(); err != nil {
		return TrustRoot{}, err
	}
	return tr, nil
}

// Version is one line of the trust-root history.
type Version struct {
	// Digest is "sha256:<hex>" of the line as stored (without its
	// newline), by which the audit log anchors it.
	Digest string
	TrustRoot
}

// History returns every trust root the ring has recorded, oldest first.
func (r *Ring) History() ([]TrustRoot, error) {
	vs, err := r.Versions()
	out := make([]TrustRoot, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.TrustRoot)
	}
	return out, err
}

// Versions returns every line of the trust-root history, oldest first.
func (r *Ring) Versions() ([]Version, error) {
	b, err := os.ReadFile(r.Path(HistoryFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trust-root history: %w", err)
	}
	vs, err := ParseHistory(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path(HistoryFile), err)
	}
	return vs, nil
}

// ParseHistory reads a trust-root history file: JSON lines, each a trust
// root (ParseTrustRoot checks every key); blank lines are skipped.
func ParseHistory(b []byte) ([]Version, error) {
	var out []Version
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxHistoryLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		tr, err := ParseTrustRoot(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		sum := sha256.Sum256(line)
		out = append(out, Version{Digest: "sha256:" + hex.EncodeToString(sum[:]), TrustRoot: tr})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Archive records the ring's current state in its history when it
// differs from the last recorded one, and returns the archived trust root
// (see Archived) and whether it appended a line. When the history cannot
// be written (a read-only ring) it still returns the trust root merged
// from the history and the current state, with the error.
func (r *Ring) Archive() (TrustRoot, bool, error) {
	hist, err := r.History()
	if err != nil {
		return TrustRoot{}, false, err
	}
	cur, err := r.state()
	if err != nil {
		return TrustRoot{}, false, err
	}
	appended := false
	if len(hist) == 0 || !sameKeys(hist[len(hist)-1], cur) {
		if err := r.appendHistory(cur); err != nil {
			return Archived(append(hist, cur)), false, fmt.Errorf("recording the trust root in %s: %w", r.Path(HistoryFile), err)
		}
		hist, appended = append(hist, cur), true
	}
	a := Archived(hist)
	// The CAs kept outside the ring (TrustCertificateAuthorities) are
	// not in the history: the current ones count.
	a.CertificateAuthorities = slices.Clone(r.cas)
	return a, appended, nil
}

// archive records the state after a change the ring made itself.
func (r *Ring) archive(change string) error {
	if _, _, err := r.Archive(); err != nil {
		return fmt.Errorf("%s, but: %w", change, err)
	}
	return nil
}

func (r *Ring) appendHistory(tr TrustRoot) error {
	b, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.Path(HistoryFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// One write per line: concurrent appenders (the server and a 'custody
	// key' command) never interleave within a line.
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sameKeys reports whether two states list the same keys the same way
// (their Generated stamps aside).
func sameKeys(a, b TrustRoot) bool {
	return slices.EqualFunc(a.Keys, b.Keys, func(x, y TrustedKey) bool {
		return x.ID == y.ID && x.Algorithm == y.Algorithm && x.Status == y.Status && x.PublicKey == y.PublicKey &&
			x.ValidFor.Start.Equal(y.ValidFor.Start) && x.ValidFor.End.Equal(y.ValidFor.End)
	}) && slices.EqualFunc(a.TimestampAuthorities, b.TimestampAuthorities, func(x, y TrustedTSA) bool {
		return x.CertChain == y.CertChain && x.ValidFor.Start.Equal(y.ValidFor.Start) && x.ValidFor.End.Equal(y.ValidFor.End)
	}) && slices.EqualFunc(a.TransparencyLogs, b.TransparencyLogs, func(x, y TrustedLog) bool {
		return x.PublicKey == y.PublicKey && x.Origin == y.Origin && x.BaseURL == y.BaseURL && x.ValidFor.Start.Equal(y.ValidFor.Start)
	})
}

// Archived merges a trust-root history into the trust root later
// verification uses. Every key ever recorded stays, even if its files
// left the ring, so a retired key keeps verifying what it signed while it
// was valid; its window is the narrowest one recorded (a window only
// narrows: rotation closes it, so a later edit cannot widen it again); a
// key recorded as revoked once is left out for good. Keys are listed in
// the order they were first recorded, with their latest status; Generated
// is when the latest entry was recorded.
func Archived(hist []TrustRoot) TrustRoot {
	out := TrustRoot{MediaType: TrustRootMediaType, Keys: []TrustedKey{}}
	index := map[string]int{}
	revoked := map[string]bool{}
	var merged []TrustedKey
	for _, tr := range hist {
		if tr.Generated.After(out.Generated) {
			out.Generated = tr.Generated
		}
		for _, k := range tr.Keys {
			if k.Status == Revoked {
				revoked[k.ID] = true
			}
			i, ok := index[k.ID]
			if !ok {
				index[k.ID] = len(merged)
				merged = append(merged, k)
				continue
			}
			m := &merged[i]
			m.Status = k.Status
			if k.ValidFor.Start.After(m.ValidFor.Start) {
				m.ValidFor.Start = k.ValidFor.Start
			}
			if !k.ValidFor.End.IsZero() && (m.ValidFor.End.IsZero() || k.ValidFor.End.Before(m.ValidFor.End)) {
				m.ValidFor.End = k.ValidFor.End
			}
		}
	}
	for _, k := range merged {
		if !revoked[k.ID] {
			out.Keys = append(out.Keys, k)
		}
	}
	// Every time-stamp authority ever recorded stays, so old time-stamps
	// keep verifying; its window is its certificate's, fixed.
	for _, tr := range hist {
		for _, ta := range tr.TimestampAuthorities {
			if !slices.ContainsFunc(out.TimestampAuthorities, func(o TrustedTSA) bool { return o.CertChain == ta.CertChain }) {
				out.TimestampAuthorities = append(out.TimestampAuthorities, ta)
			}
		}
		// Every transparency log ever recorded stays, so old entries
		// keep verifying.
		for _, l := range tr.TransparencyLogs {
			if !slices.ContainsFunc(out.TransparencyLogs, func(o TrustedLog) bool { return o.PublicKey == l.PublicKey && o.Origin == l.Origin }) {
				out.TransparencyLogs = append(out.TransparencyLogs, l)
			}
		}
	}
	return out
}

// RevokedKeys returns the keys a trust-root history records as revoked, as
// last recorded: Archived leaves them out; a verifier may name them to
// say why evidence fails (evidence.Trust.ExplainRevoked).
func RevokedKeys(hist []TrustRoot) []TrustedKey {
	var out []TrustedKey
	seen := map[string]int{}
	for _, tr := range hist {
		for _, k := range tr.Keys {
			if k.Status != Revoked {
				continue
			}
			if i, ok := seen[k.ID]; ok {
				out[i] = k
				continue
			}
			seen[k.ID] = len(out)
			out = append(out, k)
		}
	}
	return out
}

// Revoke marks a key of the ring revoked: trusted for nothing, not even
// what it signed before (use it when a key is compromised; rotation is
// for retiring a key that is not). A revoked active key leaves the ring
// without an active key until 'custody key create'.
func (r *Ring) Revoke(id string) (Info, error) {
	info, err := r.Get(id)
	if err != nil {
		return Info{}, err
	}
	if info.Status == Revoked {
		return Info{}, fmt.Errorf("key %s is already revoked", info.ID)
	}
	info.Status = Revoked
	if info.NotAfter.IsZero() {
		info.NotAfter = r.Now().UTC().Truncate(time.Second)
	}
	if err := r.writeInfo(info); err != nil {
		return Info{}, err
	}
	return info, r.archive("key " + info.ID + " is revoked")
}
