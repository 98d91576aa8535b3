package memory_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

func filledAudit(t *testing.T, n int, opts memory.AuditOptions) *memory.AuditLog {
	t.Helper()
	l := memory.NewAuditLog(opts)
	for i := range n {
		r := enforce.AuditRecord{Time: time.Unix(int64(i), 0), Source: "http", User: "alice", Action: "monitor.listen",
			Decision: "allow", Reason: "granted"}
		if err := l.Audit(testContext(t), r); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestVerifyAuditFindsTampering(t *testing.T) {
	tests := []struct {
		name      string
		tamper    func(e []enforce.AuditEntry) []enforce.AuditEntry
		wantBad   int // index in the original entries
		wantInMsg string
	}{
		{"a modified field breaks the record's hash", func(e []enforce.AuditEntry) []enforce.AuditEntry {
			e[3].Raw = []byte(strings.Replace(string(e[3].Raw), `"allow"`, `"deny"`, 1))
			return e
		}, 3, "altered"},
		{"a record rehashed after editing breaks the next link", func(e []enforce.AuditEntry) []enforce.AuditEntry {
			e[3].Raw = []byte(strings.Replace(string(e[3].Raw), `"alice"`, `"mallory"`, 1))
			sum := sha256.Sum256(append([]byte(e[3].Prev), e[3].Raw...))
			e[3].Hash = hex.EncodeToString(sum[:])
			return e
		}, 4, "removed or altered"},
		{"a removed record breaks the next link", func(e []enforce.AuditEntry) []enforce.AuditEntry {
			return append(e[:3:3], e[4:]...)
		}, 4, "removed or altered"},
		{"swapped records break the chain", func(e []enforce.AuditEntry) []enforce.AuditEntry {
			e[3], e[4] = e[4], e[3]
			return e
		}, 4, "removed or altered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := filledAudit(t, 8, memory.AuditOptions{}).Entries()
			badID := entries[tt.wantBad].ID
			res := enforce.VerifyEntries(tt.tamper(entries))
			if res.OK() || res.FirstBad != badID || !strings.Contains(res.Reason, tt.wantInMsg) {
				t.Fatalf("VerifyEntries = %+v, want first bad %s (%q)", res, badID, tt.wantInMsg)
			}
		})
	}
	t.Run("an intact export verifies", func(t *testing.T) {
		res := enforce.VerifyEntries(filledAudit(t, 8, memory.AuditOptions{}).Entries())
		if !res.OK() || res.Checked != 8 || res.Truncated {
			t.Fatalf("VerifyEntries = %+v", res)
		}
	})
}

func TestTrimmedAuditVerifiesFromTheFirstRetainedRecord(t *testing.T) {
	t.Run("by length", func(t *testing.T) {
		l := filledAudit(t, 30, memory.AuditOptions{MaxLen: 10})
		res, err := l.VerifyAudit(testContext(t))
		if err != nil || !res.OK() || res.Checked != 10 || !res.Truncated {
			t.Fatalf("VerifyAudit = %+v, %v; want 10 checked, truncated, intact", res, err)
		}
	})
	t.Run("by age", func(t *testing.T) {
		now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		l := memory.NewAuditLog(memory.AuditOptions{MaxAge: time.Hour, Now: func() time.Time { return now }})
		for range 5 {
			if err := l.Audit(testContext(t), enforce.AuditRecord{Action: "monitor.listen"}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(30 * time.Minute)
		}
		res, err := l.VerifyAudit(testContext(t))
		// Appended at 0, 30, 60, 90, 120 min; at 120 the cut is 60.
		if err != nil || !res.OK() || res.Checked != 3 || !res.Truncated {
			t.Fatalf("VerifyAudit = %+v, %v; want 3 checked, truncated, intact", res, err)
		}
	})
}

func TestAuditRingKeepsOrderChainAndFiltersAcrossWrapAround(t *testing.T) {
	// 37 appends into a trail of 10 wrap its buffer (16 slots) around
	// twice; what remains must be the 10 newest, oldest first, chained.
	l := memory.NewAuditLog(memory.AuditOptions{MaxLen: 10})
	for i := range 37 {
		user := "alice"
		if i%2 == 1 {
			user = "bob"
		}
		r := enforce.AuditRecord{Time: time.Unix(int64(i), 0), Source: "http", User: user, Action: "monitor.listen",
			Decision: "allow", Reason: "granted"}
		if err := l.Audit(testContext(t), r); err != nil {
			t.Fatal(err)
		}
	}
	entries := l.Entries()
	if len(entries) != 10 {
		t.Fatalf("%d entries kept, want 10", len(entries))
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Prev != entries[i-1].Hash {
			t.Fatalf("entry %d does not link to entry %d", i, i-1)
		}
	}
	if res, err := l.VerifyAudit(testContext(t)); err != nil || !res.OK() || res.Checked != 10 || !res.Truncated {
		t.Fatalf("VerifyAudit = %+v, %v; want 10 checked, truncated, intact", res, err)
	}
	all, err := l.ReadAudit(testContext(t), enforce.AuditFilter{})
	if err != nil || len(all) != 10 || all[0].Time.Unix() != 27 || all[9].Time.Unix() != 36 {
		t.Fatalf("ReadAudit = %d records (%v), want times 27..36", len(all), err)
	}
	bobs, err := l.ReadAudit(testContext(t), enforce.AuditFilter{User: "bob", Limit: 3})
	if err != nil || len(bobs) != 3 || bobs[0].Time.Unix() != 31 || bobs[2].Time.Unix() != 35 {
		t.Fatalf("ReadAudit(bob, limit 3) = %+v, %v; want times 31, 33, 35", bobs, err)
	}
}

// BenchmarkAuditFull appends to a trail already holding its 10,000
// records (the file-mode daemon's bound), the steady state of a busy
// daemon.
func BenchmarkAuditFull(b *testing.B) {
	l := memory.NewAuditLog(memory.AuditOptions{MaxLen: 10000})
	r := enforce.AuditRecord{Time: time.Unix(1, 0), Source: "http", User: "alice", Action: "monitor.listen",
		Decision: "allow", Reason: "granted"}
	ctx := b.Context()
	for range 10000 {
		if err := l.Audit(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Audit(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
