package web

import "net/http"

func init() {
	register(func(s *Site) {
		s.page("GET /repositories", s.repositories)
	})
}

// repositories lists the repositories the caller may read.
func (s *Site) repositories(w http.ResponseWriter, r *Request) error {
	return r.Render(w, http.StatusOK, "repositories.html", "Repositories", nil)
}
