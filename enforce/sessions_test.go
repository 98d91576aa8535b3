package enforce

import (
	"strings"
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

func TestSessionsViewChangesSayWhatAWallboardMustRedraw(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	before := SessionsView{
		Sessions: []LiveSession{
			{ID: "ends", Mode: "listen", StartedAt: t0},
			{ID: "switches", Mode: "listen", StartedAt: t0},
			{ID: "stays", Mode: "barge", StartedAt: t0},
		},
		Recordings: []Recording{
			{ID: "r-stops", State: RecordingActive},
			{ID: "r-pauses", State: RecordingActive},
			{ID: "r-resumes", State: RecordingPaused},
		},
	}
	after := SessionsView{
		Sessions: []LiveSession{
			{ID: "switches", Mode: "whisper", StartedAt: t0},
			{ID: "stays", Mode: "barge", StartedAt: t0, UpdatedAt: t0.Add(time.Second)},
			{ID: "new", Mode: "listen", StartedAt: t0.Add(time.Minute)},
		},
		Recordings: []Recording{
			{ID: "r-pauses", State: RecordingPaused},
			{ID: "r-resumes", State: RecordingActive},
			{ID: "r-new", State: RecordingActive},
		},
	}
	var got []string
	for _, e := range before.Changes(after) {
		id := ""
		if e.Session != nil {
			id = e.Session.ID
		} else {
			id = e.Recording.ID
		}
		got = append(got, e.Type+" "+id)
	}
	want := []string{
		"session.ended ends", "session.switched switches", "session.started new",
		"recording.stopped r-stops", "recording.paused r-pauses", "recording.resumed r-resumes", "recording.started r-new",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("Changes = %q\nwant      %q", got, want)
	}
	if ev := after.Changes(after); len(ev) != 0 {
		t.Errorf("a listing changed from itself: %+v", ev)
	}
}
