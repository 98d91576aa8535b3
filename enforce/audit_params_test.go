package enforce_test

import (
	"net/url"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// FuzzParseAuditFilter feeds arbitrary query strings to the audit filter
// parser: it must never panic, and what it accepts must be bounded.
func FuzzParseAuditFilter(f *testing.F) {
	for _, s := range []string{"", "user=alice&decision=deny", "since=2026-11-10T09:00:00Z&limit=5", "limit=-1", "quene=x", "user=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := enforce.ParseAuditFilter(q)
		if err != nil {
			return
		}
		if flt.Limit < 1 || flt.Limit > 10000 {
			t.Errorf("limit %d accepted from %q", flt.Limit, raw)
		}
		if flt.Decision != "" && flt.Decision != "allow" && flt.Decision != "deny" {
			t.Errorf("decision %q accepted", flt.Decision)
		}
	})
}
