package adminapi

import (
	"errors"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/enforce"
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

// FuzzRecordingsQuery feeds arbitrary GET /v1/recordings queries to their
// parser: it must never panic, and what it accepts has a limit within
// bounds, ids that are ids and a cursor the catalogue can page from.
func FuzzRecordingsQuery(f *testing.F) {
	for _, s := range []string{"", "agent=a1&queue=sales&limit=10", "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z",
		"cursor=1764000000000:100000000001", "cursor=x", "limit=0", "limit=1&limit=2", "agent=%00", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseRecordingsQuery(raw)
		if err != nil {
			return
		}
		if q.limit < 1 || q.limit > maxRecordingsLimit {
			t.Errorf("parseRecordingsQuery(%q): limit %d", raw, q.limit)
		}
		for _, id := range []string{q.agent, q.queue} {
			if id != "" && enforce.CheckID(id) != nil {
				t.Errorf("parseRecordingsQuery(%q) accepted id %q", raw, id)
			}
		}
		if q.cursor != "" {
			if _, err := enforce.ParseCatalogueKey(q.cursor); err != nil {
				t.Errorf("parseRecordingsQuery(%q) accepted cursor %q", raw, q.cursor)
			}
		}
	})
}
