package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// RunSessionStore runs the contract of an enforce.SessionStore; newStore
// returns an empty store of its own for each subtest.
func RunSessionStore(t *testing.T, newStore func(t *testing.T) enforce.SessionStore) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	sess := func(id string, started time.Time) enforce.LiveSession {
		return enforce.LiveSession{ID: id, User: "alice", Channel: "PJSIP/1001-01", ChannelID: "1700000000.1", Target: "carol",
			TargetChannel: "PJSIP/2001-02", Queue: "sales", Caller: "+33123456789", Mode: "listen",
			Modes: []enforce.ModeChange{{Mode: "listen", At: started}}, Profile: "supervisor", Grant: 1,
			PBX: "pbx1", Instance: "d1", StartedAt: started, UpdatedAt: started}
	}
	put := func(t *testing.T, s enforce.SessionStore, ls enforce.LiveSession) {
		t.Helper()
		if err := s.PutSession(testContext(t), ls); err != nil {
			t.Fatalf("PutSession(%s): %v", ls.ID, err)
		}
	}

	t.Run("a put session reads back whole and is listed", func(t *testing.T) {
		s := newStore(t)
		want := sess("s1", t0)
		put(t, s, want)
		got, err := s.Session(testContext(t), "s1")
		if err != nil || !sameSession(got, want) {
			t.Fatalf("Session = %+v, %v; want %+v", got, err, want)
		}
		live, err := s.LiveSessions(testContext(t))
		if err != nil || len(live) != 1 || !sameSession(live[0], want) {
			t.Fatalf("LiveSessions = %+v, %v", live, err)
		}
	})

	t.Run("an update keeps one session with its new mode", func(t *testing.T) {
		s := newStore(t)
		ls := sess("s1", t0)
		put(t, s, ls)
		ls.Mode = "barge"
		ls.Modes = append(ls.Modes, enforce.ModeChange{Mode: "barge", At: t0.Add(time.Minute)})
		ls.UpdatedAt = t0.Add(time.Minute)
		put(t, s, ls)
		live, err := s.LiveSessions(testContext(t))
		if err != nil || len(live) != 1 || !sameSession(live[0], ls) {
			t.Fatalf("LiveSessions = %+v, %v; want %+v", live, err, ls)
		}
	})

	t.Run("sessions are listed oldest first and a deleted one is gone", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		put(t, s, sess("late", t0.Add(time.Hour)))
		put(t, s, sess("early", t0))
		put(t, s, sess("gone", t0.Add(time.Minute)))
		if err := s.EndSession(ctx, enforce.EndedSession{ID: "gone", Cause: enforce.CauseTargetHangup, At: t0.Add(2 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := s.EndSession(ctx, enforce.EndedSession{ID: "never", Cause: enforce.CauseShutdown, At: t0}); err != nil {
			t.Fatalf("ending an unknown session: %v, want nil", err)
		}
		live, err := s.LiveSessions(ctx)
		if err != nil || len(live) != 2 || live[0].ID != "early" || live[1].ID != "late" {
			t.Fatalf("LiveSessions = %+v, %v; want early, late", live, err)
		}
		if _, err := s.Session(ctx, "gone"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("Session(gone) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("an end request is kept across the owner's updates", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		ls := sess("s1", t0)
		put(t, s, ls)
		if err := s.RequestSessionEnd(ctx, "s1", "bob"); err != nil {
			t.Fatal(err)
		}
		ls.Mode = "whisper"
		put(t, s, ls)
		got, err := s.Session(ctx, "s1")
		if err != nil || got.EndRequestedBy != "bob" || got.Mode != "whisper" {
			t.Fatalf("Session = %+v, %v; want whisper, end requested by bob", got, err)
		}
		if err := s.RequestSessionEnd(ctx, "nope", "bob"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("RequestSessionEnd(nope) err = %v, want ErrNotFound", err)
		}
		if err := s.EndSession(ctx, enforce.EndedSession{ID: "s1", Cause: enforce.CauseAdministrator, At: t0}); err != nil {
			t.Fatal(err)
		}
		put(t, s, ls)
		if got, _ := s.Session(ctx, "s1"); got.EndRequestedBy != "" {
			t.Fatalf("a new session with a deleted one's id inherits its end request: %+v", got)
		}
	})

	t.Run("a daemon is alive while its last beat lasts, and only then", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		if err := s.Beat(ctx, "d1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.Beat(ctx, "d2", 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		alive, err := s.Alive(ctx, []string{"d1", "d2", "never"})
		if err != nil || !alive["d1"] || !alive["d2"] || alive["never"] {
			t.Fatalf("Alive = %v, %v; want d1 and d2, not a daemon that never beat", alive, err)
		}
		time.Sleep(300 * time.Millisecond)
		alive, err = s.Alive(ctx, []string{"d1", "d2"})
		if err != nil || !alive["d1"] || alive["d2"] {
			t.Fatalf("Alive = %v, %v; want d1 only once d2's beat expired", alive, err)
		}
		if err := s.Beat(ctx, "d2", time.Minute); err != nil {
			t.Fatal(err)
		}
		if alive, err = s.Alive(ctx, []string{"d2"}); err != nil || !alive["d2"] {
			t.Fatalf("Alive = %v, %v; want d2 alive again after a new beat", alive, err)
		}
		if alive, err = s.Alive(ctx, nil); err != nil || len(alive) != 0 {
			t.Fatalf("Alive(none) = %v, %v", alive, err)
		}
	})

	t.Run("an ended session says why to every reader", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		put(t, s, sess("s1", t0))
		put(t, s, sess("s2", t0))
		end := enforce.EndedSession{ID: "s1", Cause: enforce.CauseRevoked, At: t0.Add(time.Minute)}
		if err := s.EndSession(ctx, end); err != nil {
			t.Fatal(err)
		}
		ends, err := s.SessionEnds(ctx, []string{"s1", "s2", "never"})
		if err != nil || len(ends) != 1 || ends["s1"].Cause != end.Cause || !ends["s1"].At.Equal(end.At) {
			t.Fatalf("SessionEnds = %+v, %v; want only s1 revoked at %s", ends, err, end.At)
		}
		if ends, err := s.SessionEnds(ctx, nil); err != nil || len(ends) != 0 {
			t.Fatalf("SessionEnds(nil) = %+v, %v", ends, err)
		}
	})
}

func sameSession(a, b enforce.LiveSession) bool {
	if len(a.Modes) != len(b.Modes) {
		return false
	}
	for i := range a.Modes {
		if a.Modes[i].Mode != b.Modes[i].Mode || !a.Modes[i].At.Equal(b.Modes[i].At) {
			return false
		}
	}
	return a.ID == b.ID && a.User == b.User && a.Channel == b.Channel && a.ChannelID == b.ChannelID && a.Target == b.Target &&
		a.TargetChannel == b.TargetChannel && a.Queue == b.Queue && a.Caller == b.Caller && a.Mode == b.Mode &&
		a.Profile == b.Profile && a.Grant == b.Grant && a.PBX == b.PBX && a.Instance == b.Instance &&
		a.StartedAt.Equal(b.StartedAt) && a.UpdatedAt.Equal(b.UpdatedAt) && a.EndRequestedBy == b.EndRequestedBy
}

// LiveRecordingStore is a recording store that lists its recordings in
// progress.
type LiveRecordingStore interface {
	enforce.RecordingStore
	enforce.ActiveRecordingLister
}

// RunActiveRecordings runs the contract of enforce.ActiveRecordingLister
// on a recording store; newStore returns an empty store of its own.
func RunActiveRecordings(t *testing.T, newStore func(t *testing.T) LiveRecordingStore) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	t.Run("every recording in progress is listed, oldest first", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		for _, r := range []enforce.Recording{
			{ID: "b", Target: "dave", StartedBy: "alice", StartedAt: t0.Add(time.Hour), State: enforce.RecordingPaused},
			{ID: "a", Target: "carol", StartedBy: "alice", StartedAt: t0, State: enforce.RecordingActive},
			{ID: "c", Target: "carol", StartedBy: "alice", StartedAt: t0.Add(2 * time.Hour), State: enforce.RecordingActive},
		} {
			mustSaveRecording(t, s, r)
		}
		c, _ := s.Recording(ctx, "c")
		c.State, c.StoppedBy, c.StoppedAt = enforce.RecordingStopped, "alice", t0.Add(3*time.Hour)
		mustSaveRecording(t, s, c)
		got, err := s.ActiveRecordings(ctx)
		if err != nil || len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
			t.Fatalf("ActiveRecordings = %+v, %v; want a, b", got, err)
		}
	})
}
