package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed tree head: the tree's size and root hash, and the
// signed note that commits to them.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Note is the signed note (C2SP signed-note) whose text is the
	// C2SP tlog-checkpoint body.
	Note []byte
}

// CheckpointBody returns the tlog-checkpoint body: origin, size and the
// base64 root hash, one per line.
func CheckpointBody(origin string, size uint64, root []byte) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root))
}

// ParseCheckpointBody parses a tlog-checkpoint body (extension lines after
// the root hash are allowed and ignored).
func ParseCheckpointBody(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, errors.New("checkpoint: fewer than three lines")
	}
	if lines[0] == "" {
		return Checkpoint{}, errors.New("checkpoint: empty origin")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint: invalid tree size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return Checkpoint{}, fmt.Errorf("checkpoint: invalid root hash %q", lines[2])
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// OpenCheckpoint verifies a signed checkpoint note with the verifier key
// vkey (note.NewVerifier format) and parses it. The note's key name must be
// the checkpoint's origin.
func OpenCheckpoint(vkey string, msg []byte) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("invalid log public key: %w", err)
	}
	return OpenCheckpointWith(v, msg)
}

// OpenCheckpointWith is OpenCheckpoint with a note verifier of any key
// type (internal/rekor's logs sign with ECDSA keys).
func OpenCheckpointWith(v note.Verifier, msg []byte) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature invalid: %w", err)
	}
	cp, err := ParseCheckpointBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key's name %q", cp.Origin, v.Name())
	}
	cp.Note = msg
	return cp, nil
}

// Key file names in the data directory.
const (
	KeyFile       = "log-key"
	PublicKeyFile = "log-key.pub"
)

// LoadOrCreateKey reads the log's signing key from dir/log-key, creating
// it (mode 0600) with the given name when absent, and (re)writes the
// verifier key to dir/log-key.pub. It returns the signer and the verifier
// key.
func LoadOrCreateKey(dir, name string) (note.Signer, string, error) {
	path := filepath.Join(dir, KeyFile)
	skey, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s, _, gerr := note.GenerateKey(rand.Reader, name)
		if gerr != nil {
			return nil, "", fmt.Errorf("generating log key: %w", gerr)
		}
		f, oerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if oerr != nil {
			return nil, "", fmt.Errorf("creating log key: %w", oerr)
		}
		_, werr := f.WriteString(s + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = syncDir(dir)
		}
		if werr != nil {
			return nil, "", fmt.Errorf("writing log key: %w", werr)
		}
		skey, err = []byte(s), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading log key: %w", err)
	}
	signer, err := note.NewSigner(string(bytes.TrimSpace(skey)))
	if err != nil {
		return nil, "", fmt.Errorf("log key %s: %w", path, err)
	}
	vkey, err := verifierKey(string(bytes.TrimSpace(skey)))
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), []byte(vkey+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("writing log public key: %w", err)
	}
	return signer, vkey, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// verifierKey derives the verifier key of an Ed25519 note signer key.
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("log key: malformed")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("log key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}
