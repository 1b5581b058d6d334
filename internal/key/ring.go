package key

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Status is the life-cycle state of a key in a ring.
type Status string

// The key states. An active key signs; a retired key no longer signs but
// still verifies what it signed inside its validity window; a revoked key
// is trusted for nothing.
const (
	Active  Status = "active"
	Retired Status = "retired"
	Revoked Status = "revoked"
)

// Info is the metadata of one key, stored as <id>.json in the ring.
type Info struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Algorithm Algorithm `json:"algorithm"`
	Created   time.Time `json:"created"`
	NotBefore time.Time `json:"notBefore"`
	// NotAfter is zero while the key is active (open-ended validity).
	NotAfter time.Time `json:"notAfter,omitzero"`
	Status   Status    `json:"status"`
	// File is the encrypted private key's file name in the ring directory;
	// PublicFile the PEM public key's.
	File       string `json:"file"`
	PublicFile string `json:"publicFile"`
}

// ValidAt reports whether the key was trusted to sign at t.
func (i Info) ValidAt(t time.Time) bool {
	if i.Status == Revoked || t.Before(i.NotBefore) {
		return false
	}
	return i.NotAfter.IsZero() || !t.After(i.NotAfter)
}

// ErrNotFound reports a key ID (or prefix) that names no key of the ring.
var ErrNotFound = errors.New("no such key")

// ErrNoActiveKey reports a ring with no active key.
var ErrNoActiveKey = errors.New("no active key")

// Ring is a key ring directory: for each key, <id>.key (the encrypted
// private key, mode 0600), <id>.pub (the PEM public key) and <id>.json
// (its Info). A ring has at most one active key.
type Ring struct {
	dir string
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Open opens the key ring in dir, creating the directory (mode 0700) if
// needed.
func Open(dir string) (*Ring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	return &Ring{dir: dir, Now: time.Now}, nil
}

// Dir returns the ring's directory.
func (r *Ring) Dir() string { return r.dir }

// Path returns the path of a file of the ring.
func (r *Ring) Path(name string) string { return filepath.Join(r.dir, name) }

// List returns every key of the ring, oldest first.
func (r *Ring) List() ([]Info, error) {
	matches, err := filepath.Glob(filepath.Join(r.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	keys := make([]Info, 0, len(matches))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var i Info
		if err := json.Unmarshal(b, &i); err != nil {
			return nil, fmt.Errorf("key metadata %s: %w", m, err)
		}
		keys = append(keys, i)
	}
	slices.SortFunc(keys, func(a, b Info) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys, nil
}

// Get returns the key whose ID is, or starts with, id (at least 8 hex
// digits of it).
func (r *Ring) Get(id string) (Info, error) {
	keys, err := r.List()
	if err != nil {
		return Info{}, err
	}
	var found []Info
	for _, k := range keys {
		if k.ID == id || (len(id) >= 8 && strings.HasPrefix(k.ID, id)) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return Info{}, fmt.Errorf("%w %q in %s (list them with 'custody key list')", ErrNotFound, id, r.dir)
	case 1:
		return found[0], nil
	}
	return Info{}, fmt.Errorf("key ID prefix %q is ambiguous: give more digits", id)
}

// Active returns the active key (the newest, should an interrupted rotation
// have left two).
func (r *Ring) Active() (Info, error) {
	keys, err := r.List()
	if err != nil {
		return Info{}, err
	}
	for _, k := range slices.Backward(keys) {
		if k.Status == Active {
			return k, nil
		}
	}
	return Info{}, fmt.Errorf("%w in %s (create one with 'custody key create')", ErrNoActiveKey, r.dir)
}

// Create generates a new active key encrypted with passphrase. It refuses
// when the ring already has an active key: use Rotate.
func (r *Ring) Create(alg Algorithm, name string, passphrase []byte) (Info, error) {
	if cur, err := r.Active(); err == nil {
		return Info{}, fmt.Errorf("key ring %s already has an active key %s: use 'custody key rotate' to replace it", r.dir, cur.ID)
	} else if !errors.Is(err, ErrNoActiveKey) {
		return Info{}, err
	}
	return r.add(alg, name, passphrase)
}

// Rotate creates a new active key and retires the active one (its
// validity ends now). An empty alg or name keeps the retired key's. It
// returns the new key and the retired one.
func (r *Ring) Rotate(alg Algorithm, name string, passphrase []byte) (created, retired Info, err error) {
	old, err := r.Active()
	if err != nil {
		return Info{}, Info{}, err
	}
	if alg == "" {
		alg = old.Algorithm
	}
	if name == "" {
		name = old.Name
	}
	created, err = r.add(alg, name, passphrase)
	if err != nil {
		return Info{}, Info{}, err
	}
	// The new key starts when the old one ends: no gap, no overlap.
	old.Status = Retired
	old.NotAfter = created.NotBefore
	if err := r.writeInfo(old); err != nil {
		return Info{}, Info{}, fmt.Errorf("retiring key %s (the new key %s is active): %w", old.ID, created.ID, err)
	}
	return created, old, nil
}

func (r *Ring) add(alg Algorithm, name string, passphrase []byte) (Info, error) {
	priv, err := Generate(alg)
	if err != nil {
		return Info{}, err
	}
	id, err := ID(priv.Public())
	if err != nil {
		return Info{}, err
	}
	encPriv, err := EncryptPrivateKey(priv, passphrase)
	if err != nil {
		return Info{}, err
	}
	pub, err := MarshalPublicKey(priv.Public())
	if err != nil {
		return Info{}, err
	}
	now := r.Now().UTC().Truncate(time.Second)
	info := Info{
		ID:         id,
		Name:       name,
		Algorithm:  alg,
		Created:    now,
		NotBefore:  now,
		Status:     Active,
		File:       id + ".key",
		PublicFile: id + ".pub",
	}
	if err := writeFile(r.Path(info.File), encPriv, 0o600); err != nil {
		return Info{}, err
	}
	if err := writeFile(r.Path(info.PublicFile), pub, 0o644); err != nil {
		return Info{}, err
	}
	if err := r.writeInfo(info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// Signer decrypts the private key of a key of the ring.
func (r *Ring) Signer(info Info, passphrase []byte) (crypto.Signer, error) {
	b, err := os.ReadFile(r.Path(info.File))
	if err != nil {
		return nil, err
	}
	s, err := DecryptPrivateKey(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", info.ID, err)
	}
	if id, err := ID(s.Public()); err != nil || id != info.ID {
		return nil, fmt.Errorf("key file %s does not hold key %s", info.File, info.ID)
	}
	return s, nil
}

// PublicKeyPEM returns the PEM public key of a key of the ring.
func (r *Ring) PublicKeyPEM(info Info) ([]byte, error) {
	b, err := os.ReadFile(r.Path(info.PublicFile))
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", info.PublicFile, err)
	}
	if id, err := ID(pub); err != nil || id != info.ID {
		return nil, fmt.Errorf("public key file %s does not hold key %s", info.PublicFile, info.ID)
	}
	return b, nil
}

func (r *Ring) writeInfo(info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(r.Path(info.ID+".json"), append(b, '\n'), 0o644)
}

// writeFile writes a file atomically and durably: a temporary file in the
// same directory, fsynced, renamed over name, then the directory fsynced.
func writeFile(name string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
