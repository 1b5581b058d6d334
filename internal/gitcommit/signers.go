package gitcommit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// MaxSignersBytes caps an allowed-signers file.
const MaxSignersBytes = 4 << 20

// AllowedSigner is one line of an allowed-signers file (ssh-keygen(1),
// ALLOWED SIGNERS): the principals that may sign with a key, in which
// namespaces and when.
type AllowedSigner struct {
	// Principals are the line's principal patterns (an email address, or
	// a pattern with * and ?).
	Principals []string
	// Key is the public key.
	Key ssh.PublicKey
	// Namespaces, when not empty, limit the namespaces the key signs
	// (patterns); git signs commits in namespace "git".
	Namespaces []string
	// ValidAfter and ValidBefore, when not zero, bound the time the key
	// may have signed (git checks the committer time).
	ValidAfter  time.Time
	ValidBefore time.Time
	// Line is the line number, for messages.
	Line int
}

// ParseAllowedSigners reads an allowed-signers file: one signer a line,
// "principals [options] keytype base64key [comment]"; empty lines and
// lines starting with # are skipped. Options are namespaces="...",
// valid-after="..." and valid-before="..." (YYYYMMDD[HHMM[SS]], with an
// optional Z; custody reads every time as UTC). cert-authority lines
// (certificate signers) are refused: custody verifies plain keys only.
func ParseAllowedSigners(b []byte) ([]AllowedSigner, error) {
	if len(b) > MaxSignersBytes {
		return nil, fmt.Errorf("allowed signers: %d bytes, the limit is %d", len(b), MaxSignersBytes)
	}
	var out []AllowedSigner
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), MaxSignersBytes)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSignerLine(line)
		if err != nil {
			return nil, fmt.Errorf("allowed signers line %d: %w", n, err)
		}
		s.Line = n
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("allowed signers: %w", err)
	}
	return out, nil
}

func parseSignerLine(line string) (AllowedSigner, error) {
	var s AllowedSigner
	var principals, rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return s, errors.New("unterminated quoted principals")
		}
		principals, rest = line[1:1+end], line[2+end:]
	} else {
		var ok bool
		principals, rest, ok = strings.Cut(line, " ")
		if !ok {
			if principals, rest, ok = strings.Cut(line, "\t"); !ok {
				return s, errors.New("no key after the principals")
			}
		}
	}
	for p := range strings.SplitSeq(principals, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.Principals = append(s.Principals, p)
		}
	}
	if len(s.Principals) == 0 {
		return s, errors.New("no principal")
	}
	key, _, options, tail, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
	if err != nil {
		return s, fmt.Errorf("unreadable options or key: %w", err)
	}
	if len(bytes.TrimSpace(tail)) != 0 {
		return s, errors.New("more than one key on the line")
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return s, errors.New("a certificate is not a signer key")
	}
	s.Key = key
	for _, o := range options {
		name, value, hasValue := strings.Cut(o, "=")
		value = strings.Trim(value, `"`)
		switch strings.ToLower(name) {
		case "namespaces":
			for ns := range strings.SplitSeq(value, ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					s.Namespaces = append(s.Namespaces, ns)
				}
			}
			if !hasValue || len(s.Namespaces) == 0 {
				return s, errors.New("namespaces= names no namespace")
			}
		case "valid-after", "valid-before":
			t, err := parseSignerTime(value)
			if err != nil {
				return s, fmt.Errorf("%s: %w", name, err)
			}
			if strings.EqualFold(name, "valid-after") {
				s.ValidAfter = t
			} else {
				s.ValidBefore = t
			}
		case "cert-authority":
			return s, errors.New("cert-authority (SSH certificate signers) is not supported: list the signers' keys")
		default:
			return s, fmt.Errorf("unknown option %q", name)
		}
	}
	return s, nil
}

// parseSignerTime reads YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS with an
// optional trailing Z, as UTC.
func parseSignerTime(v string) (time.Time, error) {
	v = strings.TrimSuffix(strings.TrimSuffix(v, "Z"), "z")
	for _, layout := range []string{"20060102", "200601021504", "20060102150405"} {
		if len(v) == len(layout) {
			if t, err := time.Parse(layout, v); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not YYYYMMDD[HHMM[SS]][Z]", v)
}

// allows reports whether the signer may have signed in namespace ns at t,
// and why not.
func (s AllowedSigner) allows(ns string, t time.Time) error {
	if len(s.Namespaces) > 0 && !slices.ContainsFunc(s.Namespaces, func(p string) bool {
		ok, _ := path.Match(p, ns)
		return ok
	}) {
		return fmt.Errorf("allowed signers line %d does not allow namespace %q (namespaces=%s)", s.Line, ns, strings.Join(s.Namespaces, ","))
	}
	if !s.ValidAfter.IsZero() && t.Before(s.ValidAfter) {
		return fmt.Errorf("allowed signers line %d: the key is valid after %s, the commit is dated %s", s.Line, s.ValidAfter.Format(time.RFC3339), t.Format(time.RFC3339))
	}
	if !s.ValidBefore.IsZero() && !t.Before(s.ValidBefore) {
		return fmt.Errorf("allowed signers line %d: the key was valid before %s, the commit is dated %s", s.Line, s.ValidBefore.Format(time.RFC3339), t.Format(time.RFC3339))
	}
	return nil
}
