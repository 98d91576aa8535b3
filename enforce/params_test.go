package enforce_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func mustQuery(tb testing.TB, raw string) url.Values {
	tb.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		tb.Fatalf("ParseQuery(%q): %v", raw, err)
	}
	return q
}

func TestParseRequest(t *testing.T) {
	at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.FixedZone("", 3600))
	rec := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	accepted := []struct {
		name    string
		query   string
		want    enforce.Request
		wantAt  time.Time
		comment string
	}{
		{name: "listen on a queue",
			query: "user=alice&action=monitor.listen&queue=sales",
			want:  enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales"}},
		{name: "every target dimension",
			query: "user=alice&action=monitor.barge&queue=q&team=t&agent=a&site=s",
			want:  enforce.Request{User: "alice", Action: enforce.MonitorBarge, Queue: "q", Team: "t", Agent: "a", Site: "s"}},
		{name: "at and recorded_at are RFC 3339",
			query:  "user=bob&action=recording.playback&queue=sales&at=2026-11-03T10:00:00%2B01:00&recorded_at=2026-11-01T09:00:00Z",
			want:   enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: rec},
			wantAt: at},
		{name: "profile.assign takes repeated queues",
			query: "user=alice&action=profile.assign&assign=teacher&queue=sales&queue=support",
			want:  enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "teacher", AssignQueues: []string{"sales", "support"}}},
		{name: "profile.assign without queues",
			query: "user=alice&action=profile.assign&assign=teacher",
			want:  enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "teacher"}},
		{name: "empty values are absent",
			query: "user=alice&action=presence.view&queue=&team=&at=",
			want:  enforce.Request{User: "alice", Action: enforce.PresenceView}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			req, gotAt, err := enforce.ParseRequest(mustQuery(t, tc.query))
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !equalRequest(req, tc.want) {
				t.Errorf("request = %+v, want %+v", req, tc.want)
			}
			if !gotAt.Equal(tc.wantAt) {
				t.Errorf("at = %v, want %v", gotAt, tc.wantAt)
			}
		})
	}

	rejected := []struct {
		name, query, param, msg string
	}{
		{"missing user is rejected", "action=monitor.listen", "user", "user: required"},
		{"missing action is rejected", "user=alice", "action", "action: required"},
		{"unknown action is rejected naming it", "user=alice&action=monitor.spy", "action", `action: unknown action "monitor.spy"`},
		{"repeated user is rejected", "user=alice&user=bob&action=monitor.listen", "user", "user: given 2 times"},
		{"two queues outside profile.assign are rejected", "user=alice&action=monitor.listen&queue=a&queue=b", "queue", "queue: given 2 times"},
		{"assign outside profile.assign is rejected", "user=alice&action=monitor.listen&assign=teacher", "assign", "assign: only valid"},
		{"profile.assign without assign is rejected", "user=alice&action=profile.assign&queue=sales", "assign", "assign: required"},
		{"bad at is rejected", "user=alice&action=monitor.listen&at=tomorrow", "at", `at: "tomorrow" is not an RFC 3339 time`},
		{"bad recorded_at is rejected", "user=alice&action=recording.playback&recorded_at=2026-13-01T00:00:00Z", "recorded_at", "recorded_at: "},
		{"unknown parameter is rejected", "user=alice&action=monitor.listen&quene=hr", `"quene"`, `"quene": unknown parameter`},
		{"control characters are rejected", "user=al%0Aice&action=monitor.listen", "user", "user: contains a control character"},
		{"invalid UTF-8 is rejected", "user=al%FFice&action=monitor.listen", "user", "user: not valid UTF-8"},
		{"overlong values are rejected", "user=" + strings.Repeat("a", enforce.MaxParamLen+1) + "&action=monitor.listen", "user", "user: longer than"},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := enforce.ParseRequest(mustQuery(t, tc.query))
			if err == nil {
				t.Fatal("accepted, want an error")
			}
			var pe *enforce.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParamError", err, err)
			}
			if pe.Param != tc.param {
				t.Errorf("Param = %q, want %q", pe.Param, tc.param)
			}
			if !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("error = %q, want prefix %q", err, tc.msg)
			}
		})
	}
}

func equalRequest(a, b enforce.Request) bool {
	if len(a.AssignQueues) != len(b.AssignQueues) {
		return false
	}
	for i := range a.AssignQueues {
		if a.AssignQueues[i] != b.AssignQueues[i] {
			return false
		}
	}
	a.AssignQueues, b.AssignQueues = nil, nil
	return a.User == b.User && a.Action == b.Action && a.Queue == b.Queue && a.Team == b.Team &&
		a.Agent == b.Agent && a.Site == b.Site && a.RecordedAt.Equal(b.RecordedAt) &&
		a.AssignProfile == b.AssignProfile
}

func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"user=alice&action=monitor.listen&queue=sales",
		"user=alice&action=profile.assign&assign=teacher&queue=sales&queue=support",
		"user=bob&action=recording.playback&at=2026-11-03T10:00:00%2B01:00&recorded_at=2026-11-01T09:00:00Z",
		"user=&action=",
		"user=a&user=b",
		"quene=hr",
		"user=%FF&action=monitor.listen",
		"at=2026-02-30T25:61:00Z",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, _, err := enforce.ParseRequest(q)
		if err != nil {
			var pe *enforce.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParamError", err, err)
			}
			return
		}
		if !req.Action.Valid() {
			t.Fatalf("accepted invalid action %v from %q", req.Action, raw)
		}
		if req.User == "" {
			t.Fatalf("accepted empty user from %q", raw)
		}
		if (req.Action == enforce.ProfileAssign) != (req.AssignProfile != "") {
			t.Fatalf("assign profile %q with action %v from %q", req.AssignProfile, req.Action, raw)
		}
		if req.Action != enforce.ProfileAssign && len(req.AssignQueues) > 0 {
			t.Fatalf("assign queues with action %v from %q", req.Action, raw)
		}
		// Accepted requests always get an answer from the engine.
		_ = enforce.NewAnswer(req, enforce.Decide(nil, &req, time.Time{})).Explain()
	})
}
