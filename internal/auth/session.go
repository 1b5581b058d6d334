package auth

// Browser sessions (docs/ui.md): a session is an authentication method
// like a password or a token. Its cookie carries a random secret; the
// account store keeps only its SHA-256.

// CSRFHeader carries a session's CSRF token on unsafe requests made by
// script; forms send it as the field "csrf".
const CSRFHeader = "X-CSRF-Token"

// SessionCookieName is the session cookie's name: "__Host-custody_session"
// when served over TLS (the prefix makes browsers insist on Secure, Path=/
// and no Domain), else "custody_session".
func SessionCookieName(tls bool) string {
	if tls {
		return "__Host-custody_session"
	}
	return "custody_session"
}

// SessionInfo describes the session a whoami answer was authenticated by.
type SessionInfo struct {
	// CSRF is the token the session's unsafe requests must carry.
	CSRF string `json:"csrf"`
}

// Capabilities are the global permissions of the caller, as the web
// interface's navigation needs them.
type Capabilities struct {
	Audit bool `json:"audit"`
	Admin bool `json:"admin"`
}
