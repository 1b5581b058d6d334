package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/account"
	"github.com/custody-dev/custody/internal/meta/metatest"
	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/policy"
	"github.com/custody-dev/custody/internal/tlog"
)

// replicas opens n stores on one new database file, as n processes
// sharing the file would, each closed when t ends.
func replicas(t *testing.T, n int) []*sqlite.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	out := make([]*sqlite.Store, n)
	for i := range out {
		s := open(t, path)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		out[i] = s
	}
	return out
}

// as adapts replicas to a suite's store type.
func as[S any](t *testing.T, n int, conv func(*sqlite.Store) S) []S {
	t.Helper()
	var out []S
	for _, s := range replicas(t, n) {
		out = append(out, conv(s))
	}
	return out
}

func TestRetentionConformance(t *testing.T) {
	metatest.RunRetention(t, func(t *testing.T, n int) []metatest.RetentionStore {
		return as(t, n, func(s *sqlite.Store) metatest.RetentionStore { return s })
	})
}

func TestPolicyConformance(t *testing.T) {
	metatest.RunPolicy(t, func(t *testing.T, n int) []policy.Store {
		return as(t, n, func(s *sqlite.Store) policy.Store { return s })
	})
}

func TestBuildsConformance(t *testing.T) {
	metatest.RunBuilds(t, func(t *testing.T, n int) []metatest.BuildsStore {
		return as(t, n, func(s *sqlite.Store) metatest.BuildsStore { return s })
	})
}

func TestGCConformance(t *testing.T) {
	metatest.RunGC(t, func(t *testing.T, n int) []metatest.GCStore {
		return as(t, n, func(s *sqlite.Store) metatest.GCStore { return s })
	})
}

func TestScrubConformance(t *testing.T) {
	// The server scrubs through ScrubView, `custody scrub` through
	// OpenReadOnly.
	t.Run("ScrubView", func(t *testing.T) {
		metatest.RunScrub(t, func(t *testing.T, n int) []metatest.ScrubStores {
			return as(t, n, func(s *sqlite.Store) metatest.ScrubStores {
				return metatest.ScrubStores{Meta: s, Scrub: s.ScrubView()}
			})
		})
	})
	t.Run("OpenReadOnly", func(t *testing.T) {
		metatest.RunScrub(t, func(t *testing.T, n int) []metatest.ScrubStores {
			path := filepath.Join(t.TempDir(), "meta.db")
			var out []metatest.ScrubStores
			for range n {
				s := open(t, path)
				t.Cleanup(func() { s.Close() })
				ro, err := sqlite.OpenReadOnly(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ro.Close() })
				out = append(out, metatest.ScrubStores{Meta: s, Scrub: ro})
			}
			return out
		})
	})
}

func TestTlogConformance(t *testing.T) {
	metatest.RunTlog(t, func(t *testing.T, n int) []tlog.Store {
		return as(t, n, func(s *sqlite.Store) tlog.Store { return s })
	})
}

// A change's write appends its audit entries in its own transaction.
func TestChangeLogConformance(t *testing.T) {
	metatest.RunChangeLog(t, func(t *testing.T, n int) []metatest.ChangeLogStore {
		return as(t, n, func(s *sqlite.Store) metatest.ChangeLogStore { return s })
	})
}

// The signing events' log is the same tlog.Store on other tables.
func TestSigningLogConformance(t *testing.T) {
	metatest.RunTlog(t, func(t *testing.T, n int) []tlog.Store {
		return as(t, n, func(s *sqlite.Store) tlog.Store { return s.SigningLog() })
	})
}

func TestAccountsConformance(t *testing.T) {
	metatest.RunAccounts(t, func(t *testing.T, n int) []account.Store {
		return as(t, n, func(s *sqlite.Store) account.Store { return s })
	})
}
