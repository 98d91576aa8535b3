package httpauth_test

import (
	"strings"
	"testing"

	"github.com/callwarden/callwarden/pbx/httpauth"
)

// FuzzBearerToken feeds arbitrary Authorization headers to the bearer
// parser: it must never panic, and a token it returns is non-empty and
// carries no surrounding space.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer  abc ", "Basic abc", "Bearer", "Bearer \t", "Bearer a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := httpauth.BearerToken(header)
		if ok && (tok == "" || strings.TrimSpace(tok) != tok) {
			t.Errorf("BearerToken(%q) = %q", header, tok)
		}
	})
}
