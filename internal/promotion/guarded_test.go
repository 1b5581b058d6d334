package promotion

import "testing"

// TestGuarded: an environment is protected (promotions to it need a
// recent second factor) with an approval or the protected flag.
func TestGuarded(t *testing.T) {
	s := &Service{Projects: []Project{{Repositories: "apps/**", Environments: []Environment{
		{Name: "dev"}, {Name: "qa", Protected: true}, {Name: "prod", Approvals: 2}, {Name: "one", Approvals: 1}}}}}
	for env, want := range map[string]bool{"dev": false, "qa": true, "prod": true, "one": true, "nope": false} {
		if got := s.Guarded("apps/web", env); got != want {
			t.Errorf("Guarded(%s) = %v, want %v", env, got, want)
		}
	}
	if s.Guarded("other/x", "prod") {
		t.Error("an environment of no project is protected")
	}
}
