package admission

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
)

// verdict is the outcome for the images of one request.
type verdict struct {
	// denials lists the denied images, each with every reason, in spec
	// order.
	denials []*denied
	// failure is set when the Decider failed; the request is denied.
	failure  string
	internal bool
	warnings []string
}

type denied struct {
	order   int // index in the checked containers; len(checked) and up for unknown images
	image   Image
	reasons []string
}

type resolution struct {
	d   digest.Digest
	err error
}

// verdict parses, pins and judges the images of checked.
func (h *handler) verdict(ctx context.Context, info Request, checked []container) *verdict {
	v := &verdict{}
	byPath := make(map[string]*denied, len(checked))
	add := func(order int, img Image, reason string) {
		d, ok := byPath[img.Path]
		if !ok {
			d = &denied{order: order, image: img}
			byPath[img.Path] = d
			v.denials = append(v.denials, d)
		}
		d.reasons = append(d.reasons, reason)
	}
	index := make(map[string]int, len(checked))
	resolved := make(map[string]resolution)
	var images []Image

	for i, c := range checked {
		index[c.path] = i
		img, tag, err := parseImage(c)
		if err != nil {
			add(i, img, fmt.Sprintf("invalid image reference: %v", err))
			continue
		}
		if img.Digest != "" {
			images = append(images, img)
			continue
		}
		pinHint := img.Repository + "@sha256:…"
		if h.opts.ResolveTag == nil {
			add(i, img, fmt.Sprintf("referenced by tag only; pin it by digest (%s)", pinHint))
			continue
		}
		res, ok := resolved[tag.Name()]
		if !ok {
			res.d, res.err = h.opts.ResolveTag(ctx, *tag)
			if res.err == nil {
				if err := res.d.Validate(); err != nil {
					res.err = fmt.Errorf("the resolver returned %q, not a digest: %v", res.d, err)
				}
			} else if ctx.Err() != nil && errors.Is(res.err, ctx.Err()) {
				res.err = fmt.Errorf("timed out: %w", res.err)
			}
			resolved[tag.Name()] = res
		}
		if res.err != nil {
			add(i, img, fmt.Sprintf("tag %q could not be resolved to a digest (%v); pin it by digest (%s)", img.Tag, res.err, pinHint))
			continue
		}
		img.Digest, img.Resolved = res.d, true
		images = append(images, img)
		pinned := img.Repository + "@" + string(res.d)
		if h.opts.RequireDigest {
			add(i, img, fmt.Sprintf("referenced by tag only; pin it by digest: %s", pinned))
		} else if len(v.warnings) < maxListed {
			v.warnings = append(v.warnings, fmt.Sprintf("%s %q image %q is a tag; custody checked %s; pin %s", img.Kind, img.Container, img.Reference, res.d, pinned))
		}
	}

	if len(images) == 0 {
		return v
	}
	ds, err := h.decider.Admit(ctx, info.Namespace, images)
	if err != nil {
		v.failure = err.Error()
		v.internal = true
		return v
	}
	for _, d := range ds {
		order, ok := index[d.Image.Path]
		if !ok {
			order = len(checked) + len(v.denials)
		}
		reason := d.Reason
		if reason == "" {
			reason = "denied by policy"
		}
		add(order, d.Image, reason)
	}
	return v
}

// parseImage parses the reference of c. The returned tag is non-nil when
// the reference names a tag and no digest.
func parseImage(c container) (Image, *name.Tag, error) {
	img := Image{Container: c.name, Kind: c.kind, Path: c.path, Reference: c.reference}
	if c.reference == "" {
		return img, nil, errors.New("the image is empty")
	}
	ref, err := name.ParseReference(c.reference)
	if err != nil {
		return img, nil, err
	}
	img.Repository = ref.Context().Name()
	switch r := ref.(type) {
	case name.Digest:
		img.Digest = digest.Digest(r.DigestStr())
		img.Tag = explicitTag(c.reference[:strings.LastIndexByte(c.reference, '@')])
		return img, nil, nil
	case name.Tag:
		img.Tag = r.TagStr()
		return img, &r, nil
	default:
		return img, nil, fmt.Errorf("unexpected reference type %T", ref)
	}
}

// explicitTag returns the tag written in the name part of a reference
// (before any "@digest"), "" when there is none. A colon in the last path
// component separates the tag; one before a "/" is a registry port.
func explicitTag(base string) string {
	last := base[strings.LastIndexByte(base, '/')+1:]
	if i := strings.LastIndexByte(last, ':'); i >= 0 {
		return last[i+1:]
	}
	return ""
}

// message is the status message of a denied request.
func (v *verdict) message(info Request, checked []container) string {
	subject := info.Kind
	switch {
	case info.Name != "" && info.Namespace != "":
		subject += fmt.Sprintf(" %q", info.Namespace+"/"+info.Name)
	case info.Name != "":
		subject += fmt.Sprintf(" %q", info.Name)
	case info.Namespace != "":
		subject += fmt.Sprintf(" in namespace %q", info.Namespace)
	}
	var b strings.Builder
	if v.failure != "" {
		fmt.Fprintf(&b, "custody could not check the images of %s: %s", subject, v.failure)
		if len(v.denials) > 0 {
			b.WriteString("; also denied: ")
		}
	} else {
		fmt.Fprintf(&b, "custody denied %d of %d images of %s: ", len(v.denials), len(checked), subject)
	}
	sortDenials(v.denials)
	for i, d := range v.denials {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(v.denials)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		kind := d.image.Kind
		if kind == "" {
			kind = Container
		}
		fmt.Fprintf(&b, "%s %q image %q: %s", kind, d.image.Container, d.image.Reference, strings.Join(d.reasons, ", and "))
	}
	return b.String()
}

func sortDenials(ds []*denied) {
	slices.SortStableFunc(ds, func(a, b *denied) int { return cmp.Compare(a.order, b.order) })
}
