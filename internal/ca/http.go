package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/custody-dev/custody/internal/audit"
	"github.com/custody-dev/custody/internal/auth"
	"github.com/custody-dev/custody/internal/identity"
	"github.com/custody-dev/custody/internal/problem"
)

// Verifier judges OIDC tokens: internal/auth's Service.
type Verifier interface {
	WorkloadIdentity(ctx context.Context, raw string) (*auth.Principal, error)
}

// Handler serves Fulcio's HTTP API, so cosign can use custody as its
// certificate authority:
//
//	POST /api/v2/signingCert   certificate for a key (JSON in, JSON out)
//	POST /api/v1/signingCert   the legacy form cosign v2 sends (PEM out)
//	GET  /api/v2/trustBundle   the CA chain (JSON)
//	GET  /api/v1/rootCert      the CA chain (PEM)
//
// Every issuance and every refusal is audited (action ca.issue).
type Handler struct {
	CA     *CA
	Tokens Verifier
	Audit  audit.Auditor
	Log    *slog.Logger
}

// Register mounts the endpoints.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v2/signingCert", func(w http.ResponseWriter, r *http.Request) { h.signingCert(w, r, ParseRequestV2, h.writeV2) })
	mux.HandleFunc("POST /api/v1/signingCert", func(w http.ResponseWriter, r *http.Request) { h.signingCert(w, r, ParseRequestV1, h.writeV1) })
	mux.HandleFunc("GET /api/v2/trustBundle", h.trustBundle)
	mux.HandleFunc("GET /api/v1/rootCert", h.rootCert)
}

// issueAction is the audit action of issuances and refusals.
const issueAction = "ca.issue"

// refusal is a 4xx answer: nothing was issued.
type refusal struct {
	kind   problem.Kind
	result string // audit result: "invalid" or "denied"
	reason string
}

func (h *Handler) signingCert(w http.ResponseWriter, r *http.Request, parse func([]byte, string) (*Request, error), write func(http.ResponseWriter, []*x509.Certificate)) {
	chain, ctx, ref := h.issue(w, r, parse)
	if ref != nil {
		h.Audit.Record(ctx, audit.Event{Action: issueAction, Result: ref.result, Reason: ref.reason, Request: r.WithContext(ctx)})
		problem.Write(w, ref.kind, ref.reason)
		return
	}
	if chain == nil {
		return // failed, answered and audited
	}
	leaf := chain[0]
	san := leaf.URIs
	name := ""
	if len(leaf.EmailAddresses) > 0 {
		name = leaf.EmailAddresses[0]
	} else if len(san) > 0 {
		name = san[0].String()
	}
	// The certificate's SHA-256 in the tamper-evident audit log is what
	// keeps the promise of its SCT (internal/ctlog): it is on record.
	h.Audit.Record(ctx, audit.Event{Action: issueAction, Result: "ok", Request: r.WithContext(ctx),
		Reason: fmt.Sprintf("certificate %x (sha256 %x) for %s, valid until %s", leaf.SerialNumber, sha256.Sum256(leaf.Raw), name, leaf.NotAfter.UTC().Format(time.RFC3339))})
	write(w, chain)
}

// issue parses, authenticates and checks the request and issues the
// certificate; a refusal is returned for the caller to audit and answer.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, parse func([]byte, string) (*Request, error)) (chain []*x509.Certificate, ctx context.Context, ref *refusal) {
	ctx = r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, ctx, &refusal{problem.BodyTooLarge, "invalid", fmt.Sprintf("certificate request larger than %d bytes", MaxRequestBytes)}
		}
		return nil, ctx, &refusal{problem.Invalid, "invalid", "reading the certificate request: " + err.Error()}
	}
	req, err := parse(body, bearerToken(r.Header.Get("Authorization")))
	if err != nil {
		return nil, ctx, &refusal{problem.Invalid, "invalid", err.Error()}
	}
	p, err := h.Tokens.WorkloadIdentity(ctx, req.Token)
	if err != nil {
		if _, refused := problem.From(err); !refused {
			h.Audit.Record(ctx, audit.Event{Action: issueAction, Result: "error", Reason: err.Error(), Request: r})
			problem.Fail(w, r, h.Log, "verifying an OIDC token", err)
			return nil, ctx, nil
		}
		return nil, ctx, &refusal{problem.Unauthorized, "denied", err.Error()}
	}
	ctx = identity.With(ctx, identity.Identity{Subject: p.Subject, Method: p.Method})
	id, err := IdentityOf(p.Claims)
	if err != nil {
		return nil, ctx, &refusal{problem.Denied, "denied", err.Error()}
	}
	pub, err := req.Verify(id.Subject)
	if err != nil {
		return nil, ctx, &refusal{problem.Invalid, "invalid", err.Error()}
	}
	chain, err = h.CA.Issue(id, pub)
	if err != nil {
		h.Audit.Record(ctx, audit.Event{Action: issueAction, Result: "error", Reason: err.Error(), Request: r.WithContext(ctx)})
		problem.Fail(w, r, h.Log, "issuing a certificate", err)
		return nil, ctx, nil
	}
	return chain, ctx, nil
}

// writeV2 answers Fulcio's v2 way: 200 (what its gRPC gateway answers
// and sigstore-go's client, cosign v3's, requires) with the chain in
// signedCertificateEmbeddedSct (the SCT, with a CT log, is inside the
// certificate).
func (h *Handler) writeV2(w http.ResponseWriter, chain []*x509.Certificate) {
	problem.JSON(w, http.StatusOK, map[string]any{
		"signedCertificateEmbeddedSct": map[string]any{"chain": pemChain(chain)},
	})
}

// writeV1 answers Fulcio's legacy way: the PEM chain, certificate first.
func (h *Handler) writeV1(w http.ResponseWriter, chain []*x509.Certificate) {
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(EncodeChain(chain))
}

// chainJSON is Fulcio's CertificateChain message.
type chainJSON struct {
	Certificates []string `json:"certificates"`
}

func pemChain(chain []*x509.Certificate) chainJSON {
	out := chainJSON{Certificates: []string{}}
	for _, c := range chain {
		out.Certificates = append(out.Certificates, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	return out
}

func (h *Handler) trustBundle(w http.ResponseWriter, _ *http.Request) {
	problem.JSON(w, http.StatusOK, map[string]any{"chains": []chainJSON{pemChain(h.CA.Chain())}})
}

func (h *Handler) rootCert(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	_, _ = w.Write(EncodeChain(h.CA.Chain()))
}
