package gitcommit

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"
)

// Namespace is the sshsig namespace git signs commits in.
const Namespace = "git"

// The signature methods.
const (
	MethodSSH     = "ssh"
	MethodOpenPGP = "openpgp"
)

// ErrUnsigned: the commit carries no signature.
var ErrUnsigned = errors.New("the commit is not signed")

// ErrNotAllowed wraps every reason a signature does not verify or its
// signer is not allowed.
var ErrNotAllowed = errors.New("commit signature not verified")

// Signer is who signed a commit, as verified.
type Signer struct {
	// Method is MethodSSH or MethodOpenPGP.
	Method string
	// Principals are the allowed-signers principals of the SSH key, or
	// the email addresses of the OpenPGP key's user IDs.
	Principals []string
	// Fingerprint is the key's fingerprint: "SHA256:<base64>" as
	// ssh-keygen -l prints it, or the OpenPGP fingerprint in upper-case
	// hex as gpg prints it.
	Fingerprint string
}

// Verifier checks commit signatures against what the server trusts.
type Verifier struct {
	// Signers is the SSH allowed-signers list.
	Signers []AllowedSigner
	// Keyring holds the trusted OpenPGP keys.
	Keyring openpgp.EntityList
}

// Verify checks the signature c carries in a repository of format
// against v's signers.
func (v *Verifier) Verify(c *Commit, format string) (Signer, error) {
	sig := strings.TrimSpace(c.SignatureFor(format))
	switch {
	case sig == "":
		return Signer{}, ErrUnsigned
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return v.verifySSH(c, sig)
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return v.verifyOpenPGP(c, sig)
	}
	return Signer{}, fmt.Errorf("%w: unsupported signature kind (SSH and OpenPGP signatures are verified; X.509 is not)", ErrNotAllowed)
}

// sshsig is the SSHSIG blob (PROTOCOL.sshsig).
type sshsig struct {
	Magic         [6]byte
	Version       uint32
	PublicKey     []byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Signature     []byte
}

// signedData is what an SSHSIG signature signs.
type signedData struct {
	Magic         [6]byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Hash          []byte
}

// parseSSHSignature reads an armored SSH signature (-----BEGIN SSH
// SIGNATURE-----): the signing key, the namespace, the hash algorithm
// and the signature.
func parseSSHSignature(armored string) (ssh.PublicKey, *sshsig, *ssh.Signature, error) {
	body := strings.TrimSpace(armored)
	body, ok := strings.CutPrefix(body, "-----BEGIN SSH SIGNATURE-----")
	if !ok {
		return nil, nil, nil, errors.New("not an armored SSH signature")
	}
	body, ok = strings.CutSuffix(strings.TrimSpace(body), "-----END SSH SIGNATURE-----")
	if !ok {
		return nil, nil, nil, errors.New("the SSH signature has no end line")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("SSH signature: %w", err)
	}
	var s sshsig
	if err := ssh.Unmarshal(raw, &s); err != nil {
		return nil, nil, nil, fmt.Errorf("SSH signature: %w", err)
	}
	if string(s.Magic[:]) != "SSHSIG" || s.Version != 1 {
		return nil, nil, nil, errors.New("SSH signature: not an SSHSIG version 1 blob")
	}
	pub, err := ssh.ParsePublicKey(s.PublicKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("SSH signature key: %w", err)
	}
	var sg ssh.Signature
	if err := ssh.Unmarshal(s.Signature, &sg); err != nil {
		return nil, nil, nil, fmt.Errorf("SSH signature: %w", err)
	}
	return pub, &s, &sg, nil
}

func (v *Verifier) verifySSH(c *Commit, armored string) (Signer, error) {
	pub, s, sg, err := parseSSHSignature(armored)
	if err != nil {
		return Signer{}, fmt.Errorf("%w: %v", ErrNotAllowed, err)
	}
	if s.Namespace != Namespace {
		return Signer{}, fmt.Errorf("%w: signed in namespace %q, git signs in %q", ErrNotAllowed, s.Namespace, Namespace)
	}
	var h []byte
	switch s.HashAlgorithm {
	case "sha256":
		d := sha256.Sum256(c.Payload)
		h = d[:]
	case "sha512":
		d := sha512.Sum512(c.Payload)
		h = d[:]
	default:
		return Signer{}, fmt.Errorf("%w: unsupported hash algorithm %q", ErrNotAllowed, s.HashAlgorithm)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return Signer{}, fmt.Errorf("%w: signed with an SSH certificate: custody verifies plain keys only", ErrNotAllowed)
	}
	fp := ssh.FingerprintSHA256(pub)
	data := ssh.Marshal(signedData{Magic: s.Magic, Namespace: s.Namespace, Reserved: s.Reserved, HashAlgorithm: s.HashAlgorithm, Hash: h})
	if err := pub.Verify(data, sg); err != nil {
		return Signer{}, fmt.Errorf("%w: the SSH signature by %s does not match the commit: %v", ErrNotAllowed, fp, err)
	}
	var why []string
	for _, a := range v.Signers {
		if !bytes.Equal(a.Key.Marshal(), pub.Marshal()) {
			continue
		}
		if err := a.allows(Namespace, c.CommitterTime); err != nil {
			why = append(why, err.Error())
			continue
		}
		return Signer{Method: MethodSSH, Principals: a.Principals, Fingerprint: fp}, nil
	}
	if len(why) > 0 {
		return Signer{}, fmt.Errorf("%w: key %s: %s", ErrNotAllowed, fp, strings.Join(why, "; "))
	}
	return Signer{}, fmt.Errorf("%w: key %s is not in the allowed signers", ErrNotAllowed, fp)
}

// ReadKeyring reads OpenPGP public keys, armored or binary.
func ReadKeyring(b []byte) (openpgp.EntityList, error) {
	if bytes.Contains(b, []byte("-----BEGIN PGP")) {
		return openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	}
	return openpgp.ReadKeyRing(bytes.NewReader(b))
}

func (v *Verifier) verifyOpenPGP(c *Commit, armored string) (Signer, error) {
	if len(v.Keyring) == 0 {
		return Signer{}, fmt.Errorf("%w: an OpenPGP signature, and the server trusts no OpenPGP key", ErrNotAllowed)
	}
	// The signature is checked at the committer time, as git does: a key
	// that expired since still verifies what it signed while valid.
	cfg := &packet.Config{Time: func() time.Time { return c.CommitterTime }}
	e, err := openpgp.CheckArmoredDetachedSignature(v.Keyring, bytes.NewReader(c.Payload), strings.NewReader(armored), cfg)
	if err != nil {
		return Signer{}, fmt.Errorf("%w: OpenPGP: %v", ErrNotAllowed, err)
	}
	s := Signer{Method: MethodOpenPGP, Fingerprint: strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))}
	for _, id := range e.Identities {
		if id.UserId != nil && id.UserId.Email != "" {
			s.Principals = append(s.Principals, id.UserId.Email)
		}
	}
	return s, nil
}
