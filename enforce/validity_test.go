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
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name, user, now, want string
	}{
		{"an open grant never expires", "open", "2026-11-29T10:00:00Z", ""},
		{"a day window closes at 18:00 in its zone", "day", "2026-11-29T10:00:00Z", "2026-11-29T17:00:00Z"},
		{"an overnight window closes the next morning", "night", "2026-11-29T22:30:00Z", "2026-11-30T05:00:00Z"},
		{"an overnight window after midnight closes that morning", "night", "2026-11-30T01:00:00Z", "2026-11-30T05:00:00Z"},
		{"the user's valid_until comes first", "until", "2026-11-29T10:00:00Z", "2026-11-30T10:00:00Z"},
		{"the grant's valid_until", "grant-until", "2026-11-29T10:00:00Z", "2026-11-30T12:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &enforce.Request{User: tc.user, Action: enforce.MonitorListen, Queue: "sales"}
			now := at(tc.now)
			d := enforce.Decide(snap, req, now)
			if !d.Allow {
				t.Fatalf("Decide = %+v, want allow", d)
			}
			got := snap.ValidUntil(req, d, now)
			if tc.want == "" {
				if !got.IsZero() {
					t.Fatalf("ValidUntil = %v, want never", got)
				}
				return
			}
			if want := at(tc.want); !got.Equal(want) {
				t.Fatalf("ValidUntil = %v, want %v", got, want)
			}
			if enforce.Decide(snap, req, got).Allow {
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
