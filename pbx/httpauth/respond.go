package httpauth

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is the JSON body of every error answer of both APIs.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The values written here always marshal; a failed write means the
	// client went away, and there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers status with msg in an ErrorBody.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, ErrorBody{Error: msg})
}

// The error codes of a Bearer challenge (RFC 6750, section 3.1).
const (
	ChallengeInvalidToken      = "invalid_token"
	ChallengeInsufficientScope = "insufficient_scope"
)

// Refuse answers a request refused for its credentials: 403 with an
// insufficient_scope challenge when the token is valid but of another
// role, else 401 with a Bearer challenge carrying code (none when code is
// empty: no credentials were sent).
func Refuse(w http.ResponseWriter, code, msg string) {
	challenge := `Bearer realm="callwarden"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	status := http.StatusUnauthorized
	if code == ChallengeInsufficientScope {
		status = http.StatusForbidden
	}
	WriteError(w, status, msg)
}
