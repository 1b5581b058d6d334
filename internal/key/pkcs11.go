//go:build cgo

package key

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS #11 v3.0 values github.com/miekg/pkcs11 v1.1.2 does not define.
const (
	ckkECEdwards            = 0x00000040 // CKK_EC_EDWARDS
	ckmECEdwardsKeyPairGen  = 0x00001055 // CKM_EC_EDWARDS_KEY_PAIR_GEN
	ckmEdDSA                = 0x00001057 // CKM_EDDSA
	maxPKCS11Objects        = 2          // enough to tell one match from several
	pkcs11GeneratedIDLength = 16         // bytes of a generated key's CKA_ID
)

// DER encodings of the curve parameters (CKA_EC_PARAMS).
var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// OpenPKCS11 opens the private key an RFC 7512 PKCS #11 URI names (see
// PKCS11URI), for example
//
//	pkcs11:token=custody;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234
//
// and returns a crypto.Signer whose private key never leaves the token,
// with the io.Closer that ends its session (the same value). The key must
// be ECDSA P-256 or Ed25519. The signer signs like the in-memory keys of
// this package: ECDSA returns an ASN.1 signature over the digest it is
// given (SignDigest, VerifyDigest), Ed25519 is pure Ed25519 over the
// message (opts.HashFunc() must be 0). Every signature is checked against
// the public key before it is returned. A wrong PIN gives ErrPKCS11PIN; a
// URI naming no key gives ErrNotFound.
func OpenPKCS11(uri string) (crypto.Signer, io.Closer, error) {
	u, err := ParsePKCS11URI(uri)
	if err != nil {
		return nil, nil, err
	}
	if u.Object == "" && u.ID == nil {
		return nil, nil, fmt.Errorf("%w: name the key with object=LABEL (or id=...)", ErrPKCS11URI)
	}
	if u.Type != "" && u.Type != "private" {
		return nil, nil, fmt.Errorf("%w: type=%s does not name a signing key: use type=private or leave it out", ErrPKCS11URI, u.Type)
	}
	sess, err := openPKCS11Session(u, false)
	if err != nil {
		return nil, nil, err
	}
	s, err := sess.signer(u)
	if err != nil {
		sess.close()
		return nil, nil, err
	}
	return s, s, nil
}

// GeneratePKCS11 creates an ECDSA P-256 or Ed25519 key pair on the token a
// PKCS #11 URI names, labelled with the URI's object attribute (required,
// and not yet used on the token) and with its id attribute as CKA_ID (16
// random bytes when not given). The private key is sensitive and not
// extractable. Ed25519 needs a token with CKM_EC_EDWARDS_KEY_PAIR_GEN
// (SoftHSM2 2.6 has it). The returned signer also implements io.Closer:
// close it to end its session.
func GeneratePKCS11(uri string, alg Algorithm) (crypto.Signer, error) {
	if _, err := ParseAlgorithm(string(alg)); err != nil {
		return nil, err
	}
	u, err := ParsePKCS11URI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" {
		return nil, fmt.Errorf("%w: a new key needs a label: add object=LABEL to the URI", ErrPKCS11URI)
	}
	if u.Type != "" && u.Type != "private" {
		return nil, fmt.Errorf("%w: type=%s: leave type out (or type=private) to create a key pair", ErrPKCS11URI, u.Type)
	}
	sess, err := openPKCS11Session(u, true)
	if err != nil {
		return nil, err
	}
	s, err := sess.generate(u, alg)
	if err != nil {
		sess.close()
		return nil, err
	}
	return s, nil
}

// pkcs11Module is one loaded PKCS #11 library. C_Initialize is process
// wide, so every signer of a library shares one, counted by refs.
type pkcs11Module struct {
	path  string
	ctx   *pkcs11.Ctx
	refs  int
	slots map[uint]*pkcs11Slot
}

// pkcs11Slot is this process's login to a token: the user stays logged in
// while a session is open, so a second login with another PIN is checked
// against the first one's PIN hash.
type pkcs11Slot struct {
	pinHash  [sha256.Size]byte
	sessions int
}

// pkcs11Modules holds the loaded libraries; its mutex also guards every
// session open, login and close.
var pkcs11Modules = struct {
	sync.Mutex
	m map[string]*pkcs11Module
}{m: map[string]*pkcs11Module{}}

// pkcs11Session is one logged-in session on a token.
type pkcs11Session struct {
	mod     *pkcs11Module
	slot    uint
	token   string
	handle  pkcs11.SessionHandle
	closed  bool
	closeMu sync.Mutex
}

func openPKCS11Session(u *PKCS11URI, rw bool) (*pkcs11Session, error) {
	if u.ModulePath == "" {
		return nil, fmt.Errorf("%w: add module-path=/path/to/the/pkcs11/library.so to the URI (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)", ErrPKCS11URI)
	}
	if !filepath.IsAbs(u.ModulePath) {
		return nil, fmt.Errorf("%w: module-path %q must be an absolute path", ErrPKCS11URI, u.ModulePath)
	}
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	if pin == "" {
		return nil, fmt.Errorf("%w: no PIN for the token: add pin-value=PIN or pin-source=file:/path/to/pin to the URI", ErrPKCS11PIN)
	}
	pkcs11Modules.Lock()
	defer pkcs11Modules.Unlock()
	mod, err := acquireModule(u.ModulePath)
	if err != nil {
		return nil, err
	}
	s, err := mod.login(u, pin, rw)
	if err != nil {
		mod.release()
		return nil, err
	}
	return s, nil
}

// acquireModule loads and initializes a library, or counts one more user
// of a loaded one. The caller holds pkcs11Modules.
func acquireModule(path string) (*pkcs11Module, error) {
	canon, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("PKCS #11 module-path %s: %w", path, err)
	}
	if mod, ok := pkcs11Modules.m[canon]; ok {
		mod.refs++
		return mod, nil
	}
	ctx := pkcs11.New(canon)
	if ctx == nil {
		return nil, fmt.Errorf("loading the PKCS #11 module %s failed: module-path must name a PKCS #11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)", path)
	}
	if err := ctx.Initialize(); err != nil && !isPKCS11Error(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("initializing the PKCS #11 module %s: %w", path, err)
	}
	mod := &pkcs11Module{path: canon, ctx: ctx, refs: 1, slots: map[uint]*pkcs11Slot{}}
	pkcs11Modules.m[canon] = mod
	return mod, nil
}

// release drops one user of the library, finalizing and unloading it
// after the last. The caller holds pkcs11Modules.
func (m *pkcs11Module) release() {
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(pkcs11Modules.m, m.path)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}

// findSlot returns the one slot whose token matches the URI.
func (m *pkcs11Module) findSlot(u *PKCS11URI) (uint, string, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, "", fmt.Errorf("listing the slots of %s: %w", m.path, err)
	}
	var (
		matches []uint
		labels  []string
		label   string
	)
	for _, slot := range slots {
		ti, err := m.ctx.GetTokenInfo(slot)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			// SoftHSM2, for one, always offers an empty token to initialize.
			continue
		}
		tl := strings.TrimRight(ti.Label, " \x00")
		labels = append(labels, fmt.Sprintf("%q (slot %d)", tl, slot))
		if (u.SlotID >= 0 && uint(u.SlotID) != slot) ||
			(u.Token != "" && u.Token != tl) ||
			(u.Manufacturer != "" && u.Manufacturer != strings.TrimRight(ti.ManufacturerID, " \x00")) ||
			(u.Serial != "" && u.Serial != strings.TrimRight(ti.SerialNumber, " \x00")) ||
			(u.Model != "" && u.Model != strings.TrimRight(ti.Model, " \x00")) {
			continue
		}
		if u.SlotDescription != "" || u.SlotManufacturer != "" {
			si, err := m.ctx.GetSlotInfo(slot)
			if err != nil ||
				(u.SlotDescription != "" && u.SlotDescription != strings.TrimRight(si.SlotDescription, " \x00")) ||
				(u.SlotManufacturer != "" && u.SlotManufacturer != strings.TrimRight(si.ManufacturerID, " \x00")) {
				continue
			}
		}
		matches = append(matches, slot)
		label = tl
	}
	switch len(matches) {
	case 1:
		return matches[0], label, nil
	case 0:
		if len(labels) == 0 {
			return 0, "", fmt.Errorf("%w: the PKCS #11 module %s has no initialized token (SoftHSM2: softhsm2-util --init-token --free --label NAME)", ErrNotFound, m.path)
		}
		return 0, "", fmt.Errorf("%w: no token matches %s in module %s; its tokens: %s", ErrNotFound, u.Redacted(), m.path, strings.Join(labels, ", "))
	}
	return 0, "", fmt.Errorf("%d tokens match %s: add token=, serial= or slot-id= to choose one (tokens: %s)", len(matches), u.Redacted(), strings.Join(labels, ", "))
}

// login opens a session on the URI's token and logs the user in. The
// caller holds pkcs11Modules.
func (m *pkcs11Module) login(u *PKCS11URI, pin string, rw bool) (*pkcs11Session, error) {
	slot, token, err := m.findSlot(u)
	if err != nil {
		return nil, err
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION)
	if rw {
		flags |= pkcs11.CKF_RW_SESSION
	}
	h, err := m.ctx.OpenSession(slot, flags)
	if err != nil {
		return nil, fmt.Errorf("opening a session on token %q: %w", token, err)
	}
	sum := sha256.Sum256([]byte(pin))
	st := m.slots[slot]
	if st != nil && st.sessions > 0 {
		// Logged in already: PKCS #11 cannot check a PIN again, so compare
		// with the one that logged in.
		if subtle.ConstantTimeCompare(st.pinHash[:], sum[:]) != 1 {
			_ = m.ctx.CloseSession(h)
			return nil, fmt.Errorf("%w for token %q: it differs from the PIN this process is logged in with", ErrPKCS11PIN, token)
		}
	} else if err := m.ctx.Login(h, pkcs11.CKU_USER, pin); err != nil && !isPKCS11Error(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = m.ctx.CloseSession(h)
		switch {
		case isPKCS11Error(err, pkcs11.CKR_PIN_INCORRECT), isPKCS11Error(err, pkcs11.CKR_PIN_LEN_RANGE):
			return nil, fmt.Errorf("%w: token %q refused the PIN (%v)", ErrPKCS11PIN, token, err)
		case isPKCS11Error(err, pkcs11.CKR_PIN_LOCKED):
			return nil, fmt.Errorf("%w: the user PIN of token %q is locked after too many wrong PINs: the security officer must reset it", ErrPKCS11PIN, token)
		}
		return nil, fmt.Errorf("logging in to token %q: %w", token, err)
	}
	if st == nil || st.sessions == 0 {
		st = &pkcs11Slot{pinHash: sum}
		m.slots[slot] = st
	}
	st.sessions++
	return &pkcs11Session{mod: m, slot: slot, token: token, handle: h}, nil
}

// close ends the session (the token logs the user out with the last one)
// and releases the library.
func (s *pkcs11Session) close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	pkcs11Modules.Lock()
	defer pkcs11Modules.Unlock()
	err := s.mod.ctx.CloseSession(s.handle)
	if st := s.mod.slots[s.slot]; st != nil {
		st.sessions--
		if st.sessions <= 0 {
			delete(s.mod.slots, s.slot)
		}
	}
	s.mod.release()
	if err != nil {
		return fmt.Errorf("closing the PKCS #11 session on token %q: %w", s.token, err)
	}
	return nil
}

// findObjects returns up to maxPKCS11Objects objects matching template.
func (s *pkcs11Session) findObjects(template []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	ctx := s.mod.ctx
	if err := ctx.FindObjectsInit(s.handle, template); err != nil {
		return nil, fmt.Errorf("searching token %q: %w", s.token, err)
	}
	objs, _, err := ctx.FindObjects(s.handle, maxPKCS11Objects)
	if ferr := ctx.FindObjectsFinal(s.handle); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("searching token %q: %w", s.token, err)
	}
	return objs, nil
}

func keyTemplate(class uint, label string, id []byte) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if label != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	if id != nil {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	return t
}

func describeKey(label string, id []byte) string {
	switch {
	case label != "" && id != nil:
		return fmt.Sprintf("labelled %q with id %x", label, id)
	case label != "":
		return fmt.Sprintf("labelled %q", label)
	}
	return fmt.Sprintf("with id %x", id)
}

// signer finds the URI's private key and its public key.
func (s *pkcs11Session) signer(u *PKCS11URI) (*pkcs11Signer, error) {
	privs, err := s.findObjects(keyTemplate(pkcs11.CKO_PRIVATE_KEY, u.Object, u.ID))
	if err != nil {
		return nil, err
	}
	switch len(privs) {
	case 0:
		return nil, fmt.Errorf("%w: no private key %s on token %q: create one with 'custody key create --pkcs11 URI', or check object= (list the token's keys with 'pkcs11-tool --module %s --login --list-objects')",
			ErrNotFound, describeKey(u.Object, u.ID), s.token, s.mod.path)
	case 1:
	default:
		return nil, fmt.Errorf("several private keys %s on token %q: add id= to the URI to choose one", describeKey(u.Object, u.ID), s.token)
	}
	priv := privs[0]
	attrs, err := s.mod.ctx.GetAttributeValue(s.handle, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("reading the private key %s on token %q: %w", describeKey(u.Object, u.ID), s.token, err)
	}
	keyType, ok := ulongValue(attrs[0].Value)
	if !ok {
		return nil, fmt.Errorf("private key %s on token %q: unreadable CKA_KEY_TYPE", describeKey(u.Object, u.ID), s.token)
	}
	id, label := attrs[1].Value, string(attrs[2].Value)
	// The public key shares the private key's CKA_ID (or, without one, its
	// label): the PKCS #11 convention every tool follows.
	var pubTemplate []*pkcs11.Attribute
	if len(id) > 0 {
		pubTemplate = keyTemplate(pkcs11.CKO_PUBLIC_KEY, "", id)
	} else {
		pubTemplate = keyTemplate(pkcs11.CKO_PUBLIC_KEY, label, nil)
	}
	pubs, err := s.findObjects(pubTemplate)
	if err != nil {
		return nil, err
	}
	if len(pubs) != 1 {
		return nil, fmt.Errorf("token %q has %d public keys for the private key %s, want exactly one with the same CKA_ID: custody reads the public key from the token",
			s.token, len(pubs), describeKey(label, id))
	}
	pattrs, err := s.mod.ctx.GetAttributeValue(s.handle, pubs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("reading the public key %s on token %q (custody supports ECDSA P-256 and Ed25519 keys): %w", describeKey(label, id), s.token, err)
	}
	pub, alg, err := parsePKCS11PublicKey(keyType, pattrs[0].Value, pattrs[1].Value)
	if err != nil {
		return nil, fmt.Errorf("key %s on token %q: %w", describeKey(label, id), s.token, err)
	}
	return &pkcs11Signer{sess: s, priv: priv, pub: pub, alg: alg, id: bytes.Clone(id)}, nil
}

// generate creates a key pair and returns its signer.
func (s *pkcs11Session) generate(u *PKCS11URI, alg Algorithm) (*pkcs11Signer, error) {
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		objs, err := s.findObjects(keyTemplate(class, u.Object, nil))
		if err != nil {
			return nil, err
		}
		if len(objs) > 0 {
			return nil, fmt.Errorf("%w: token %q already has a key labelled %q: choose another object= label", ErrKeyExists, s.token, u.Object)
		}
	}
	var (
		genMech, signMech, keyType uint
		params                     asn1.ObjectIdentifier
	)
	switch alg {
	case ECDSAP256:
		genMech, signMech, keyType, params = pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKM_ECDSA, pkcs11.CKK_EC, oidP256
	case Ed25519:
		genMech, signMech, keyType, params = ckmECEdwardsKeyPairGen, ckmEdDSA, ckkECEdwards, oidEd25519
	}
	mechs, err := s.mod.ctx.GetMechanismList(s.slot)
	if err != nil {
		return nil, fmt.Errorf("listing the mechanisms of token %q: %w", s.token, err)
	}
	has := func(m uint) bool {
		return slices.ContainsFunc(mechs, func(x *pkcs11.Mechanism) bool { return x.Mechanism == m })
	}
	if !has(genMech) || !has(signMech) {
		hint := ""
		if alg == Ed25519 {
			hint = ": use --algorithm " + string(ECDSAP256)
		}
		return nil, fmt.Errorf("token %q cannot create and sign with %s keys (mechanisms 0x%x and 0x%x)%s", s.token, alg, genMech, signMech, hint)
	}
	id := u.ID
	if id == nil {
		id = make([]byte, pkcs11GeneratedIDLength)
		if _, err := rand.Read(id); err != nil {
			return nil, err
		}
	}
	der, err := asn1.Marshal(params)
	if err != nil {
		return nil, err
	}
	pubTemplate := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, der),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	privTemplate := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	if _, _, err := s.mod.ctx.GenerateKeyPair(s.handle, []*pkcs11.Mechanism{pkcs11.NewMechanism(genMech, nil)}, pubTemplate, privTemplate); err != nil {
		return nil, fmt.Errorf("creating a %s key on token %q: %w", alg, s.token, err)
	}
	return s.signer(&PKCS11URI{Object: u.Object, ID: id})
}

// parsePKCS11PublicKey decodes CKA_EC_PARAMS and CKA_EC_POINT.
func parsePKCS11PublicKey(keyType uint, params, point []byte) (crypto.PublicKey, Algorithm, error) {
	switch keyType {
	case pkcs11.CKK_EC:
		var oid asn1.ObjectIdentifier
		if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) > 0 || !oid.Equal(oidP256) {
			return nil, "", errors.New("unsupported EC curve: only P-256 (and Ed25519) keys are supported")
		}
		// CKA_EC_POINT is a DER OCTET STRING holding the uncompressed
		// point; some tokens give the bare point.
		raw := point
		if len(point) != 65 {
			if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 {
				return nil, "", errors.New("unreadable CKA_EC_POINT")
			}
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, "", fmt.Errorf("CKA_EC_POINT: %w", err)
		}
		return pub, ECDSAP256, nil
	case ckkECEdwards:
		var oid asn1.ObjectIdentifier
		var curveName string
		if rest, err := asn1.Unmarshal(params, &oid); err == nil && len(rest) == 0 {
			if !oid.Equal(oidEd25519) {
				return nil, "", fmt.Errorf("unsupported Edwards curve %v: only Ed25519 is supported", oid)
			}
		} else if rest, err := asn1.Unmarshal(params, &curveName); err != nil || len(rest) > 0 || curveName != "edwards25519" {
			return nil, "", errors.New("unsupported Edwards curve: only Ed25519 is supported")
		}
		raw := point
		if len(point) != ed25519.PublicKeySize {
			if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 || len(raw) != ed25519.PublicKeySize {
				return nil, "", errors.New("unreadable CKA_EC_POINT")
			}
		}
		return ed25519.PublicKey(bytes.Clone(raw)), Ed25519, nil
	}
	return nil, "", fmt.Errorf("unsupported key type 0x%x: custody signs with ECDSA P-256 or Ed25519 keys", keyType)
}

// ulongValue decodes a CK_ULONG attribute (native byte order).
func ulongValue(b []byte) (uint, bool) {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}

func isPKCS11Error(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// pkcs11Signer is a crypto.Signer and io.Closer over a key on a token.
type pkcs11Signer struct {
	sess *pkcs11Session
	priv pkcs11.ObjectHandle
	pub  crypto.PublicKey
	alg  Algorithm
	// id is the key's CKA_ID.
	id []byte
	// mu serializes operations: a PKCS #11 session runs one at a time.
	mu sync.Mutex
}

// Public returns the public key read from the token.
func (s *pkcs11Signer) Public() crypto.PublicKey { return s.pub }

// tokenKeyID returns the key's CKA_ID.
func (s *pkcs11Signer) tokenKeyID() []byte { return s.id }

// Close ends the signer's session. Closing twice is harmless.
func (s *pkcs11Signer) Close() error { return s.sess.close() }

// Sign signs on the token; rand is not used (the token has its own). For
// ECDSA, digest is a hash of opts.HashFunc() and the result is ASN.1; for
// Ed25519, digest is the whole message and opts.HashFunc() must be 0.
func (s *pkcs11Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech uint
	switch s.alg {
	case ECDSAP256:
		h := opts.HashFunc()
		if h == 0 || !h.Available() || len(digest) != h.Size() {
			return nil, fmt.Errorf("ECDSA on a PKCS #11 token signs a digest: got %d bytes for hash %v", len(digest), h)
		}
		mech = pkcs11.CKM_ECDSA
	case Ed25519:
		if opts.HashFunc() != 0 {
			return nil, errors.New("the PKCS #11 Ed25519 signer makes pure Ed25519 signatures: pass crypto.Hash(0) and the message, not Ed25519ph")
		}
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return nil, errors.New("the PKCS #11 Ed25519 signer does not support Ed25519ctx contexts")
		}
		mech = ckmEdDSA
	}
	s.mu.Lock()
	sig, err := s.sign(mech, digest)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	switch s.alg {
	case ECDSAP256:
		if len(sig) != 64 {
			return nil, fmt.Errorf("token %q returned a %d-byte ECDSA signature, want 64 (r||s)", s.sess.token, len(sig))
		}
		der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
		if err != nil {
			return nil, err
		}
		if !ecdsa.VerifyASN1(s.pub.(*ecdsa.PublicKey), digest, der) {
			return nil, fmt.Errorf("token %q returned an ECDSA signature that does not verify with its public key", s.sess.token)
		}
		return der, nil
	default:
		if !ed25519.Verify(s.pub.(ed25519.PublicKey), digest, sig) {
			return nil, fmt.Errorf("token %q returned an Ed25519 signature that does not verify with its public key", s.sess.token)
		}
		return sig, nil
	}
}

func (s *pkcs11Signer) sign(mech uint, data []byte) ([]byte, error) {
	s.sess.closeMu.Lock()
	defer s.sess.closeMu.Unlock()
	if s.sess.closed {
		return nil, errors.New("PKCS #11 signer used after Close")
	}
	ctx := s.sess.mod.ctx
	if err := ctx.SignInit(s.sess.handle, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, s.priv); err != nil {
		return nil, fmt.Errorf("signing on token %q: %w", s.sess.token, err)
	}
	sig, err := ctx.Sign(s.sess.handle, data)
	if err != nil {
		return nil, fmt.Errorf("signing on token %q: %w", s.sess.token, err)
	}
	return sig, nil
}

// OpenSigner opens a service key (the CA's, the transparency log's): a
// pkcs11: URI of a key on a PKCS #11 token, or else the path of a key file
// encrypted with passphrase (EncryptPrivateKey). Close the closer when done.
func OpenSigner(ref string, passphrase []byte) (crypto.Signer, io.Closer, error) {
	if IsPKCS11URI(ref) {
		return OpenPKCS11(ref)
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, nil, err
	}
	s, err := DecryptPrivateKey(b, passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	return s, io.NopCloser(nil), nil
}
