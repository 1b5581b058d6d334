package promotionhttp

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/admission"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/builds"
	"github.com/custody-dev/custody/internal/promotion"
	"github.com/custody-dev/custody/internal/registry"
)

type envKey struct{}

// admissionHandler serves the Kubernetes validating admission webhook at
// /admission/<environment> (docs/admission.md): a Pod is admitted only
// when every image is an artifact of this registry, by digest (or a tag
// resolving to one), promoted to the environment and not revoked.
// registries are the host names clients use for this registry; when set,
// an image of any other host is refused.
func (p *Handler) admissionHandler(registries []string) http.Handler {
	h := admission.NewHandler(admission.DeciderFunc(func(ctx context.Context, _ string, images []admission.Image) ([]admission.Denial, error) {
		env, _ := ctx.Value(envKey{}).(string)
		var out []admission.Denial
		for _, img := range images {
			reason := p.admit(ctx, env, registries, img)
			if reason != "" {
				out = append(out, admission.Denial{Image: img, Reason: reason})
			}
			p.recordAdmission(ctx, env, registries, img, reason)
		}
		return out, nil
	}), admission.Options{ResolveTag: p.resolveTag(registries)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), envKey{}, r.PathValue("env"))))
	})
}

// localRepo maps a fully qualified image repository to a repository of
// this registry, or "" when the image comes from elsewhere.
//
// With no registries configured any host is accepted: the digest names the
// content, so an image whose repository and digest this registry has
// promoted is that artifact wherever it is pulled from.
func localRepo(registries []string, repository string) string {
	host, path, ok := strings.Cut(repository, "/")
	if !ok || (len(registries) > 0 && !slices.Contains(registries, host)) {
		return ""
	}
	return path
}

func (p *Handler) admit(ctx context.Context, env string, registries []string, img admission.Image) string {
	repo := localRepo(registries, img.Repository)
	if repo == "" {
		return fmt.Sprintf("not an artifact of this registry (%s): only promoted artifacts may run", strings.Join(registries, ", "))
	}
	if _, _, err := p.svc.Lookup(repo, env); err != nil {
		return err.Error()
	}
	hist, err := p.index.TagHistory(ctx, repo, env)
	if err != nil {
		return "reading the promotion history failed: " + err.Error()
	}
	if !slices.ContainsFunc(hist, func(e builds.TagEvent) bool { return e.Digest == img.Digest }) {
		return fmt.Sprintf("%s was never promoted to %s (custody promote %s@%s --to %s)", img.Digest, env, repo, img.Digest, env)
	}
	f, err := p.svc.Gather(ctx, repo, img.Digest.String())
	if err != nil {
		return "reading the artifact failed: " + err.Error()
	}
	if f.Revoked != nil {
		return fmt.Sprintf("revoked by %s: %s", f.Revoked.By, f.Revoked.Reason)
	}
	return ""
}

// resolveTag resolves tags of this registry to digests.
func (p *Handler) resolveTag(registries []string) admission.TagResolver {
	return func(ctx context.Context, ref name.Tag) (digest.Digest, error) {
		repo := localRepo(registries, ref.Context().Name())
		if repo == "" {
			return "", fmt.Errorf("not an artifact of this registry")
		}
		t, err := name.NewTag(p.svc.Host+"/"+repo+":"+ref.TagStr(), name.Insecure)
		if err != nil {
			return "", err
		}
		desc, err := remote.Head(t, append(p.svc.Remote, remote.WithContext(ctx))...)
		if err != nil {
			return "", err
		}
		return digest.Digest(desc.Digest.String()), nil
	}
}

// recordAdmission records one image's admission decision in the audit
// log, when the image is an artifact of this registry: the decision
// belongs to the digest's history.
func (p *Handler) recordAdmission(ctx context.Context, env string, registries []string, img admission.Image, reason string) {
	repo := localRepo(registries, img.Repository)
	if repo == "" || !registry.ValidName(repo) || img.Digest.Validate() != nil {
		return
	}
	ev := audit.Event{Action: promotion.ActionAdmission, Repo: repo, Digest: img.Digest, Tag: env, Result: "ok", Reason: "admitted to " + env}
	if reason != "" {
		ev.Result, ev.Reason = "denied", reason
	}
	p.audit.Record(ctx, ev)
}
