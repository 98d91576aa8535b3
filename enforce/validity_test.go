package enforce_test

import (
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestValidUntil(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	listen := enforce.NewActionSet(enforce.MonitorListen)
	every := [7]bool{true, true, true, true, true, true, true}
	snap := MustSnapshot(t, enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "open", Grants: []enforce.Grant{{Actions: listen, Scopes: scopes(all, none, none, none)}}},
			{Name: "day", Grants: []enforce.Grant{{Actions: listen, Scopes: scopes(all, none, none, none),
				Hours: &enforce.Weekly{Days: every, From: 8 * 60, To: 18 * 60, Location: paris}}}},
			{Name: "night", Grants: []enforce.Grant{{Actions: listen, Scopes: scopes(all, none, none, none),
				Hours: &enforce.Weekly{Days: every, From: 22 * 60, To: 6 * 60, Location: paris}}}},
			{Name: "until", Grants: []enforce.Grant{{Actions: listen, Scopes: scopes(all, none, none, none),
				ValidUntil: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}}},
		},
		Users: []enforce.User{
			{ID: "open", Profile: "open"},
			{ID: "day", Profile: "day"},
			{ID: "night", Profile: "night"},
			{ID: "until", Profile: "until", ValidUntil: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)},
			{ID: "grant-until", Profile: "until"},
		},
	})
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name, user string
		now, want  time.Time
	}{
		{"an open grant never expires", "open", day(29, 10), time.Time{}},
		{"a day window closes at 18:00 in its zone", "day", day(29, 10), day(29, 17)},
		{"an overnight window closes the next morning", "night", day(29, 22), day(30, 5)},
		{"an overnight window after midnight closes that morning", "night", day(30, 1), day(30, 5)},
		{"the user's valid_until comes first", "until", day(29, 10), day(30, 10)},
		{"the grant's valid_until", "grant-until", day(29, 10), day(30, 12)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &enforce.Request{User: tc.user, Action: enforce.MonitorListen, Queue: "sales"}
			d := enforce.Decide(snap, req, tc.now)
			if !d.Allow {
				t.Fatalf("Decide = %+v, want allow", d)
			}
			got := snap.ValidUntil(req, d, tc.now)
			if !got.Equal(tc.want) {
				t.Fatalf("ValidUntil = %v, want %v (zero: never)", got, tc.want)
			}
			if !got.IsZero() && enforce.Decide(snap, req, got).Allow {
				t.Fatalf("still allowed at %v", got)
			}
		})
	}
	t.Run("a deny has no validity", func(t *testing.T) {
		req := &enforce.Request{User: "nobody", Action: enforce.MonitorListen}
		if got := snap.ValidUntil(req, enforce.Decide(snap, req, time.Now()), time.Now()); !got.IsZero() {
			t.Fatalf("ValidUntil = %v", got)
		}
	})
}
