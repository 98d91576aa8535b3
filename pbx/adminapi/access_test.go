package adminapi_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// newAccessFixture serves adminPolicy with two auditors: audra reviews
// everything (audit.review, no scope), bob only queue sales.
func newAccessFixture(tb testing.TB) *adminFixture {
	tb.Helper()
	f := newAdminFixture(tb)
	p := adminPolicy()
	p.Profiles = append(p.Profiles,
		enforce.Profile{Name: "auditor", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.AuditReview)}}},
		enforce.Profile{Name: "sales-auditor", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.AuditReview),
			Scopes: [4]enforce.Scope{{Kind: enforce.ScopeList, Values: []string{"sales"}}}}}})
	p.Users = append(p.Users, enforce.User{ID: "audra", Profile: "auditor"})
	for i := range p.Users {
		if p.Users[i].ID == "bob" {
			p.Users[i].Profile = "sales-auditor"
		}
	}
	f.holder.Store(mustSnapshot(tb, p, 2))
	f.recs["r1"] = enforce.Recording{ID: "r1", Queue: "support", Target: "dave", StartedAt: now.Add(-time.Hour), State: enforce.RecordingStopped}
	return f
}

// decodeOK fails the test unless r is a 200 whose body decodes as a T.
func decodeOK[T any](tb testing.TB, r response) T {
	tb.Helper()
	var v T
	if r.code != 200 {
		tb.Fatalf("code %d body %s", r.code, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestAdminWhoCan(t *testing.T) {
	f := newAccessFixture(t)
	users := func(t *testing.T, r response) []enforce.Access { return decodeOK[enforce.WhoCanAnswer](t, r).Users }
	listeners := []enforce.Access{{User: "alice", Profile: "supervisor", Grant: 0}, {User: "root", Profile: "administrator", Grant: 0}}
	t.Run("an administrator lists who may listen on a queue", func(t *testing.T) {
		if got := users(t, f.do(t, "GET", "/v1/access/who-can?action=monitor.listen&queue=sales", "root", "", "")); !slices.Equal(got, listeners) {
			t.Errorf("users %+v, want %+v", got, listeners)
		}
	})
	t.Run("an auditor's token reviews any target", func(t *testing.T) {
		if got := users(t, f.do(t, "GET", "/v1/access/who-can?action=monitor.listen&queue=sales", "audra", "", "")); !slices.Equal(got, listeners) {
			t.Errorf("users %+v, want %+v", got, listeners)
		}
	})
	t.Run("an auditor reviews a protected agent, whom nobody may monitor", func(t *testing.T) {
		if got := users(t, f.do(t, "GET", "/v1/access/who-can?action=monitor.listen&queue=sales&agent=ceo", "audra", "", "")); len(got) != 0 {
			t.Errorf("users %+v, want none", got)
		}
	})
	t.Run("a recording is reviewed with its queue, agent and age", func(t *testing.T) {
		want := []enforce.Access{{User: "alice", Profile: "supervisor", Grant: 0}, {User: "root", Profile: "administrator", Grant: 0}}
		if got := users(t, f.do(t, "GET", "/v1/access/who-can?action=recording.playback&recording=r1", "audra", "", "")); !slices.Equal(got, want) {
			t.Errorf("users %+v, want %+v", got, want)
		}
		f.do(t, "GET", "/v1/access/who-can?action=recording.playback&recording=nope", "audra", "", "").wantField(t, 404, "", "")
	})
	t.Run("whoever may review nothing cannot probe recording ids", func(t *testing.T) {
		f.do(t, "GET", "/v1/access/who-can?action=recording.playback&recording=nope", "alice", "", "").wantField(t, 403, "reason", "action_not_granted")
		f.do(t, "GET", "/v1/access/who-can?action=recording.playback&recording=r1", "alice", "", "").wantField(t, 403, "reason", "action_not_granted")
	})
	t.Run("an auditor scoped on sales may not review a recording of support", func(t *testing.T) {
		f.do(t, "GET", "/v1/access/who-can?action=recording.playback&recording=r1", "bob", "", "").wantField(t, 403, "reason", "out_of_scope")
	})
	t.Run("an auditor scoped on sales reviews sales only", func(t *testing.T) {
		f.do(t, "GET", "/v1/access/who-can?action=monitor.listen&queue=sales", "bob", "", "").wantField(t, 200, "", "")
		f.do(t, "GET", "/v1/access/who-can?action=monitor.listen&queue=billing", "bob", "", "").wantField(t, 403, "reason", "out_of_scope")
	})
	for _, tc := range []struct {
		name, path, user string
		code             int
		key, value       string
	}{
		{"a supervisor without audit.review is refused", "/v1/access/who-can?action=monitor.listen&queue=sales", "alice", 403, "reason", "action_not_granted"},
		{"a user without a profile is refused", "/v1/access/who-can?action=monitor.listen&queue=sales", "dave", 403, "reason", "no_profile"},
		{"a check token is refused", "/v1/access/who-can?action=monitor.listen&queue=sales", "pbx", 403, "", ""},
		{"no token is 401", "/v1/access/who-can?action=monitor.listen&queue=sales", "", 401, "", ""},
		{"an unknown parameter is bad input", "/v1/access/who-can?action=monitor.listen&quene=sales", "root", 400, "", ""},
		{"no target is bad input", "/v1/access/who-can?action=monitor.listen", "root", 400, "", ""},
		{"no action is bad input", "/v1/access/who-can?queue=sales", "root", 400, "", ""},
		{"profile.assign is bad input", "/v1/access/who-can?action=profile.assign&queue=sales", "root", 400, "", ""},
		{"a recording with a queue is bad input", "/v1/access/who-can?action=recording.playback&recording=r1&queue=sales", "root", 400, "", ""},
		{"a bad at is bad input", "/v1/access/who-can?action=monitor.listen&queue=sales&at=monday", "root", 400, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.do(t, "GET", tc.path, tc.user, "", "").wantField(t, tc.code, tc.key, tc.value)
		})
	}
}

func TestAdminRights(t *testing.T) {
	f := newAccessFixture(t)
	rights := decodeOK[enforce.Rights]
	t.Run("an auditor reads a supervisor's rights", func(t *testing.T) {
		got := rights(t, f.do(t, "GET", "/v1/access/rights/alice?at=2026-11-23T09:00:00Z", "audra", "", ""))
		if got.Profile != "supervisor" || len(got.Actions) != 3 || got.Actions[0].Action != "monitor.listen" ||
			!slices.Equal(got.Actions[0].Grants[0].Scopes[0].Values, []string{"sales", "support"}) {
			t.Errorf("alice's rights %+v", got)
		}
	})
	t.Run("a user reads its own rights", func(t *testing.T) {
		if got := rights(t, f.do(t, "GET", "/v1/access/rights/alice", "alice", "", "")); got.User != "alice" {
			t.Errorf("rights %+v", got)
		}
	})
	t.Run("a user may not read another's", func(t *testing.T) {
		f.do(t, "GET", "/v1/access/rights/root", "alice", "", "").wantField(t, 403, "reason", "action_not_granted")
	})
	t.Run("an unknown user's rights say so", func(t *testing.T) {
		if got := rights(t, f.do(t, "GET", "/v1/access/rights/nobody", "root", "", "")); got.Reason != "unknown_user" {
			t.Errorf("rights %+v", got)
		}
	})
	t.Run("an unknown parameter is bad input", func(t *testing.T) {
		f.do(t, "GET", "/v1/access/rights/alice?when=now", "root", "", "").wantField(t, 400, "", "")
	})
}

// FuzzWhoCanQuery feeds arbitrary query strings to GET /v1/access/who-can
// as an administrator: the answer is never a 5xx, and every user a 200
// lists is one the engine allows on the target it names.
func FuzzWhoCanQuery(f *testing.F) {
	for _, s := range []string{"action=monitor.listen&queue=sales", "action=recording.playback&recording=r1",
		"action=monitor.listen&agent=ceo&at=2026-11-23T09:00:00Z", "action=monitor.listen&queue=sales&queue=hr",
		"action=profile.assign&queue=sales", "queue=%zz", "action=monitor.listen&team=team-a&agent=x", ""} {
		f.Add(s)
	}
	fx := newAccessFixture(f)
	snap := fx.holder.Load()
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := url.Parse("/v1/access/who-can?" + raw); err != nil {
			return // no HTTP client sends it
		}
		r := fx.do(t, "GET", "/v1/access/who-can?"+raw, "root", "", "")
		switch {
		case r.code >= 500:
			t.Fatalf("who-can?%s: %d %s", raw, r.code, r.body)
		case r.code != 200:
			return
		}
		ans := decodeOK[enforce.WhoCanAnswer](t, r)
		action, err := enforce.ParseAction(ans.Action)
		if err != nil {
			t.Fatalf("answer names action %q: %v", ans.Action, err)
		}
		for _, u := range ans.Users {
			req := enforce.Request{User: u.User, Action: action, Queue: ans.Target.Queue, Team: ans.Target.Team,
				Agent: ans.Target.Agent, Site: ans.Target.Site, RecordedAt: ans.RecordedAt}
			if d := enforce.Decide(snap, &req, ans.At); !d.Allow {
				t.Errorf("who-can?%s lists %s, whom check refuses (%s)", raw, u.User, d.Reason)
			}
		}
	})
}
