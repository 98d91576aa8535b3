package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestSessionsCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := newMemoryStore()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	if err := st.PutSession(ctx, enforce.LiveSession{ID: "ms-1", User: "alice", Target: "agent2001", Queue: "sales",
		Mode: "listen", Instance: "host-a", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRecording(ctx, enforce.Recording{ID: "42", Target: "agent2002", StartedBy: "alice", StartedAt: t0, State: enforce.RecordingActive}); err != nil {
		t.Fatal(err)
	}

	t.Run("lists live sessions, then recordings in progress, one JSON line each", func(t *testing.T) {
		r := runStore(t, ctx, st, "", "sessions", "--redis-addr", "x:1")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != exitOK || len(lines) != 2 {
			t.Fatalf("sessions: %+v", r)
		}
		var first, second sessionLine
		if json.Unmarshal([]byte(lines[0]), &first) != nil || first.Session == nil || first.Session.ID != "ms-1" {
			t.Errorf("first line %s", lines[0])
		}
		if json.Unmarshal([]byte(lines[1]), &second) != nil || second.Recording == nil || second.Recording.ID != "42" {
			t.Errorf("second line %s", lines[1])
		}
	})
	t.Run("end marks the session for its daemon and audits who asked", func(t *testing.T) {
		r := runStore(t, ctx, st, "", "sessions", "end", "ms-1", "--redis-addr", "x:1")
		if r.code != exitOK || !strings.Contains(r.stdout, "asked of host-a") {
			t.Fatalf("sessions end: %+v", r)
		}
		s, err := st.Session(ctx, "ms-1")
		if err != nil || s.EndRequestedBy != "cli:tester" {
			t.Errorf("session %+v, %v; want an end asked by cli:tester", s, err)
		}
		recs, _ := st.ReadAudit(ctx, enforce.AuditFilter{Action: "session.end"})
		if len(recs) != 1 || recs[0].Session != "ms-1" || recs[0].User != "cli:tester" {
			t.Errorf("audit %+v", recs)
		}
	})
	t.Run("an unknown session fails, a malformed id is bad input", func(t *testing.T) {
		if r := runStore(t, ctx, st, "", "sessions", "end", "nope", "--redis-addr", "x:1"); r.code != exitFailure {
			t.Errorf("unknown: %+v", r)
		}
		if r := runStore(t, ctx, st, "", "sessions", "end", "a b", "--redis-addr", "x:1"); r.code != exitBadInput {
			t.Errorf("malformed: %+v", r)
		}
	})
	t.Run("--follow prints each change after the list, an end with its cause", func(t *testing.T) {
		st := newMemoryStore()
		if err := st.PutSession(ctx, enforce.LiveSession{ID: "ms-1", User: "alice", Target: "agent2001", Mode: "listen", StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
		fctx, stop := context.WithCancel(ctx)
		out := make(chan result, 1)
		go func() { out <- runStore(t, fctx, st, "", "sessions", "--follow", "--redis-addr", "x:1") }()
		// Another daemon's session switches mode and ends; a recording starts.
		time.Sleep(100 * time.Millisecond) // ten polls
		if err := st.PutSession(ctx, enforce.LiveSession{ID: "ms-1", User: "alice", Target: "agent2001", Mode: "barge", StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // ten polls
		if err := st.EndSession(ctx, enforce.EndedSession{ID: "ms-1", Cause: enforce.CauseMaxDuration, At: t0}); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveRecording(ctx, enforce.Recording{ID: "43", Target: "agent2002", StartedAt: t0, State: enforce.RecordingActive}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // ten polls
		stop()
		r := <-out
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var got []string
		for _, l := range lines[1:] {
			var ev enforce.SessionEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("line %s: %v", l, err)
			}
			id := ""
			if ev.Session != nil {
				id = ev.Session.ID
			} else if ev.Recording != nil {
				id = ev.Recording.ID
			}
			got = append(got, strings.TrimSpace(ev.Type+" "+id+" "+ev.Cause))
		}
		want := "session.switched ms-1; session.ended ms-1 max_duration; recording.started 43"
		if r.code != exitOK || !strings.HasPrefix(lines[0], `{"session":{"id":"ms-1"`) || strings.Join(got, "; ") != want {
			t.Errorf("sessions --follow: code %d, changes %q, want %q\n%s", r.code, got, want, r.stdout)
		}
	})
}
