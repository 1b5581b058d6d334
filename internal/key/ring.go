package key

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// PublicFile the PEM public key's. File is empty for a key held by a
	// token (URI).
	File       string `json:"file,omitempty"`
	PublicFile string `json:"publicFile"`
	// URI names a private key held outside the ring, on a PKCS #11 token
	// (an RFC 7512 URI without its pin-value), instead of File.
	URI string `json:"uri,omitempty"`
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

// ErrNotActive is a signature refused because its key is no longer the
// ring's active key: 'custody key rotate' or 'key revoke' ran beside the
// process that unlocked it, and what it signed now would be outside the
// key's validity window.
var ErrNotActive = errors.New("the unlocked signing key is no longer the ring's active key")

// Ring is a key ring directory: for each key, <id>.key (the encrypted
// private key, mode 0600; absent for a key on a PKCS #11 token, which its
// Info's URI names), <id>.pub (the PEM public key) and <id>.json (its
// Info). A ring has at most one active key.
type Ring struct {
	dir string
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// cas are certificate authorities kept outside the ring's directory
	// (the server's own CA), listed in TrustRoot.
	cas []TrustedTSA
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
		// Created is kept to the second: a key rotated out in the second
		// it was made still lists before its successor.
		if (a.Status == Retired) != (b.Status == Retired) {
			if a.Status == Retired {
				return -1
			}
			return 1
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
	info, err := r.add(alg, name, passphrase)
	if err != nil {
		return Info{}, err
	}
	return info, r.archive("key " + info.ID + " is created")
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
	return r.retire(old, created)
}

// retire ends the validity of old when created starts.
func (r *Ring) retire(old, created Info) (Info, Info, error) {
	// The new key starts when the old one ends: no gap, no overlap.
	old.Status = Retired
	old.NotAfter = created.NotBefore
	if err := r.writeInfo(old); err != nil {
		return Info{}, Info{}, fmt.Errorf("retiring key %s (the new key %s is active): %w", old.ID, created.ID, err)
	}
	return created, old, r.archive("key " + created.ID + " replaces " + old.ID)
}

func (r *Ring) add(alg Algorithm, name string, passphrase []byte) (Info, error) {
	priv, err := Generate(alg)
	if err != nil {
		return Info{}, err
	}
	encPriv, err := EncryptPrivateKey(priv, passphrase)
	if err != nil {
		return Info{}, err
	}
	return r.record(priv.Public(), alg, name, encPriv, "")
}

// record writes a new active key: the encrypted private key file (when
// encPriv is not nil), the public key file and the metadata.
func (r *Ring) record(pubKey crypto.PublicKey, alg Algorithm, name string, encPriv []byte, uri string) (Info, error) {
	id, err := ID(pubKey)
	if err != nil {
		return Info{}, err
	}
	pub, err := MarshalPublicKey(pubKey)
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
		PublicFile: id + ".pub",
		URI:        uri,
	}
	if encPriv != nil {
		info.File = id + ".key"
		if err := writeFile(r.Path(info.File), encPriv, 0o600); err != nil {
			return Info{}, err
		}
	}
	if err := writeFile(r.Path(info.PublicFile), pub, 0o600); err != nil {
		return Info{}, err
	}
	if err := r.writeInfo(info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// CreatePKCS11 creates the ring's active key on a PKCS #11 token
// (GeneratePKCS11 with the RFC 7512 uri) and records it: its public key
// file and its metadata, whose URI (uri without its pin-value) stands in
// for the encrypted key file. Like Create, it refuses when the ring
// already has an active key (use RotatePKCS11), before touching the token.
func (r *Ring) CreatePKCS11(uri string, alg Algorithm, name string) (Info, error) {
	if cur, err := r.Active(); err == nil {
		return Info{}, fmt.Errorf("key ring %s already has an active key %s: use 'custody key rotate' to replace it", r.dir, cur.ID)
	} else if !errors.Is(err, ErrNoActiveKey) {
		return Info{}, err
	}
	info, err := r.addPKCS11(uri, alg, name)
	if err != nil {
		return Info{}, err
	}
	return info, r.archive("key " + info.ID + " is created")
}

// RotatePKCS11 is Rotate with the new key created on a PKCS #11 token, as
// CreatePKCS11 does. An empty alg or name keeps the retired key's.
func (r *Ring) RotatePKCS11(uri string, alg Algorithm, name string) (created, retired Info, err error) {
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
	created, err = r.addPKCS11(uri, alg, name)
	if err != nil {
		return Info{}, Info{}, err
	}
	return r.retire(old, created)
}

func (r *Ring) addPKCS11(uri string, alg Algorithm, name string) (Info, error) {
	u, err := ParsePKCS11URI(uri)
	if err != nil {
		return Info{}, err
	}
	s, err := GeneratePKCS11(uri, alg)
	if err != nil {
		return Info{}, err
	}
	ps, ok := s.(tokenSigner)
	if !ok {
		return Info{}, fmt.Errorf("GeneratePKCS11 returned a %T", s)
	}
	defer ps.Close()
	// Record the key by its label and CKA_ID, so the URI keeps naming it.
	if u.ID == nil {
		u.ID = ps.tokenKeyID()
	}
	info, err := r.record(s.Public(), alg, name, nil, u.Redacted())
	if err != nil {
		return Info{}, fmt.Errorf("recording key %s, created on token %q as %s: %w", u.Object, u.Token, u.Redacted(), err)
	}
	return info, nil
}

// Signer decrypts the private key of a key of the ring. A key held by a
// PKCS #11 token (Info.URI) is opened with OpenPKCS11 instead.
func (r *Ring) Signer(info Info, passphrase []byte) (crypto.Signer, error) {
	if info.URI != "" {
		return nil, fmt.Errorf("key %s is held by a PKCS #11 token (%s), not a file: open it with its URI and the token PIN", info.ID, info.URI)
	}
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

// OpenSigner opens the private key of a key of the ring wherever it is
// held: a key file decrypted with secret as its passphrase, or a key on a
// PKCS #11 token (Info.URI) opened with secret as the user PIN (unless the
// recorded URI has a pin-source). The key must be the one info names.
// Close the io.Closer when done signing (for a key file it does nothing).
func (r *Ring) OpenSigner(info Info, secret []byte) (crypto.Signer, io.Closer, error) {
	if info.URI == "" {
		s, err := r.Signer(info, secret)
		if err != nil {
			return nil, nil, err
		}
		return s, io.NopCloser(nil), nil
	}
	u, err := ParsePKCS11URI(info.URI)
	if err != nil {
		return nil, nil, fmt.Errorf("key %s: %w", info.ID, err)
	}
	if u.PINSource == "" {
		u.PINValue = string(secret)
	}
	s, c, err := OpenPKCS11(u.String())
	if err != nil {
		return nil, nil, fmt.Errorf("key %s: %w", info.ID, err)
	}
	if id, err := ID(s.Public()); err != nil || id != info.ID {
		c.Close()
		return nil, nil, fmt.Errorf("the token key %s is not key %s (it is %s): was it replaced on the token?", info.URI, info.ID, id)
	}
	return s, c, nil
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
	return writeFile(r.Path(info.ID+".json"), append(b, '\n'), 0o600)
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
