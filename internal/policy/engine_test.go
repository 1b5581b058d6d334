package policy_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/meta/sqlite"
	"github.com/custody-dev/custody/internal/policy"
)

// TestConfiguredRetentionCannotBeSwitchedOff restarts an engine on the
// same store with a config file that drops or removes a retention it had
// enabled: the first is refused, the second leaves the retention in force.
func TestConfiguredRetentionCannotBeSwitchedOff(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keep := &policy.DefaultRetention{Mode: "compliance", Period: policy.Duration(2 * 365 * 24 * time.Hour)}
	withRetention := map[string]policy.Policy{"evidence/**": {Retention: keep}}

	e, err := policy.NewEngine(ctx, st, withRetention, st)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.DefaultRetention("evidence/case1"); r == nil || r.Mode != "compliance" {
		t.Fatalf("retention = %+v", r)
	}
	// Same config again: no new version.
	if _, err := policy.NewEngine(ctx, st, withRetention, st); err != nil {
		t.Fatal(err)
	}
	if rec, err := st.GetPolicy(ctx, "evidence/**", 0); err != nil || rec.Version != 1 {
		t.Fatalf("stored version = %d, %v; want 1", rec.Version, err)
	}

	// The file keeps the pattern but drops its retention: refused.
	_, err = policy.NewEngine(ctx, st, map[string]policy.Policy{"evidence/**": {}}, st)
	if !errors.Is(err, policy.ErrConflict) || !strings.Contains(err.Error(), "cannot be switched off") {
		t.Fatalf("dropping retention in the config = %v, want a conflict", err)
	}

	// The file forgets the pattern: the stored retention stays in force.
	e, err = policy.NewEngine(ctx, st, nil, st)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.DefaultRetention("evidence/case1"); r == nil || r.Mode != "compliance" {
		t.Fatalf("retention after removing the pattern from the config = %+v", r)
	}
}
