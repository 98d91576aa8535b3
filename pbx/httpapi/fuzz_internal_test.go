package httpapi

import (
	"errors"
	"strings"
	"testing"
)

// FuzzBearerToken feeds arbitrary Authorization headers to the bearer
// parser: it must never panic, and a token it returns is non-empty and
// carries no surrounding space.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer  abc ", "Basic abc", "Bearer", "Bearer \t", "Bearer a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := bearerToken(header)
		if ok && (tok == "" || strings.TrimSpace(tok) != tok) {
			t.Errorf("bearerToken(%q) = %q", header, tok)
		}
	})
}

// FuzzDecodeProtected feeds arbitrary PUT /v1/protected bodies to its
// decoder: it must never panic, every refusal is a *ValidationError (422),
// and what it accepts has no empty id.
func FuzzDecodeProtected(f *testing.F) {
	for _, s := range []string{`{"users":["ceo"],"queues":["hr"]}`, `{}`, `{"users":[""]}`, `{"users":1}`, `{"x":[]}`, `{"users":[]} x`, `[`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		p, err := decodeProtected([]byte(body))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("decodeProtected(%q): %T %v, want a *ValidationError", body, err, err)
			}
			return
		}
		for _, id := range append(p.Users, p.Queues...) {
			if strings.TrimSpace(id) == "" {
				t.Errorf("decodeProtected(%q) accepted an empty id", body)
			}
		}
	})
}
