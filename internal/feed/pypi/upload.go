package pypi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"

	"github.com/custody-dev/custody/internal/feed"
)

// Limits on an upload's form fields: the description may be long, every
// other field is short; the content (the file) is streamed, not held.
const (
	maxDescription = 1 << 20
	maxField       = 64 << 10
	maxFields      = 4 << 20
	maxParts       = 1000
)

// Upload is the checked form of a legacy upload (twine's POST with
// :action=file_upload), up to its content part.
type Upload struct {
	// Name is the project name as sent; Project its normalised form.
	Name, Project string
	Version       string
	// Filetype is sdist or bdist_wheel; Pyversion as sent ("source" for
	// an sdist).
	Filetype, Pyversion string
	// Filename is the content part's file name, checked to be a file of
	// Project at Version (no path, no traversal).
	Filename string
	// SHA256 (required), MD5 and Blake2b256 (optional) are the declared
	// digests of the content, lowercase hex.
	SHA256, MD5, Blake2b256 string
	// RequiresPython is the requires_python field.
	RequiresPython string
	// Metadata is every metadata field of the form (not the action, the
	// digests or the content), as sent; repeated fields keep their order.
	Metadata map[string][]string
}

// Form fields that are not the file's metadata.
var notMetadata = map[string]bool{":action": true, "protocol_version": true, "md5_digest": true,
	"sha256_digest": true, "blake2_256_digest": true, "content": true, "gpg_signature": true, "attestations": true}

// ParseUpload reads the form's parts up to and including the header of
// the part called "content", which it returns unread for the caller to
// stream. The digests must come before the content (twine, flit and
// poetry send the file last), so the file is verified while it is stored.
// Every error says what is wrong, for the client.
func ParseUpload(mr *multipart.Reader) (*Upload, *multipart.Part, error) {
	u := &Upload{Metadata: map[string][]string{}}
	fields := map[string][]string{}
	total := 0
	for n := 0; ; n++ {
		if n >= maxParts {
			return nil, nil, fmt.Errorf("the form has more than %d parts", maxParts)
		}
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("the form has no content part (the file to upload)")
		}
		if err != nil {
			return nil, nil, errors.New("the body is not a readable multipart/form-data form")
		}
		_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil {
			return nil, nil, errors.New("a form part has no readable Content-Disposition")
		}
		name := params["name"]
		if name == "content" {
			if err := u.check(fields, params["filename"]); err != nil {
				return nil, nil, err
			}
			return u, part, nil
		}
		limit := maxField
		if name == "description" {
			limit = maxDescription
		}
		b, err := io.ReadAll(io.LimitReader(part, int64(limit)+1))
		if err != nil {
			return nil, nil, errors.New("the body is not a readable multipart/form-data form")
		}
		if len(b) > limit {
			return nil, nil, fmt.Errorf("the form field %q is longer than %d bytes", name, limit)
		}
		if total += len(b) + len(name); total > maxFields {
			return nil, nil, fmt.Errorf("the form's fields are longer than %d bytes together", maxFields)
		}
		fields[name] = append(fields[name], string(b))
		if !notMetadata[name] && name != "" {
			u.Metadata[name] = append(u.Metadata[name], string(b))
		}
	}
}

// check validates the fields read before the content part and fills u.
func (u *Upload) check(fields map[string][]string, filename string) error {
	one := func(k string) (string, error) {
		v := fields[k]
		if len(v) > 1 {
			return "", fmt.Errorf("the form field %q is given %d times", k, len(v))
		}
		if len(v) == 0 {
			return "", nil
		}
		return v[0], nil
	}
	var err error
	get := func(k string) string {
		v, e := one(k)
		if err == nil {
			err = e
		}
		return v
	}
	action, proto := get(":action"), get("protocol_version")
	u.Name, u.Version, u.Filetype, u.Pyversion = get("name"), get("version"), get("filetype"), get("pyversion")
	u.SHA256, u.MD5, u.Blake2b256 = strings.ToLower(get("sha256_digest")), strings.ToLower(get("md5_digest")), strings.ToLower(get("blake2_256_digest"))
	u.RequiresPython = get("requires_python")
	if err != nil {
		return err
	}
	switch {
	case action != "file_upload":
		return fmt.Errorf("unknown :action %q: only file_upload is supported", action)
	case proto != "" && proto != "1":
		return fmt.Errorf("unknown protocol_version %q: use 1", proto)
	}
	if u.Project, err = ParseName(u.Name); err != nil {
		return err
	}
	if !validVersion(u.Version) {
		return fmt.Errorf("invalid version %q", u.Version)
	}
	if !isHex(u.SHA256, 32) {
		return errors.New("sha256_digest must be given before the content, as 64 hex digits")
	}
	if u.MD5 != "" && !isHex(u.MD5, 16) {
		return errors.New("md5_digest must be 32 hex digits")
	}
	if u.Blake2b256 != "" && !isHex(u.Blake2b256, 32) {
		return errors.New("blake2_256_digest must be 64 hex digits")
	}
	if !feed.ValidFilename(filename) {
		return fmt.Errorf("invalid file name %q: a plain file name, no path", filename)
	}
	if err := checkFilename(filename, u.Filetype, u.Project, u.Version); err != nil {
		return err
	}
	if len(u.RequiresPython) > 256 {
		return errors.New("requires_python is longer than 256 bytes")
	}
	u.Filename = filename
	return nil
}

// isHex reports whether s is n bytes in lowercase hex.
func isHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
