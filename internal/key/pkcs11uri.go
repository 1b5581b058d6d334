package key

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Limits on PKCS #11 URIs and the files they name.
const (
	// MaxPKCS11URIBytes caps the length of a PKCS #11 URI.
	MaxPKCS11URIBytes = 4096
	// maxPINFileBytes caps a pin-source file.
	maxPINFileBytes = 1024
)

// PKCS11URI is a parsed RFC 7512 PKCS #11 URI naming a key on a token, for
// example
//
//	pkcs11:token=custody;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234
//
// The path attributes select the token (token, manufacturer, serial, model,
// slot-id, slot-description, slot-manufacturer) and the key on it (object,
// the CKA_LABEL; id, the CKA_ID; type, which must be "private" when given).
// The query attributes say how to reach it: module-path (the PKCS #11
// library to load; required) and the PIN, from pin-value or pin-source
// (file:PATH, a file holding the PIN). Vendor attributes (x-...) are
// ignored; any other attribute is refused.
type PKCS11URI struct {
	Token            string
	Manufacturer     string
	Serial           string
	Model            string
	SlotDescription  string
	SlotManufacturer string
	// SlotID is the slot number, or -1 when not given.
	SlotID int64
	// Object is the key's label (CKA_LABEL).
	Object string
	// ID is the key's CKA_ID, nil when not given.
	ID []byte
	// Type is the object type; only "private" (or empty) names a signing key.
	Type string

	// ModulePath is the PKCS #11 library (module-path).
	ModulePath string
	// PINValue is the user PIN given in the URI (pin-value).
	PINValue string
	// PINSource is where to read the PIN from (pin-source, file:PATH).
	PINSource string
}

// ErrPKCS11URI reports a malformed or unsupported PKCS #11 URI.
var ErrPKCS11URI = errors.New("invalid PKCS #11 URI")

// ErrPKCS11PIN reports a PIN the token refused (or a PIN other than the one
// this process is already logged in to the token with).
var ErrPKCS11PIN = errors.New("wrong PKCS #11 PIN")

// ErrKeyExists reports a key label already used on a token.
var ErrKeyExists = errors.New("key already exists")

// ErrPKCS11Unavailable reports a custody binary built without cgo, which
// PKCS #11 needs (the module is a C library).
var ErrPKCS11Unavailable = errors.New("PKCS #11 is not available in this build")

// tokenSigner is a signer on a PKCS #11 token.
type tokenSigner interface {
	crypto.Signer
	io.Closer
	// tokenKeyID returns the key's CKA_ID.
	tokenKeyID() []byte
}

// IsPKCS11URI reports whether s is a PKCS #11 URI (starts with "pkcs11:").
func IsPKCS11URI(s string) bool {
	return len(s) >= 7 && strings.EqualFold(s[:7], "pkcs11:")
}

// ParsePKCS11URI parses an RFC 7512 PKCS #11 URI. Attribute values are
// percent-decoded; an attribute given twice is refused.
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	if len(s) > MaxPKCS11URIBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrPKCS11URI, len(s), MaxPKCS11URIBytes)
	}
	if !IsPKCS11URI(s) {
		return nil, fmt.Errorf("%w: it must start with \"pkcs11:\" (RFC 7512), e.g. pkcs11:token=custody;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so", ErrPKCS11URI)
	}
	rest := s[7:]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, fmt.Errorf("%w: a fragment (#...) is not allowed", ErrPKCS11URI)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &PKCS11URI{SlotID: -1}
	seen := map[string]bool{}
	for attr := range strings.SplitSeq(path, ";") {
		if attr == "" {
			continue
		}
		name, val, err := splitAttr(attr)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: path attribute %q given twice", ErrPKCS11URI, name)
		}
		seen[name] = true
		switch name {
		case "token":
			u.Token = val
		case "manufacturer":
			u.Manufacturer = val
		case "serial":
			u.Serial = val
		case "model":
			u.Model = val
		case "slot-description":
			u.SlotDescription = val
		case "slot-manufacturer":
			u.SlotManufacturer = val
		case "slot-id":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%w: slot-id %q is not a slot number", ErrPKCS11URI, val)
			}
			u.SlotID = int64(n)
		case "object":
			u.Object = val
		case "id":
			u.ID = []byte(val)
		case "type":
			switch val {
			case "private", "public", "cert", "secret-key", "data":
			default:
				return nil, fmt.Errorf("%w: type %q is not one of private, public, cert, secret-key, data", ErrPKCS11URI, val)
			}
			u.Type = val
		case "library-manufacturer", "library-description", "library-version":
			// Describe the module; module-path already names it.
		default:
			if !strings.HasPrefix(name, "x-") {
				return nil, fmt.Errorf("%w: unknown path attribute %q", ErrPKCS11URI, name)
			}
		}
	}
	seen = map[string]bool{}
	if query != "" {
		for attr := range strings.SplitSeq(query, "&") {
			if attr == "" {
				continue
			}
			name, val, err := splitAttr(attr)
			if err != nil {
				return nil, err
			}
			if seen[name] {
				return nil, fmt.Errorf("%w: query attribute %q given twice", ErrPKCS11URI, name)
			}
			seen[name] = true
			switch name {
			case "module-path":
				u.ModulePath = val
			case "module-name":
				return nil, fmt.Errorf("%w: module-name is not supported: name the library with module-path=/path/to/module.so", ErrPKCS11URI)
			case "pin-value":
				u.PINValue = val
			case "pin-source":
				u.PINSource = val
			default:
				if !strings.HasPrefix(name, "x-") {
					return nil, fmt.Errorf("%w: unknown query attribute %q", ErrPKCS11URI, name)
				}
			}
		}
	}
	if u.PINValue != "" && u.PINSource != "" {
		return nil, fmt.Errorf("%w: give pin-value or pin-source, not both", ErrPKCS11URI)
	}
	return u, nil
}

func splitAttr(attr string) (name, val string, err error) {
	rawName, rawVal, ok := strings.Cut(attr, "=")
	if !ok || rawName == "" {
		return "", "", fmt.Errorf("%w: attribute %q is not name=value", ErrPKCS11URI, attr)
	}
	name = strings.ToLower(rawName)
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", "", fmt.Errorf("%w: attribute name %q has a character other than a-z, 0-9 and -", ErrPKCS11URI, rawName)
		}
	}
	// PathUnescape: RFC 7512 gives '+' no special meaning.
	val, err = url.PathUnescape(rawVal)
	if err != nil {
		return "", "", fmt.Errorf("%w: attribute %s: %v", ErrPKCS11URI, name, err)
	}
	return name, val, nil
}

// PIN returns the user PIN the URI gives: pin-value, or the contents of
// the pin-source file (without a trailing newline). It returns "" when the
// URI gives neither.
func (u *PKCS11URI) PIN() (string, error) {
	if u.PINValue != "" || u.PINSource == "" {
		return u.PINValue, nil
	}
	path, ok := strings.CutPrefix(u.PINSource, "file:")
	if !ok {
		return "", fmt.Errorf("%w: pin-source %q: only file:PATH is supported", ErrPKCS11URI, u.PINSource)
	}
	// file:///abs/path and file:/abs/path both name /abs/path.
	if strings.HasPrefix(path, "//") {
		path = strings.TrimPrefix(path, "//")
		if !strings.HasPrefix(path, "/") {
			return "", fmt.Errorf("%w: pin-source %q: a file URI with a host is not supported", ErrPKCS11URI, u.PINSource)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the PKCS #11 PIN from pin-source: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPINFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the PKCS #11 PIN from pin-source: %w", err)
	}
	if len(b) > maxPINFileBytes {
		return "", fmt.Errorf("pin-source %s is over %d bytes: it must hold only the PIN", path, maxPINFileBytes)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// String encodes the URI, PIN included (pin-value). Use Redacted for
// anything shown or stored.
func (u *PKCS11URI) String() string { return u.encode(true) }

// Redacted encodes the URI without pin-value: what custody prints, and
// what the key ring records. A pin-source is kept.
func (u *PKCS11URI) Redacted() string { return u.encode(false) }

func (u *PKCS11URI) encode(withPIN bool) string {
	var path, query []string
	add := func(list *[]string, name, val string) {
		if val != "" {
			*list = append(*list, name+"="+escapePKCS11(val, list == &query))
		}
	}
	add(&path, "token", u.Token)
	add(&path, "manufacturer", u.Manufacturer)
	add(&path, "serial", u.Serial)
	add(&path, "model", u.Model)
	add(&path, "slot-description", u.SlotDescription)
	add(&path, "slot-manufacturer", u.SlotManufacturer)
	if u.SlotID >= 0 {
		add(&path, "slot-id", strconv.FormatInt(u.SlotID, 10))
	}
	add(&path, "object", u.Object)
	if u.ID != nil {
		// Every byte encoded, as RFC 7512 recommends for id.
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		path = append(path, "id="+b.String())
	}
	add(&path, "type", u.Type)
	add(&query, "module-path", u.ModulePath)
	if withPIN {
		add(&query, "pin-value", u.PINValue)
	}
	add(&query, "pin-source", u.PINSource)
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escapePKCS11 percent-encodes everything but RFC 3986 unreserved
// characters and the few RFC 7512 allows unencoded in values (':', '@',
// ...; '/' and '|' in the query only), so the result parses back to the
// same value.
func escapePKCS11(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == ':', c == '[', c == ']', c == '@', c == '!', c == '$', c == '\'', c == '(', c == ')', c == '*', c == ',':
			b.WriteByte(c)
		case query && (c == '/' || c == '|'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
