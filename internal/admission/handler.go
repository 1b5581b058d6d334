package admission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	kjson "k8s.io/apimachinery/pkg/util/json"
)

// The AdmissionReview version the handler speaks.
const (
	reviewAPIVersion = "admission.k8s.io/v1"
	reviewKind       = "AdmissionReview"
)

// maxListed caps how many denied images the message names one by one.
const maxListed = 20

// NewHandler returns the webhook's http.Handler. It accepts only POST with
// Content-Type application/json and a body of at most
// Options.MaxRequestBytes holding an admission.k8s.io/v1 AdmissionReview,
// and answers 200 with an AdmissionReview response (the request's uid
// echoed; allowed, or denied with status code 403 and a message naming
// every denied image). Malformed requests get 400, oversized ones 413,
// other methods 405 and other media types 415, with a plain-text reason.
//
// CREATE and UPDATE of Pods (including the ephemeralcontainers
// subresource) and of the pod templates of ReplicationControllers,
// Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs are
// checked; DELETE, CONNECT, other subresources and other kinds are
// admitted. On UPDATE, containers whose image reference is unchanged from
// the old object are not re-checked: what already runs keeps running
// (new Pods are checked when they are created), and controllers can still
// update labels, status and finalizers of objects admitted before a
// promotion was withdrawn.
// Dry-run requests are reviewed like any other.
//
// The handler does not authenticate its caller: the review only reveals
// whether images would be admitted. Serve it over HTTPS (the API server
// requires it), see docs/admission.md. NewHandler panics if d is nil.
func NewHandler(d Decider, opts Options) http.Handler {
	if d == nil {
		panic("admission: NewHandler needs a Decider")
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	return &handler{decider: d, opts: opts}
}

type handler struct {
	decider Decider
	opts    Options
}

// badRequest is a request the handler cannot review: answered with HTTP
// 400 (the API server then applies the webhook's failurePolicy).
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "admission webhook: method %s not allowed; the API server POSTs an AdmissionReview", r.Method)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, "admission webhook: Content-Type %q not supported; send application/json", r.Header.Get("Content-Type"))
		return
	}
	if r.ContentLength > h.opts.MaxRequestBytes {
		httpError(w, http.StatusRequestEntityTooLarge, "admission webhook: body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.opts.MaxRequestBytes)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, "admission webhook: body exceeds the limit of %d bytes", h.opts.MaxRequestBytes)
			return
		}
		httpError(w, http.StatusBadRequest, "admission webhook: reading body: %v", err)
		return
	}

	ctx := r.Context()
	// The API server passes its webhook timeout (timeoutSeconds) as
	// ?timeout=10s; finish a little before it so the user sees custody's
	// reason rather than a bare timeout.
	if t, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t-t/10)
		defer cancel()
	}

	resp, err := h.review(ctx, body)
	if err != nil {
		httpError(w, http.StatusBadRequest, "admission webhook: %v", err)
		return
	}
	out, err := kjson.Marshal(review{APIVersion: reviewAPIVersion, Kind: reviewKind, Response: resp})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "admission webhook: encoding response: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, format+"\n", args...)
}

// decodeReview parses body as an admission.k8s.io/v1 AdmissionReview
// request.
func decodeReview(body []byte) (*request, error) {
	var rev review
	if err := kjson.Unmarshal(body, &rev); err != nil {
		return nil, badRequestf("decoding AdmissionReview: %v", err)
	}
	if rev.APIVersion != reviewAPIVersion || rev.Kind != reviewKind {
		return nil, badRequestf("got apiVersion %q kind %q; custody accepts only %s %s (set admissionReviewVersions: [v1] in the webhook configuration)",
			rev.APIVersion, rev.Kind, reviewAPIVersion, reviewKind)
	}
	req := rev.Request
	if req == nil {
		return nil, badRequestf("AdmissionReview has no request")
	}
	if req.UID == "" {
		return nil, badRequestf("AdmissionReview request has no uid")
	}
	return req, nil
}

// review decides one AdmissionReview body. An error means the body could
// not be reviewed (HTTP 400); every other outcome is a response.
func (h *handler) review(ctx context.Context, body []byte) (*response, error) {
	req, err := decodeReview(body)
	if err != nil {
		return nil, err
	}
	allow := &response{UID: req.UID, Allowed: true}

	switch req.Operation {
	case opCreate, opUpdate:
	case opDelete, opConnect:
		return allow, nil
	default:
		return nil, badRequestf("unknown operation %q", req.Operation)
	}
	if req.SubResource != "" && req.SubResource != "ephemeralcontainers" {
		// status, scale, binding, eviction, …: none of them sets images.
		return allow, nil
	}
	kind := gvk{req.Kind.Group, req.Kind.Version, req.Kind.Kind}
	dec, ok := workloads[kind]
	if !ok {
		if workloadKinds[[2]string{kind.group, kind.kind}] {
			return deny(req.UID, http.StatusForbidden, fmt.Sprintf(
				"custody cannot check %s objects: the webhook checks pod specs in v1 only; register its rules with apiVersions [\"v1\"] and matchPolicy Equivalent", kind)), nil
		}
		return allow, nil
	}

	obj, err := decodeObject(dec, kind, req.Object, "object")
	if err != nil {
		return nil, err
	}
	var old map[[2]string]string
	if req.Operation == opUpdate {
		// The old object lists what already runs; if it cannot be read,
		// everything is checked.
		if prev, err := decodeObject(dec, kind, req.OldObject, "oldObject"); err == nil {
			old = make(map[[2]string]string)
			for _, c := range prev.containers() {
				old[[2]string{string(c.kind), c.name}] = c.reference
			}
		}
	}

	info := Request{
		UID:         req.UID,
		Group:       kind.group,
		Version:     kind.version,
		Kind:        kind.kind,
		Namespace:   req.Namespace,
		Name:        req.Name,
		Operation:   req.Operation,
		SubResource: req.SubResource,
		User:        req.UserInfo.Username,
		DryRun:      req.DryRun != nil && *req.DryRun,
	}
	if info.Name == "" {
		info.Name = obj.meta.Name
	}
	if info.Namespace == "" {
		info.Namespace = obj.meta.Namespace
	}
	ctx = withRequest(ctx, info)

	var checked []container
	for _, c := range obj.containers() {
		if ref, ok := old[[2]string{string(c.kind), c.name}]; ok && ref == c.reference {
			continue
		}
		checked = append(checked, c)
	}
	if len(checked) == 0 {
		return allow, nil
	}
	v := h.verdict(ctx, info, checked)
	if len(v.denials) == 0 && v.failure == "" {
		allow.Warnings = v.warnings
		return allow, nil
	}
	resp := deny(req.UID, http.StatusForbidden, v.message(info, checked))
	if v.internal {
		resp.Result.Code = http.StatusInternalServerError
		resp.Result.Reason = reasonInternalError
	}
	resp.Warnings = v.warnings
	return resp, nil
}

// decodeObject decodes the object (or oldObject) of a review, checking that
// it is of the kind the request says.
func decodeObject(dec decoder, kind gvk, raw []byte, field string) (workload, error) {
	if len(raw) == 0 {
		return workload{}, badRequestf("request.%s is missing for %s", field, kind)
	}
	var tm typeMeta
	if err := kjson.Unmarshal(raw, &tm); err != nil {
		return workload{}, badRequestf("decoding request.%s as %s: %v", field, kind, err)
	}
	if (tm.APIVersion != "" && tm.APIVersion != kind.apiVersion()) || (tm.Kind != "" && tm.Kind != kind.kind) {
		return workload{}, badRequestf("request.%s is %s %s but request.kind is %s", field, tm.APIVersion, tm.Kind, kind)
	}
	w, err := dec(raw)
	if err != nil {
		return workload{}, badRequestf("decoding request.%s as %s: %v", field, kind, err)
	}
	return w, nil
}

func deny(uid string, code int32, msg string) *response {
	return &response{
		UID:     uid,
		Allowed: false,
		Result: &status{
			Status:  statusFailure,
			Code:    code,
			Reason:  reasonForbidden,
			Message: msg,
		},
	}
}
