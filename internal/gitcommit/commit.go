// Package gitcommit reads raw git commit objects (`git cat-file commit
// REV`) and verifies their signatures: SSH signatures (the sshsig format,
// namespace "git") against an allowed-signers list in the format of git's
// gpg.ssh.allowedSignersFile, and OpenPGP signatures against a keyring.
// It is the one place custody decides whether a commit is signed by an
// allowed signer (the source verification of docs/signing.md).
package gitcommit

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // git's object IDs are SHA-1 in SHA-1 repositories
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxBytes caps a commit object (git has no limit; real commits are a few
// KiB, a signed one with a long message rarely more than 100 KiB).
const MaxBytes = 1 << 20

// The object formats of a git repository.
const (
	SHA1   = "sha1"
	SHA256 = "sha256"
)

// ErrInvalid wraps every reason a commit object is unreadable.
var ErrInvalid = errors.New("invalid commit object")

// Commit is a parsed commit object.
type Commit struct {
	// Raw is the object as given (without git's "commit <size>\x00"
	// header).
	Raw []byte
	// Tree and Parents are object IDs (hex).
	Tree    string
	Parents []string
	// Author and Committer are the identity lines' values ("Name <email>
	// 1700000000 +0100").
	Author    string
	Committer string
	// CommitterTime is the committer timestamp.
	CommitterTime time.Time
	// Signature is the signature header's value, continuation lines
	// joined with "\n" (an armored SSH or OpenPGP signature); empty when
	// the commit is not signed. SignatureSHA256 is the gpgsig-sha256
	// header of a SHA-256 repository.
	Signature       string
	SignatureSHA256 string
	// Payload is what the signature signs: Raw without its signature
	// headers.
	Payload []byte
	// Message is the commit message.
	Message string
}

var hexID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`) })

// identity is "Name <email> <unix seconds> <+hhmm>".
var identity = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[^<>\n]*<[^<>\n]*> (-?[0-9]+) ([+-][0-9]{4})$`) })

// Parse reads a raw commit object. The header must start with exactly one
// tree, then parents, then exactly one author and one committer; other
// headers (encoding, mergetag, gpgsig, gpgsig-sha256, ...) may follow, and
// a header's continuation lines start with a space.
func Parse(raw []byte) (*Commit, error) {
	if len(raw) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalid, len(raw), MaxBytes)
	}
	c := &Commit{Raw: bytes.Clone(raw)}
	// The header is every line up to the first empty one; each line,
	// its newline included, is raw[start:end].
	headEnd := bytes.Index(raw, []byte("\n\n"))
	switch {
	case headEnd >= 0:
		c.Message = string(raw[headEnd+2:])
		headEnd++
	case bytes.HasSuffix(raw, []byte("\n")):
		headEnd = len(raw) // a commit with no message
	default:
		return nil, fmt.Errorf("%w: no blank line ends the header", ErrInvalid)
	}
	type header struct {
		name, value string
		start, end  int
	}
	var hs []header
	for off := 0; off < headEnd; {
		n := bytes.IndexByte(raw[off:headEnd], '\n')
		line := string(raw[off : off+n])
		if strings.HasPrefix(line, " ") {
			if len(hs) == 0 {
				return nil, fmt.Errorf("%w: continuation line before any header", ErrInvalid)
			}
			h := &hs[len(hs)-1]
			h.value += "\n" + line[1:]
			h.end = off + n + 1
		} else {
			name, value, ok := strings.Cut(line, " ")
			if !ok || name == "" {
				return nil, fmt.Errorf("%w: header line %q has no value", ErrInvalid, short(line))
			}
			hs = append(hs, header{name: name, value: value, start: off, end: off + n + 1})
		}
		off += n + 1
	}
	i := 0
	next := func(name string) (string, bool) {
		if i < len(hs) && hs[i].name == name {
			i++
			return hs[i-1].value, true
		}
		return "", false
	}
	tree, okTree := next("tree")
	if !okTree || !hexID().MatchString(tree) {
		return nil, fmt.Errorf("%w: it must start with a tree line holding an object ID", ErrInvalid)
	}
	c.Tree = tree
	for {
		p, ok := next("parent")
		if !ok {
			break
		}
		if !hexID().MatchString(p) || len(p) != len(tree) {
			return nil, fmt.Errorf("%w: parent %q is not an object ID like the tree's", ErrInvalid, short(p))
		}
		c.Parents = append(c.Parents, p)
	}
	var okA, okC bool
	if c.Author, okA = next("author"); !okA || !identity().MatchString(c.Author) {
		return nil, fmt.Errorf("%w: an author line \"Name <email> time zone\" must follow the tree and parents", ErrInvalid)
	}
	if c.Committer, okC = next("committer"); !okC {
		return nil, fmt.Errorf("%w: a committer line must follow the author", ErrInvalid)
	}
	m := identity().FindStringSubmatch(c.Committer)
	if m == nil {
		return nil, fmt.Errorf("%w: committer %q is not \"Name <email> time zone\"", ErrInvalid, short(c.Committer))
	}
	secs, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: committer time: %v", ErrInvalid, err)
	}
	c.CommitterTime = time.Unix(secs, 0).UTC()
	var payload bytes.Buffer
	prev := 0
	for _, h := range hs[i:] {
		switch h.name {
		case "tree", "parent", "author", "committer":
			return nil, fmt.Errorf("%w: a second or misplaced %s line", ErrInvalid, h.name)
		case "gpgsig", "gpgsig-sha256":
			sig := &c.Signature
			if h.name == "gpgsig-sha256" {
				sig = &c.SignatureSHA256
			}
			if *sig != "" {
				return nil, fmt.Errorf("%w: two %s headers", ErrInvalid, h.name)
			}
			if strings.TrimSpace(h.value) == "" {
				return nil, fmt.Errorf("%w: an empty %s header", ErrInvalid, h.name)
			}
			*sig = h.value
			payload.Write(raw[prev:h.start])
			prev = h.end
		}
	}
	payload.Write(raw[prev:])
	c.Payload = payload.Bytes()
	return c, nil
}

// ID returns the commit's object ID in format (SHA1 or SHA256): the hash
// of "commit <size>\x00" and the object.
func (c *Commit) ID(format string) (string, error) {
	hdr := "commit " + strconv.Itoa(len(c.Raw)) + "\x00"
	switch format {
	case SHA1:
		h := sha1.New() //nolint:gosec // git object ID
		h.Write([]byte(hdr))
		h.Write(c.Raw)
		return hex.EncodeToString(h.Sum(nil)), nil
	case SHA256:
		h := sha256.New()
		h.Write([]byte(hdr))
		h.Write(c.Raw)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	return "", fmt.Errorf("unknown object format %q: use sha1 or sha256", format)
}

// FormatOf names the object format of an object ID by its length: 40 hex
// digits are SHA-1, 64 SHA-256; "" for anything else.
func FormatOf(id string) string {
	if !hexID().MatchString(id) {
		return ""
	}
	if len(id) == 40 {
		return SHA1
	}
	return SHA256
}

// SignatureFor returns the signature that signs the commit in a
// repository of format: gpgsig-sha256 in a SHA-256 repository when
// present, else gpgsig.
func (c *Commit) SignatureFor(format string) string {
	if format == SHA256 && c.SignatureSHA256 != "" {
		return c.SignatureSHA256
	}
	return c.Signature
}

// Email returns the email of an identity line's value ("" when none).
func Email(ident string) string {
	_, rest, ok := strings.Cut(ident, "<")
	if !ok {
		return ""
	}
	e, _, _ := strings.Cut(rest, ">")
	return e
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
