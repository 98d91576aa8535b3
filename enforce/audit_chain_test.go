package enforce_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// chain returns the entries of recs chained from the genesis, ids 1-0,
// 2-0, ...
func chain(tb testing.TB, recs ...enforce.AuditRecord) []enforce.AuditEntry {
	tb.Helper()
	var (
		out  []enforce.AuditEntry
		prev = enforce.AuditGenesis
	)
	for i, r := range recs {
		raw, err := enforce.CanonicalAudit(r)
		if err != nil {
			tb.Fatal(err)
		}
		h := enforce.AuditChainHash(prev, raw)
		out = append(out, enforce.AuditEntry{ID: fmt.Sprintf("%d-0", i+1), Prev: prev, Hash: h, Raw: raw})
		prev = h
	}
	return out
}

func TestVerifyReportsAGapRecordAsNotIntact(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	decision := enforce.AuditRecord{Time: at, Source: "http", User: "alice", Action: "monitor.listen", Decision: "allow", Reason: "granted"}
	gap := enforce.AuditRecord{Time: at, Source: "audit", Action: enforce.AuditGapAction, Decision: "gap", Reason: "records_lost",
		Detail: "record 7-0 is no longer in the trail"}

	t.Run("a trail without gap records is intact", func(t *testing.T) {
		if res := enforce.VerifyEntries(chain(t, decision, decision)); !res.OK() || len(res.Gaps) != 0 {
			t.Fatalf("VerifyEntries = %+v, want OK", res)
		}
	})
	t.Run("a gap record makes the trail not intact though every link holds", func(t *testing.T) {
		res := enforce.VerifyEntries(chain(t, decision, gap, decision))
		if res.OK() || !res.Linked() || res.Checked != 3 {
			t.Fatalf("VerifyEntries = %+v, want linked but not OK, 3 checked", res)
		}
		if len(res.Gaps) != 1 || res.Gaps[0].ID != "2-0" || res.Gaps[0].Detail != gap.Detail {
			t.Fatalf("Gaps = %+v, want the gap record 2-0 with its detail", res.Gaps)
		}
	})
	t.Run("a trail with a gap can still be anchored, and the gap is still reported", func(t *testing.T) {
		res := enforce.VerifyEntries(chain(t, decision, gap))
		a, err := enforce.NewAuditAnchor(res, at)
		if err != nil {
			t.Fatalf("NewAuditAnchor: %v", err)
		}
		if again := enforce.VerifyEntries(chain(t, decision, gap), enforce.WithAnchor(a)); again.OK() || !again.Linked() {
			t.Fatalf("VerifyEntries with the anchor = %+v, want linked, not OK", again)
		}
	})
}
