package enforce

import (
	"testing"
	"time"
)

func TestAuditFilterFollowsOneSession(t *testing.T) {
	f, err := ParseAuditFilter(map[string][]string{AuditParamSession: {"ms-1"}})
	if err != nil || f.Session != "ms-1" {
		t.Fatalf("ParseAuditFilter = %+v, %v", f, err)
	}
	if !f.Match(&AuditRecord{Session: "ms-1"}) || f.Match(&AuditRecord{Session: "ms-2"}) || f.Match(&AuditRecord{}) {
		t.Error("the session filter keeps other sessions' records")
	}
}

func TestLiveSessionsSortOldestFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ss := []LiveSession{{ID: "b", StartedAt: t0}, {ID: "c", StartedAt: t0.Add(-time.Minute)}, {ID: "a", StartedAt: t0}}
	SortSessions(ss)
	if ss[0].ID != "c" || ss[1].ID != "a" || ss[2].ID != "b" {
		t.Errorf("order %v", ss)
	}
	if !SessionEnd.Valid() || SessionEnd.String() != "session.end" {
		t.Errorf("session.end action: %v", SessionEnd)
	}
}
