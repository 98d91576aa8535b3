package adminapi

import (
	"errors"
	"strings"
	"testing"
)

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
