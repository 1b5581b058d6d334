// Package platform is the server's own signing: its public keys at a
// stable URL, signatures (and SBOMs) on push for chosen repositories, and
// SLSA provenance written from verified OIDC claims (the platform mode).
package platform

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/custody-dev/custody/internal/attest"
	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/evidence"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/key"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/provenance"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/repopattern"
	"github.com/custody-dev/custody/internal/sbom"
	"github.com/custody-dev/custody/internal/sign"
	"github.com/custody-dev/custody/internal/timestamp"
)

// Handler is the server's own signing: public keys at a stable URL,
// signatures on push for chosen repositories, and SLSA provenance written
// from verified OIDC claims (the platform mode). Its key ring is
// <data>/keys unless signing.keys says otherwise.
type Handler struct {
	ring      *key.Ring
	cfg       config.Signing
	log       *slog.Logger
	audit     audit.Auditor
	remote    []remote.Option
	authz     *auth.Service
	signer    crypto.Signer
	keyID     string
	queue     chan audit.Event
	wg        sync.WaitGroup
	builderID string
	host      string
	// tsa is the ring's time-stamp authority, nil without one: it serves
	// /api/v1/timestamp and time-stamps what the server signs.
	tsa *timestamp.Authority
}

// Options is what the server's signing is built from.
type Options struct {
	// Config is the signing section of the configuration.
	Config config.Signing
	// Keys is the key ring's directory.
	Keys string
	// Projects tells that promotions are configured (they need the key).
	Projects bool
	// Remote reaches the registry to sign in, named Host.
	Remote []remote.Option
	Host   string
	// Authz is nil when authentication is off (platform provenance is
	// then refused).
	Authz *auth.Service
	Audit audit.Auditor
	Log   *slog.Logger
}

// Open opens the key ring; it unlocks the active key when a passphrase is
// configured (CUSTODY_KEY_PASSWORD or signing.passphraseFile), and starts
// signing on push when signing.onPush names repositories.
func Open(o Options) (*Handler, error) {
	dir, cfg, log := o.Keys, o.Config, o.Log
	ring, err := key.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("signing key ring %s: %w", dir, err)
	}
	s := &Handler{ring: ring, cfg: cfg, log: log, audit: o.Audit, authz: o.Authz,
		remote:    o.Remote,
		host:      o.Host,
		builderID: cfg.BuilderID,
	}
	if s.builderID == "" {
		s.builderID = "https://custody.dev/builders/platform/v1"
	}
	pass, havePass := os.LookupEnv("CUSTODY_KEY_PASSWORD")
	if cfg.PassphraseFile != "" {
		b, err := os.ReadFile(cfg.PassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("signing.passphraseFile: %w", err)
		}
		pass, havePass = strings.TrimRight(string(b), "\r\n"), true
	}
	if ring.TSAOnToken() {
		// A TSA key on a PKCS#11 token: its PIN, unless the URI carries one.
		pin, _ := os.LookupEnv("CUSTODY_PKCS11_PIN")
		if s.tsa, err = openTSA(ring, []byte(pin), cfg.Timestamp); err != nil {
			return nil, err
		}
	} else if havePass {
		if s.tsa, err = openTSA(ring, []byte(pass), cfg.Timestamp); err != nil {
			return nil, err
		}
	}
	info, activeErr := ring.Active()
	if activeErr == nil && info.URI != "" {
		// A key on a PKCS#11 token: its PIN, unless the URI carries one.
		pass, havePass = os.LookupEnv("CUSTODY_PKCS11_PIN")
		havePass = havePass || strings.Contains(info.URI, "pin-")
	}
	if activeErr == nil && havePass {
		signer, _, err := ring.OpenSigner(info, []byte(pass))
		if err != nil {
			return nil, fmt.Errorf("unlocking Handler key %s: %w", info.ID, err)
		}
		s.signer, s.keyID = activeSigner{Signer: signer, ring: ring, id: info.ID}, info.ID
	} else if len(cfg.OnPush) > 0 {
		return nil, fmt.Errorf("signing.onPush needs the active key of %s unlocked: create it with 'custody key create' and set CUSTODY_KEY_PASSWORD or signing.passphraseFile", dir)
	} else if o.Projects {
		// Promotions are signed by the server: say at start, not at the
		// first refused promotion, what is missing.
		const refused = "projects are configured, but promotions, rollbacks, revocations and scans will be refused: the server has no unlocked Handler key"
		if activeErr != nil {
			log.Warn(refused+"; stop the server, create its key with 'CUSTODY_KEY_PASSWORD=... custody key create --keys "+dir+"' and start it again with CUSTODY_KEY_PASSWORD set (docs/promotion.md)", "keys", dir)
		} else {
			log.Warn(refused+"; its key "+info.ID+" is locked: start the server with CUSTODY_KEY_PASSWORD (or signing.passphraseFile) set to the key's passphrase (docs/promotion.md)", "keys", dir)
		}
	}
	if len(cfg.OnPush) > 0 {
		s.queue = make(chan audit.Event, 1024)
		s.wg.Add(1)
		go s.signLoop()
	}
	return s, nil
}

// openTSA unlocks the ring's time-stamp authority with the ring's
// passphrase; nil when the ring has none.
func openTSA(ring *key.Ring, pass []byte, cfg config.Timestamping) (*timestamp.Authority, error) {
	signer, chainPEM, err := ring.TSASigner(pass)
	if errors.Is(err, key.ErrNoTSA) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("time-stamp authority of %s: %w", ring.Dir(), err)
	}
	chain, err := timestamp.ParseChain(chainPEM)
	if err != nil {
		return nil, err
	}
	c := timestamp.Config{Signer: signer, Chain: chain, Accuracy: time.Duration(cfg.Accuracy)}
	if cfg.Policy != "" {
		if c.Policy, err = timestamp.ParsePolicy(cfg.Policy); err != nil {
			return nil, fmt.Errorf("signing.timestamp.policy: %w", err)
		}
	}
	return timestamp.New(c)
}

// TSA is the ring's time-stamp authority, or nil.
func (s *Handler) TSA() *timestamp.Authority { return s.tsa }

// options are the sign options of what the server signs: its in-process
// registry client, and its time-stamp authority when it has one.
func (s *Handler) options(ctx context.Context) sign.Options {
	o := sign.Options{Remote: append(slices.Clone(s.remote), remote.WithContext(ctx))}
	if s.tsa != nil {
		o.Timestamper = s.tsa.Stamp
	}
	return o
}

// Timestamper is the time-stamping of what the server signs, or nil.
func (s *Handler) Timestamper() timestamp.Stamper {
	if s.tsa == nil {
		return nil
	}
	return s.tsa.Stamp
}

// Ring is the server's key ring.
func (s *Handler) Ring() *key.Ring { return s.ring }

// activeSigner signs with the key the server unlocked at start only while
// that key is still the ring's active key. 'custody key rotate' (or
// 'key revoke') run beside a running server closes the key's validity
// window, so what it signed afterwards would never verify: such a
// signature is refused with key.ErrNotActive (503 no-key) until the server
// restarts with the new key's passphrase. The check reads the ring's small
// JSON files once per signature.
type activeSigner struct {
	crypto.Signer
	ring *key.Ring
	id   string
}

func (a activeSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	info, err := a.ring.Active()
	if err != nil && !errors.Is(err, key.ErrNoActiveKey) {
		return nil, err
	}
	if err != nil || info.ID != a.id {
		return nil, fmt.Errorf("%w (key %s; restart the server with the active key's passphrase)", key.ErrNotActive, a.id)
	}
	return a.Signer.Sign(rand, digest, opts)
}

// Signer is the unlocked active key, or nil.
func (s *Handler) Signer() crypto.Signer { return s.signer }

// Record implements audit.Auditor: it watches for tags set by clients
// in the repositories signed on push.
func (s *Handler) Record(ctx context.Context, e audit.Event) {
	if s.queue == nil || e.Action != "tag.set" || e.Result != "ok" || sign.IsEvidenceTag(e.Tag) {
		return
	}
	if id, ok := identity.From(ctx); ok && id == identity.Server {
		return
	}
	if !repopattern.MatchAny(s.cfg.OnPush, e.Repo) {
		return
	}
	select {
	case s.queue <- audit.Event{Action: e.Action, Repo: e.Repo, Digest: e.Digest, Tag: e.Tag}:
	default:
		s.log.Error("Handler on push: queue full, artifact left unsigned", "repo", e.Repo, "digest", e.Digest)
	}
}

func (s *Handler) signLoop() {
	defer s.wg.Done()
	for e := range s.queue {
		ctx := identity.With(context.Background(), identity.Server)
		err := s.sign(ctx, e.Repo, e.Digest)
		res, reason := "ok", "signed on push with key "+s.keyID
		if err != nil {
			res, reason = "error", err.Error()
			s.log.Error("Handler on push failed", "repo", e.Repo, "digest", e.Digest, "err", err)
		}
		s.audit.Record(ctx, audit.Event{Action: "sign", Repo: e.Repo, Digest: e.Digest, Result: res, Reason: reason})
		if s.cfg.SBOMOnPush && err == nil {
			res, reason := "ok", "SBOM generated on push"
			if err := s.sbom(ctx, e.Repo, e.Digest); err != nil {
				res, reason = "error", err.Error()
				s.log.Error("SBOM on push failed", "repo", e.Repo, "digest", e.Digest, "err", err)
			}
			s.audit.Record(ctx, audit.Event{Action: "sbom", Repo: e.Repo, Digest: e.Digest, Result: res, Reason: reason})
		}
	}
}

// sbom generates the SBOM of image repo@d (SPDX 2.3), signs it as an
// attestation with the server's key and attaches it.
func (s *Handler) sbom(ctx context.Context, repo string, d digest.Digest) error {
	ref, err := s.ref(repo, d)
	if err != nil {
		return err
	}
	ro := append(s.remote, remote.WithContext(ctx))
	desc, err := remote.Get(ref, ro...)
	if err != nil {
		return err
	}
	if desc.MediaType.IsIndex() {
		return nil // an index: its platform images carry their own
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	inv, err := sbom.FromImage(ctx, img, sbom.Subject{Name: repo}, sbom.Options{})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := inv.Encode(&buf, sbom.FormatSPDXJSON, sbom.EncodeOptions{Created: time.Now().UTC().Truncate(time.Second), ToolName: "custody"}); err != nil {
		return err
	}
	stmt, err := attest.StatementFor(repo, d.String(), attest.PredicateSPDX, buf.Bytes())
	if err != nil {
		return err
	}
	env, err := attest.Sign(ctx, s.signer, "", stmt)
	if err != nil {
		return err
	}
	_, err = sign.Attach(ctx, ref, env, attest.PredicateSPDX, s.options(ctx))
	return err
}

// Close signs what is queued and stops signing on push.
func (s *Handler) Close() {
	if s.queue != nil {
		close(s.queue)
		s.wg.Wait()
	}
}

func (s *Handler) ref(repo string, d digest.Digest) (name.Digest, error) {
	return name.NewDigest(s.host+"/"+repo+"@"+d.String(), name.Insecure)
}

// sign signs repo@d with the server's key, stored both ways.
func (s *Handler) sign(ctx context.Context, repo string, d digest.Digest) error {
	ref, err := s.ref(repo, d)
	if err != nil {
		return err
	}
	o := s.options(ctx)
	o.Annotations = map[string]string{evidence.SignedAtAnnotation: time.Now().UTC().Format(time.RFC3339)}
	_, err = sign.Sign(ctx, ref, s.signer, o)
	return err
}

// Register mounts the key and provenance endpoints.
func (s *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/keys", s.trustRoot)
	mux.HandleFunc("GET /api/v1/keys/{id}", s.publicKey)
	mux.HandleFunc("POST /api/v1/provenance/", s.provenance)
	if s.tsa != nil {
		mux.Handle("POST "+timestamp.Path, s.tsa.Serve(s.log))
		mux.HandleFunc("GET "+timestamp.ChainPath, s.tsa.ServeChain)
	}
}

// trustRoot serves the trust root: every active and retired key with its
// validity, for offline verifiers (custody verify --trust-root).
func (s *Handler) trustRoot(w http.ResponseWriter, r *http.Request) {
	tr, err := s.ring.TrustRoot()
	if err != nil {
		problem.Fail(w, r, s.log, "reading the key ring failed", err)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	problem.JSON(w, http.StatusOK, tr)
}

// publicKey serves one public key as PEM (for cosign verify --key).
func (s *Handler) publicKey(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("id"), ".pub")
	info, err := s.ring.Get(id)
	if err != nil || info.Status == key.Revoked {
		problem.Write(w, problem.NotFound, "no trusted key "+id+" (GET /api/v1/keys lists them)")
		return
	}
	pem, err := s.ring.PublicKeyPEM(info)
	if err != nil {
		problem.Fail(w, r, s.log, "reading the public key failed", err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(pem)
}

// ProvenanceRequest is the optional body of the platform provenance call.
type ProvenanceRequest struct {
	// StartedOn is when the job started, as it reports it.
	StartedOn time.Time `json:"startedOn,omitzero"`
	// Dependencies the job resolved (informational: the job's own word).
	Dependencies []provenance.ResourceDescriptor `json:"dependencies,omitempty"`
}

// provenance handles POST /api/v1/provenance/<repo>/@<digest>: a CI job
// authenticated with its OIDC workload-identity token asks the server to
// write and sign SLSA provenance for an artifact it pushed. Repository,
// ref, commit and workflow come from the verified token, not from the job,
// and the Handler key never leaves the server (SLSA build level 3).
func (s *Handler) provenance(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/provenance/")
	repo, dig, ok := strings.Cut(rest, "/@")
	d, err := digest.Parse(dig)
	if !ok || err != nil || !registry.ValidName(repo) {
		problem.Write(w, problem.InvalidReference, "use POST /api/v1/provenance/<repository>/@<digest>")
		return
	}
	if s.authz == nil {
		problem.Write(w, problem.AuthOff, "platform provenance needs the OIDC identity of the job: turn authentication on")
		return
	}
	r, p, ok := s.authz.Require(w, r, "provenance", repo, auth.PermPush)
	if !ok {
		return
	}
	if p.Claims == nil {
		s.audit.Record(r.Context(), audit.Event{Action: "provenance", Repo: repo, Digest: d, Result: "denied", Reason: "not an OIDC workload identity", Request: r})
		problem.Write(w, problem.Denied, "platform provenance is written from the claims of an OIDC workload-identity token: call with Authorization: Bearer <the job's OIDC token>")
		return
	}
	if s.signer == nil {
		problem.Write(w, problem.NoKey, "the server has no unlocked Handler key (custody key create; CUSTODY_KEY_PASSWORD)")
		return
	}
	var req ProvenanceRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			problem.Write(w, problem.InvalidBody, err.Error())
			return
		}
	}
	var claims provenance.Claims
	b, _ := json.Marshal(p.Claims)
	if err := json.Unmarshal(b, &claims); err != nil {
		problem.Write(w, problem.InvalidClaims, err.Error())
		return
	}
	pred, err := provenance.FromClaims(claims, s.builderID, provenance.ClaimsOptions{StartedOn: req.StartedOn, FinishedOn: time.Now().UTC(), ReportedDependencies: req.Dependencies})
	if err != nil {
		s.audit.Record(r.Context(), audit.Event{Action: "provenance", Repo: repo, Digest: d, Result: "invalid", Reason: err.Error(), Request: r})
		problem.Write(w, problem.InvalidClaims, err.Error())
		return
	}
	body, err := json.Marshal(pred)
	if err != nil {
		problem.Fail(w, r, s.log, "encoding provenance failed", err)
		return
	}
	ctx := identity.With(r.Context(), identity.Server)
	ref, err := s.ref(repo, d)
	if err != nil {
		problem.Write(w, problem.InvalidReference, err.Error())
		return
	}
	stmt, err := attest.StatementFor(repo, d.String(), attest.PredicateSLSAProvenanceV1, body)
	if err == nil {
		var env []byte
		if env, err = attest.Sign(ctx, s.signer, "", stmt); err == nil {
			if _, err = sign.Attach(ctx, ref, env, attest.PredicateSLSAProvenanceV1, s.options(ctx)); err == nil {
				s.audit.Record(r.Context(), audit.Event{Action: "provenance", Repo: repo, Digest: d, Result: "ok",
					Reason: "platform provenance for " + p.Subject + " from " + claims.Repository + claims.ProjectPath + "@" + claims.Ref, Request: r})
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write(env)
				return
			}
		}
	}
	s.audit.Record(r.Context(), audit.Event{Action: "provenance", Repo: repo, Digest: d, Result: "error", Reason: err.Error(), Request: r})
	if strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || strings.Contains(err.Error(), "404") {
		problem.Write(w, problem.ManifestUnknown, "no manifest "+d.String()+" in "+repo)
		return
	}
	problem.Fail(w, r, s.log, "writing the provenance failed", err)
}
