package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// independentVerify checks a bundle the way an auditor's own verifier
// written from docs/bundle.md alone would: it uses no custody package,
// only the standard library and golang.org/x/mod/sumdb/note, which the
// document names. It checks the file rules, the fingerprint, the
// signature, every file's hash, the checkpoint and every inclusion proof
// (RFC 9162, written out here), the index annotations, and that each
// audit entry is about a manifest of index.json in its repository. It
// returns the first thing that does not hold, so that the test fails when
// docs/bundle.md stops describing what custody writes.
func independentVerify(file, fingerprint string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	type ent struct {
		name string
		body []byte
	}
	var es []ent
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case h.Typeflag != tar.TypeReg:
			return fmt.Errorf("%s: type %q, the document allows regular files only", h.Name, h.Typeflag)
		case h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)):
			return fmt.Errorf("%s: mode %o, uid %d, gid %d, %q/%q, %s: not as the document says", h.Name, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		case path.Clean(h.Name) != h.Name || strings.HasPrefix(h.Name, "/") || strings.Contains(h.Name, "..") || strings.Contains(h.Name, `\`):
			return fmt.Errorf("%s: not a clean relative name", h.Name)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		es = append(es, ent{h.Name, body})
	}
	rest, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if bytes.ContainsFunc(rest, func(r rune) bool { return r != 0 }) {
		return errors.New("data after the tar's end")
	}
	fixed := []string{"custody/manifest.json", "custody/manifest.sig", "oci-layout", "index.json", "custody/trust.json", "custody/audit.json", "custody/summary.json", "custody/summary.md"}
	if len(es) < len(fixed) {
		return fmt.Errorf("%d entries", len(es))
	}
	files := map[string][]byte{}
	for i, e := range es {
		if i < len(fixed) && e.name != fixed[i] {
			return fmt.Errorf("entry %d is %s, the document says %s", i+1, e.name, fixed[i])
		}
		if files[e.name] != nil {
			return fmt.Errorf("%s twice", e.name)
		}
		files[e.name] = e.body
	}
	// Trust root, then the signature of manifest.json.
	trustJSON := files["custody/trust.json"]
	if s := sha256.Sum256(trustJSON); hex.EncodeToString(s[:]) != fingerprint {
		return errors.New("trust.json does not have the fingerprint")
	}
	var trust struct {
		TrustRoot struct {
			Keys []struct {
				KeyID     string `json:"keyId"`
				PublicKey string `json:"publicKey"`
				ValidFor  struct {
					Start time.Time `json:"start"`
				} `json:"validFor"`
			} `json:"keys"`
		} `json:"trustRoot"`
		Recorders []string `json:"recorders"`
		Log       struct{ Origin, Key string }
	}
	if err := json.Unmarshal(trustJSON, &trust); err != nil {
		return fmt.Errorf("trust.json: %w", err)
	}
	v, err := note.NewVerifier(trust.Log.Key)
	if err != nil {
		return fmt.Errorf("trust.json log.key: %w", err)
	}
	if v.Name() != trust.Log.Origin {
		return fmt.Errorf("the log key's name %q is not the origin %q", v.Name(), trust.Log.Origin)
	}
	n, err := note.Open(files["custody/manifest.sig"], note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("manifest.sig: %w", err)
	}
	ms := sha256.Sum256(files["custody/manifest.json"])
	if n.Text != "custody-bundle/v1\nsha256:"+hex.EncodeToString(ms[:])+"\n" {
		return fmt.Errorf("manifest.sig text %q", n.Text)
	}
	// manifest.json: every other file in tar order, hashes and sizes.
	var m struct {
		Format  string
		Request map[string]any
		Log     struct {
			Origin string
			Size   uint64
			Root   string
		}
		Files []struct {
			Path    string
			Size    int64
			SHA256  string
			Omitted bool
		}
	}
	if err := json.Unmarshal(files["custody/manifest.json"], &m); err != nil {
		return err
	}
	if m.Format != "https://custody.dev/bundle/v1" || m.Log.Origin != trust.Log.Origin {
		return fmt.Errorf("manifest.json format %q, origin %q", m.Format, m.Log.Origin)
	}
	i := 2
	prevBlob := ""
	omitted := map[string]bool{}
	for j, mf := range m.Files {
		if j < 6 && mf.Path != fixed[j+2] {
			return fmt.Errorf("manifest.json file %d is %s", j, mf.Path)
		}
		if j >= 6 {
			if !strings.HasPrefix(mf.Path, "blobs/sha256/") && !strings.HasPrefix(mf.Path, "blobs/sha512/") || mf.Path <= prevBlob {
				return fmt.Errorf("manifest.json: blob %s out of order or misnamed", mf.Path)
			}
			prevBlob = mf.Path
			if hx, ok := strings.CutPrefix(mf.Path, "blobs/sha256/"); ok && hx != mf.SHA256 {
				return fmt.Errorf("%s: sha256 %s is not its name", mf.Path, mf.SHA256)
			}
		}
		if mf.Omitted {
			if j < 6 || m.Request["metadataOnly"] != true {
				return fmt.Errorf("%s omitted", mf.Path)
			}
			omitted[mf.Path] = true
			continue
		}
		if i >= len(es) || es[i].name != mf.Path {
			return fmt.Errorf("manifest.json lists %s where the tar has another entry", mf.Path)
		}
		s := sha256.Sum256(es[i].body)
		if int64(len(es[i].body)) != mf.Size || hex.EncodeToString(s[:]) != mf.SHA256 {
			return fmt.Errorf("%s: size or hash differs from manifest.json", mf.Path)
		}
		if hx, ok := strings.CutPrefix(mf.Path, "blobs/sha512/"); ok {
			if s := sha512.Sum512(es[i].body); hex.EncodeToString(s[:]) != hx {
				return fmt.Errorf("%s does not hash to its name", mf.Path)
			}
		}
		i++
	}
	if i != len(es) {
		return fmt.Errorf("the tar has %d entries manifest.json does not list", len(es)-i)
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		return fmt.Errorf("oci-layout is %q", files["oci-layout"])
	}
	// index.json: annotations as documented, each manifest present.
	var idx struct {
		Manifests []struct {
			MediaType   string
			Digest      string
			Size        int64
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		return err
	}
	held := map[string]bool{}
	for _, d := range idx.Manifests {
		a := d.Annotations
		repo := a["dev.custody.repository"]
		if a["org.opencontainers.image.ref.name"] != strings.ReplaceAll(repo, "/", "+")+"@"+d.Digest {
			return fmt.Errorf("%s: layout name %q", d.Digest, a["org.opencontainers.image.ref.name"])
		}
		switch a["dev.custody.role"] {
		case "artifact":
		case "signature", "attestation", "referrer":
			if a["dev.custody.subject"] == "" {
				return fmt.Errorf("%s: %s without dev.custody.subject", d.Digest, a["dev.custody.role"])
			}
		default:
			return fmt.Errorf("%s: role %q", d.Digest, a["dev.custody.role"])
		}
		alg, hx, _ := strings.Cut(d.Digest, ":")
		body := files["blobs/"+alg+"/"+hx]
		if int64(len(body)) != d.Size || d.Size == 0 {
			return fmt.Errorf("%s: not in the layout with its size", d.Digest)
		}
		held[repo+"@"+d.Digest] = true
		var mm struct {
			Manifests []struct{ Digest string }
		}
		if json.Unmarshal(body, &mm) == nil {
			for _, c := range mm.Manifests {
				held[repo+"@"+c.Digest] = true
			}
		}
	}
	// audit.json: the checkpoint manifest.json names, each inclusion proof.
	var au struct {
		Checkpoint string
		Entries    []struct {
			Index     uint64
			Entry     string
			Inclusion [][]byte
		}
		Latest      string
		Consistency [][]byte
	}
	if err := json.Unmarshal(files["custody/audit.json"], &au); err != nil {
		return err
	}
	cn, err := note.Open([]byte(au.Checkpoint), note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	lines := strings.SplitN(cn.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != m.Log.Origin {
		return fmt.Errorf("checkpoint text %q", cn.Text)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	root, err2 := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || err2 != nil || size != m.Log.Size || hex.EncodeToString(root) != m.Log.Root {
		return fmt.Errorf("checkpoint (%s, %s) is not manifest.json's log (%d, %s)", lines[1], lines[2], m.Log.Size, m.Log.Root)
	}
	if len(au.Consistency) == 0 && au.Latest != au.Checkpoint {
		return errors.New("no consistency proof, yet latest is another checkpoint")
	}
	node := func(l, r []byte) []byte {
		s := sha256.Sum256(append(append([]byte{1}, l...), r...))
		return s[:]
	}
	prev := int64(-1)
	for _, e := range au.Entries {
		if int64(e.Index) <= prev {
			return errors.New("entries not ordered by index")
		}
		prev = int64(e.Index)
		leaf := sha256.Sum256(append([]byte{0}, e.Entry...))
		// RFC 9162, 2.1.3.2.
		fn, sn, r := e.Index, size-1, leaf[:]
		if e.Index >= size {
			return fmt.Errorf("entry %d beyond the checkpoint", e.Index)
		}
		for _, p := range e.Inclusion {
			if sn == 0 {
				return fmt.Errorf("entry %d: proof too long", e.Index)
			}
			if fn&1 == 1 || fn == sn {
				r = node(p, r)
				for fn&1 == 0 && fn != 0 {
					fn, sn = fn>>1, sn>>1
				}
			} else {
				r = node(r, p)
			}
			fn, sn = fn>>1, sn>>1
		}
		if sn != 0 || !bytes.Equal(r, root) {
			return fmt.Errorf("entry %d: inclusion proof does not lead to the checkpoint's root", e.Index)
		}
		var en struct{ Repo, Digest string }
		if err := json.Unmarshal([]byte(e.Entry), &en); err != nil {
			return err
		}
		if !held[en.Repo+"@"+en.Digest] {
			return fmt.Errorf("entry %d is about %s@%s, not a manifest of index.json", e.Index, en.Repo, en.Digest)
		}
	}
	return nil
}
