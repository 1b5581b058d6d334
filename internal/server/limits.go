package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/config"
	"github.com/custody-dev/custody/internal/feed/gomod"
	"github.com/custody-dev/custody/internal/feed/maven"
	"github.com/custody-dev/custody/internal/feed/npm"
	"github.com/custody-dev/custody/internal/feed/pypi"
	"github.com/custody-dev/custody/internal/generic"
	"github.com/custody-dev/custody/internal/intake"
	"github.com/custody-dev/custody/internal/metrics"
	"github.com/custody-dev/custody/internal/problem"
	"github.com/custody-dev/custody/internal/registry"
	"github.com/custody-dev/custody/internal/reserve"
)

// refuse answers a request refused in front of the handlers, in its
// endpoint's error format: OCI error JSON on /v2/, problem JSON elsewhere.
func refuse(w http.ResponseWriter, r *http.Request, k problem.Kind, ociCode, msg string) {
	if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
		registry.WriteError(w, r, &registry.Error{Status: k.Status(), Code: ociCode, Message: msg})
		return
	}
	problem.Write(w, k, msg)
}

// bodies bounds request bodies (see intake.Bodies).
func bodies(l config.Limits) intake.Bodies {
	return intake.Bodies{
		Window:   time.Duration(l.BodyWindow),
		MinBytes: l.BodyMinBytes,
		Refuse: func(w http.ResponseWriter, r *http.Request, status int, msg string) {
			refuse(w, r, problem.BodyNotAccepted, "UNSUPPORTED", msg)
		},
	}
}

// listener caps the connections per client address (see intake.Listener).
func (s *Server) listener(ln net.Listener) net.Listener {
	return &intake.Listener{
		Listener: ln,
		Max:      s.cfg.Limits.MaxConnsPerClient,
		Refused: func(a net.Addr) {
			s.metrics.connsRefused.Inc()
			s.log.Debug("connection refused: too many from one address", "remote", a.String(), "max", s.cfg.Limits.MaxConnsPerClient)
		},
	}
}

// addsData reports whether r stores new content: pushes and uploads on
// /v2/, /generic/, /npm/, /pypi/, /go/ and /maven/, bundle imports. Deletes, tag deletion, garbage collection and the
// management API are not, so they go on when the disk is low.
func addsData(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return false
	}
	return strings.HasPrefix(r.URL.Path, "/v2/") || strings.HasPrefix(r.URL.Path, generic.Prefix) ||
		strings.HasPrefix(r.URL.Path, npm.Prefix) || strings.HasPrefix(r.URL.Path, pypi.Prefix) || strings.HasPrefix(r.URL.Path, gomod.Prefix) ||
		strings.HasPrefix(r.URL.Path, maven.Prefix) || r.URL.Path == "/api/v1/imports"
}

// guardDisk refuses requests that add data while the data directory's
// free space is below the reserve (507 Insufficient Storage, which
// clients report rather than retry), and lets every other change run the
// guard's ballast check first so it finds room to record itself.
func guardDisk(disk *reserve.Guard, log *slog.Logger, h http.Handler) http.Handler {
	if disk == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
		case addsData(r):
			err := disk.Check()
			var low *reserve.LowError
			if errors.As(err, &low) {
				log.Warn("upload refused: disk below its reserve", "path", r.URL.Path, "free", low.Free, "reserve", low.Reserve)
				refuse(w, r, problem.InsufficientStorage, registry.CodeDenied, low.Error())
				return
			}
			if err != nil {
				log.Warn("checking free disk space failed", "err", err)
			}
		default:
			if _, err := disk.Free(); err != nil {
				log.Warn("checking free disk space failed", "err", err)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// diskMetrics exposes the data directory's free space and reserve.
func diskMetrics(disk *reserve.Guard, reg *metrics.Registry) {
	reg.MustRegister(metrics.NewGaugeFunc(metrics.Opts{
		Name: "custody_disk_free_bytes",
		Help: "Free space on the data directory's file system.",
	}, func() float64 {
		free, err := disk.Free()
		if err != nil {
			return -1
		}
		return float64(free)
	}), metrics.NewGaugeFunc(metrics.Opts{
		Name: "custody_disk_reserve_bytes",
		Help: "Free space kept for deletes and maintenance; uploads are refused below it.",
	}, func() float64 { return float64(disk.Reserve) }))
}

// diskReady describes free space for /readyz; low space does not make the
// server unready: pulls, deletes and garbage collection still work.
func (s *Server) diskReady() string {
	if s.disk == nil {
		return ""
	}
	free, err := s.disk.Free()
	if err != nil {
		return "disk: free space unknown\n"
	}
	msg := fmt.Sprintf("disk_free_bytes %d\ndisk_reserve_bytes %d\n", free, s.disk.Reserve)
	if s.disk.Reserve > 0 && free < s.disk.Reserve {
		msg += "uploads refused: free space is below the reserve\n"
	}
	return msg
}
