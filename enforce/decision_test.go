package enforce_test

import (
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatalf("bad time %q: %v", s, err)
	}
	return t
}

func mustLoc(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatalf("load %s: %v", name, err)
	}
	return loc
}

// MustSnapshot compiles p or fails the test.
func MustSnapshot(tb testing.TB, p enforce.Policy) *enforce.Snapshot {
	tb.Helper()
	s, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		tb.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

func list(v ...string) enforce.Scope { return enforce.Scope{Kind: enforce.ScopeList, Values: v} }

var (
	all      = enforce.Scope{Kind: enforce.ScopeAll}
	assigned = enforce.Scope{Kind: enforce.ScopeAssigned}
	self     = enforce.Scope{Kind: enforce.ScopeSelf}
)

func scopes(q, t, a, s enforce.Scope) [4]enforce.Scope { return [4]enforce.Scope{q, t, a, s} }

var none enforce.Scope

// designPolicy is the profiles file of DESIGN.md, plus a few users and
// profiles that exercise every rule.
func designPolicy(tb testing.TB) enforce.Policy {
	paris := mustLoc(tb, "Europe/Paris")
	monitorAndRec := enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge,
		enforce.RecordingStart, enforce.RecordingStop, enforce.RecordingPause, enforce.RecordingResume, enforce.RecordingPlayback)
	weekdays := [7]bool{false, true, true, true, true, true, false}
	return enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "supervisor-with-recording", Grants: []enforce.Grant{
				{Actions: monitorAndRec, Scopes: scopes(assigned, none, none, none)},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"teacher"}, Scopes: scopes(assigned, none, none, none)},
			}},
			{Name: "teacher", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: scopes(assigned, none, none, none),
					RecordedWithin: 720 * time.Hour,
					Hours:          &enforce.Weekly{Days: weekdays, From: 8 * 60, To: 18 * 60, Location: paris}},
			}},
			{Name: "team-lead", NotifyTarget: true, MaskDigits: 4, Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(none, assigned, none, none)},
			}},
			{Name: "site-night", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(none, none, none, list("lyon")),
					Hours: &enforce.Weekly{Days: [7]bool{true, true, true, true, true, true, true}, From: 22 * 60, To: 6 * 60, Location: paris}},
			}},
			{Name: "global-listener", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(all, none, none, none)},
			}},
			{Name: "own-calls", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPause, enforce.RecordingResume), Scopes: scopes(none, none, self, none)},
			}},
			{Name: "campaign", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(list("sales"), none, none, none),
					ValidFrom: mustTime(tb, "2026-11-01T00:00:00Z"), ValidUntil: mustTime(tb, "2026-11-15T00:00:00Z")},
			}},
			{Name: "empty"},
		},
		Users: []enforce.User{
			{ID: "alice", Profile: "supervisor-with-recording", Queues: []string{"sales", "support", "hr-hotline"}, Teams: []string{"team-a"},
				Identities: []string{"PJSIP/1001", "1001"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"},
				ValidFrom: mustTime(tb, "2026-11-01T00:00:00Z"), ValidUntil: mustTime(tb, "2026-12-01T00:00:00Z")},
			{ID: "dave", Teams: []string{"team-a"}, Identities: []string{"PJSIP/2001"}},
			{ID: "erin", Teams: []string{"team-b"}},
			{ID: "tina", Profile: "team-lead", Teams: []string{"team-a"}},
			{ID: "nico", Profile: "site-night"},
			{ID: "gina", Profile: "global-listener"},
			{ID: "olga", Profile: "own-calls"},
			{ID: "cam", Profile: "campaign"},
			{ID: "nemo", Profile: "empty"},
			{ID: "ceo", Teams: []string{"team-a"}},
			{ID: "luc", Teams: []string{"team-a"}, Sites: []string{"lyon"}},
			{ID: "lena", Teams: []string{"team-b"}, Sites: []string{"paris"}},
		},
		Protected: enforce.Protected{Users: []string{"ceo"}, Queues: []string{"hr-hotline"}},
	}
}

func TestDecide(t *testing.T) {
	s := MustSnapshot(t, designPolicy(t))
	// 2026-11-23 is a Monday; 10:00 in Paris is 09:00 UTC.
	monday10 := mustTime(t, "2026-11-23T09:00:00Z")
	tests := []struct {
		name   string
		req    enforce.Request
		at     time.Time
		allow  bool
		reason enforce.Reason
		grant  int
	}{
		{"supervisor listens on an attributed queue", enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales", Agent: "dave"}, monday10, true, enforce.ReasonGranted, 0},
		{"supervisor barges on an attributed queue", enforce.Request{User: "alice", Action: enforce.MonitorBarge, Queue: "support"}, monday10, true, enforce.ReasonGranted, 0},
		{"supervisor outside its queues is out of scope", enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "billing", Agent: "dave"}, monday10, false, enforce.ReasonOutOfScope, 0},
		{"direct call without queue does not match a queue grant", enforce.Request{User: "alice", Action: enforce.MonitorListen, Agent: "dave"}, monday10, false, enforce.ReasonOutOfScope, 0},
		{"queues all matches a direct call", enforce.Request{User: "gina", Action: enforce.MonitorListen, Agent: "dave"}, monday10, true, enforce.ReasonGranted, 0},
		{"queues all matches any queue", enforce.Request{User: "gina", Action: enforce.MonitorListen, Queue: "billing"}, monday10, true, enforce.ReasonGranted, 0},
		{"action not in any grant", enforce.Request{User: "alice", Action: enforce.RecordingDelete, Queue: "sales"}, monday10, false, enforce.ReasonActionNotGranted, -1},
		{"unknown requester", enforce.Request{User: "mallory", Action: enforce.MonitorListen, Queue: "sales"}, monday10, false, enforce.ReasonUnknownUser, -1},
		{"user without profile", enforce.Request{User: "dave", Action: enforce.MonitorListen, Queue: "sales"}, monday10, false, enforce.ReasonNoProfile, -1},
		{"profile without grants allows nothing", enforce.Request{User: "nemo", Action: enforce.MonitorListen, Queue: "sales"}, monday10, false, enforce.ReasonActionNotGranted, -1},
		{"protected user is never monitored", enforce.Request{User: "gina", Action: enforce.MonitorListen, Queue: "sales", Agent: "ceo"}, monday10, false, enforce.ReasonProtectedTarget, -1},
		{"protected queue is never monitored even when attributed", enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "hr-hotline"}, monday10, false, enforce.ReasonProtectedTarget, -1},
		{"protected queue recordings are not played", enforce.Request{User: "alice", Action: enforce.RecordingPlayback, Queue: "hr-hotline", RecordedAt: monday10}, monday10, false, enforce.ReasonProtectedTarget, -1},
		{"protected queue cannot be reached by claiming one's own call", enforce.Request{User: "gina", Action: enforce.MonitorListen, Queue: "hr-hotline", Agent: "gina"}, monday10, false, enforce.ReasonProtectedTarget, -1},
		{"protected user acting on its own call is not refused as protected", enforce.Request{User: "ceo", Action: enforce.RecordingPause, Agent: "ceo"}, monday10, false, enforce.ReasonNoProfile, -1},
		{"invalid action is refused", enforce.Request{User: "alice", Queue: "sales"}, monday10, false, enforce.ReasonInvalidRequest, -1},

		{"teacher plays a recent recording of its queue in hours", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-11-20T10:00:00Z")}, monday10, true, enforce.ReasonGranted, 0},
		{"teacher cannot listen live", enforce.Request{User: "bob", Action: enforce.MonitorListen, Queue: "sales"}, monday10, false, enforce.ReasonActionNotGranted, -1},
		{"teacher recording older than recorded_within", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-10-01T10:00:00Z")}, monday10, false, enforce.ReasonRecordingTooOld, 0},
		{"teacher recording with unknown age is refused", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales"}, monday10, false, enforce.ReasonRecordingTooOld, 0},
		{"teacher recording dated in the future is refused", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-11-24T10:00:00Z")}, monday10, false, enforce.ReasonRecordingTooOld, 0},
		{"teacher outside period is denied", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-11-30T10:00:00Z")}, mustTime(t, "2026-12-01T09:00:00Z"), false, enforce.ReasonOutsideWindow, -1},
		{"teacher before period is denied", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-10-30T10:00:00Z")}, mustTime(t, "2026-10-31T09:00:00Z"), false, enforce.ReasonOutsideWindow, -1},
		{"teacher on saturday is outside hours", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-11-20T10:00:00Z")}, mustTime(t, "2026-11-21T09:00:00Z"), false, enforce.ReasonOutsideWindow, 0},
		{"teacher at 18:00 Paris is outside hours (end excluded)", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-11-20T10:00:00Z")}, mustTime(t, "2026-11-23T17:00:00Z"), false, enforce.ReasonOutsideWindow, 0},
		{"teacher at 17:59 Paris is inside hours", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "sales", RecordedAt: mustTime(t, "2026-11-20T10:00:00Z")}, mustTime(t, "2026-11-23T16:59:00Z"), true, enforce.ReasonGranted, 0},
		{"teacher out of scope beats window failure order", enforce.Request{User: "bob", Action: enforce.RecordingPlayback, Queue: "support", RecordedAt: mustTime(t, "2026-11-20T10:00:00Z")}, monday10, false, enforce.ReasonOutOfScope, 0},

		{"team lead listens to an agent of its team", enforce.Request{User: "tina", Action: enforce.MonitorListen, Queue: "sales", Agent: "dave"}, monday10, true, enforce.ReasonGranted, 0},
		{"team lead cannot listen to another team's agent", enforce.Request{User: "tina", Action: enforce.MonitorListen, Queue: "sales", Agent: "erin"}, monday10, false, enforce.ReasonOutOfScope, 0},
		{"team lead with explicit team", enforce.Request{User: "tina", Action: enforce.MonitorListen, Team: "team-a"}, monday10, true, enforce.ReasonGranted, 0},
		{"team claim contradicting the target's entry is refused", enforce.Request{User: "tina", Action: enforce.MonitorListen, Team: "team-a", Agent: "erin"}, monday10, false, enforce.ReasonContextMismatch, -1},
		{"team claim agreeing with the target's entry is used", enforce.Request{User: "tina", Action: enforce.MonitorListen, Team: "team-a", Agent: "dave"}, monday10, true, enforce.ReasonGranted, 0},
		{"site claim contradicting the target's entry is refused", enforce.Request{User: "nico", Action: enforce.MonitorListen, Site: "lyon", Agent: "lena"}, mustTime(t, "2026-11-24T22:00:00Z"), false, enforce.ReasonContextMismatch, -1},
		{"site scope takes the target's site from its entry", enforce.Request{User: "nico", Action: enforce.MonitorListen, Agent: "luc"}, mustTime(t, "2026-11-24T22:00:00Z"), true, enforce.ReasonGranted, 0},
		{"site scope refuses a target of another site from its entry", enforce.Request{User: "nico", Action: enforce.MonitorListen, Agent: "lena"}, mustTime(t, "2026-11-24T22:00:00Z"), false, enforce.ReasonOutOfScope, 0},
		{"team lead without a known target has no team", enforce.Request{User: "tina", Action: enforce.MonitorListen, Agent: "ghost"}, monday10, false, enforce.ReasonOutOfScope, 0},

		{"overnight window: 23:00 Paris on tuesday is in", enforce.Request{User: "nico", Action: enforce.MonitorListen, Site: "lyon"}, mustTime(t, "2026-11-24T22:00:00Z"), true, enforce.ReasonGranted, 0},
		{"overnight window: 05:59 Paris is in", enforce.Request{User: "nico", Action: enforce.MonitorListen, Site: "lyon"}, mustTime(t, "2026-11-24T04:59:00Z"), true, enforce.ReasonGranted, 0},
		{"overnight window: 12:00 Paris is out", enforce.Request{User: "nico", Action: enforce.MonitorListen, Site: "lyon"}, mustTime(t, "2026-11-24T11:00:00Z"), false, enforce.ReasonOutsideWindow, 0},
		{"site scope: other site is out of scope", enforce.Request{User: "nico", Action: enforce.MonitorListen, Site: "paris"}, mustTime(t, "2026-11-24T22:00:00Z"), false, enforce.ReasonOutOfScope, 0},

		{"agent pauses its own recording", enforce.Request{User: "olga", Action: enforce.RecordingPause, Agent: "olga"}, monday10, true, enforce.ReasonGranted, 0},
		{"agent cannot pause another agent's recording", enforce.Request{User: "olga", Action: enforce.RecordingPause, Agent: "dave"}, monday10, false, enforce.ReasonOutOfScope, 0},

		{"grant inside absolute window", enforce.Request{User: "cam", Action: enforce.MonitorListen, Queue: "sales"}, mustTime(t, "2026-11-10T00:00:00Z"), true, enforce.ReasonGranted, 0},
		{"grant at its valid_until is over", enforce.Request{User: "cam", Action: enforce.MonitorListen, Queue: "sales"}, mustTime(t, "2026-11-15T00:00:00Z"), false, enforce.ReasonOutsideWindow, 0},

		{"supervisor delegates teacher on a subset of its queues", enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "teacher", AssignQueues: []string{"sales"}}, monday10, true, enforce.ReasonGranted, 1},
		{"supervisor cannot delegate teacher on a foreign queue", enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "teacher", AssignQueues: []string{"sales", "billing"}}, monday10, false, enforce.ReasonOutOfScope, 1},
		{"supervisor cannot hand out its own profile", enforce.Request{User: "alice", Action: enforce.ProfileAssign, AssignProfile: "supervisor-with-recording", AssignQueues: []string{"sales"}}, monday10, false, enforce.ReasonProfileNotDelegable, 1},
		{"teacher cannot delegate at all", enforce.Request{User: "bob", Action: enforce.ProfileAssign, AssignProfile: "teacher"}, monday10, false, enforce.ReasonActionNotGranted, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := enforce.Decide(s, &tt.req, tt.at)
			if d.Allow != tt.allow || d.Reason != tt.reason || d.Grant != tt.grant {
				t.Fatalf("Decide = allow:%v reason:%s grant:%d, want allow:%v reason:%s grant:%d",
					d.Allow, d.Reason, d.Grant, tt.allow, tt.reason, tt.grant)
			}
		})
	}

	t.Run("nil snapshot fails closed", func(t *testing.T) {
		d := enforce.Decide(nil, &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales"}, monday10)
		if d.Allow || d.Reason != enforce.ReasonStoreUnavailable {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("decision carries profile options", func(t *testing.T) {
		d := enforce.Decide(s, &enforce.Request{User: "tina", Action: enforce.MonitorListen, Team: "team-a"}, monday10)
		if !d.NotifyTarget || d.MaskDigits != 4 || d.Profile != "team-lead" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("zero decision denies", func(t *testing.T) {
		var d enforce.Decision
		if d.Allow || d.Verdict() != "deny" {
			t.Fatal("zero Decision must deny")
		}
	})
}

func TestWeeklyAcrossDST(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	ny := mustLoc(t, "America/New_York")
	everyday := [7]bool{true, true, true, true, true, true, true}
	tests := []struct {
		name string
		w    enforce.Weekly
		at   string
		in   bool
	}{
		// Paris leaves summer time on 2026-10-25 at 03:00 CEST -> 02:00 CET.
		{"08:00 Paris is 06:00 UTC the day before the fall change", enforce.Weekly{Days: everyday, From: 480, To: 1080, Location: paris}, "2026-10-24T06:00:00Z", true},
		{"08:00 Paris is 07:00 UTC the day after the fall change", enforce.Weekly{Days: everyday, From: 480, To: 1080, Location: paris}, "2026-10-26T07:00:00Z", true},
		{"06:30 UTC is 07:30 Paris after the fall change, before hours", enforce.Weekly{Days: everyday, From: 480, To: 1080, Location: paris}, "2026-10-26T06:30:00Z", false},
		{"repeated hour 02:30 (first, CEST) is inside a 02:00-03:00 window", enforce.Weekly{Days: everyday, From: 120, To: 180, Location: paris}, "2026-10-25T00:30:00Z", true},
		{"repeated hour 02:30 (second, CET) is inside a 02:00-03:00 window", enforce.Weekly{Days: everyday, From: 120, To: 180, Location: paris}, "2026-10-25T01:30:00Z", true},
		// Paris enters summer time on 2026-03-29: 02:00 CET jumps to 03:00 CEST.
		{"skipped hour: 00:59 UTC is 01:59 CET, before a 02:00-03:00 window", enforce.Weekly{Days: everyday, From: 120, To: 180, Location: paris}, "2026-03-29T00:59:00Z", false},
		{"skipped hour: 01:00 UTC is already 03:00 CEST, after a 02:00-03:00 window", enforce.Weekly{Days: everyday, From: 120, To: 180, Location: paris}, "2026-03-29T01:00:00Z", false},
		{"New York 09:00 EST on monday after the change", enforce.Weekly{Days: [7]bool{1: true}, From: 540, To: 1020, Location: ny}, "2026-11-02T14:00:00Z", true},
		{"New York 08:00 EST on monday is before hours", enforce.Weekly{Days: [7]bool{1: true}, From: 540, To: 1020, Location: ny}, "2026-11-02T13:00:00Z", false},
		{"monday-only window is closed on tuesday", enforce.Weekly{Days: [7]bool{1: true}, From: 540, To: 1020, Location: ny}, "2026-11-03T14:00:00Z", false},
		{"overnight window from friday continues into saturday morning", enforce.Weekly{Days: [7]bool{5: true}, From: 1320, To: 360, Location: time.UTC}, "2026-11-28T03:00:00Z", true},
		{"overnight window from friday does not open saturday night", enforce.Weekly{Days: [7]bool{5: true}, From: 1320, To: 360, Location: time.UTC}, "2026-11-28T23:00:00Z", false},
		{"window with nil location is read as UTC", enforce.Weekly{Days: everyday, From: 480, To: 1080}, "2026-11-28T08:00:00Z", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Contains(mustTime(t, tt.at)); got != tt.in {
				t.Fatalf("Contains(%s) = %v, want %v", tt.at, got, tt.in)
			}
		})
	}
}

func TestNewSnapshotRejectsBadPolicies(t *testing.T) {
	listen := enforce.NewActionSet(enforce.MonitorListen)
	tests := []struct {
		name string
		p    enforce.Policy
	}{
		{"duplicate profile", enforce.Policy{Profiles: []enforce.Profile{{Name: "a"}, {Name: "a"}}}},
		{"duplicate user", enforce.Policy{Users: []enforce.User{{ID: "u"}, {ID: "u"}}}},
		{"unknown profile reference", enforce.Policy{Users: []enforce.User{{ID: "u", Profile: "ghost"}}}},
		{"identity shared by two users", enforce.Policy{Users: []enforce.User{{ID: "u", Identities: []string{"1001"}}, {ID: "v", Identities: []string{"1001"}}}}},
		{"identity naming another user", enforce.Policy{Users: []enforce.User{{ID: "alice", Identities: []string{"bob"}}, {ID: "bob"}}}},
		{"grant without actions", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", Grants: []enforce.Grant{{}}}}}},
		{"profile.assign without profiles", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.ProfileAssign)}}}}}},
		{"delegating an unknown profile", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"ghost"}}}}}}},
		{"self outside agents", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", Grants: []enforce.Grant{{Actions: listen, Scopes: scopes(self, none, none, none)}}}}}},
		{"empty scope list", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", Grants: []enforce.Grant{{Actions: listen, Scopes: scopes(list(), none, none, none)}}}}}},
		{"window ending before it starts", enforce.Policy{Users: []enforce.User{{ID: "u", ValidFrom: mustTime(t, "2026-12-01T00:00:00Z"), ValidUntil: mustTime(t, "2026-11-01T00:00:00Z")}}}},
		{"hours with no day", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", Grants: []enforce.Grant{{Actions: listen, Hours: &enforce.Weekly{From: 1, To: 2}}}}}}},
		{"negative mask", enforce.Policy{Profiles: []enforce.Profile{{Name: "a", MaskDigits: -1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := enforce.NewSnapshot(tt.p, 1); err == nil {
				t.Fatal("NewSnapshot accepted a bad policy")
			}
		})
	}
}

func TestResolveIdentity(t *testing.T) {
	s := MustSnapshot(t, designPolicy(t))
	tests := []struct{ in, want string }{
		{"PJSIP/1001", "alice"},
		{"PJSIP/1001-0000002a", "alice"},
		{"1001", "alice"},
		{"PJSIP/2001-00000001", "dave"},
		{"bob", "bob"},
		{"PJSIP/9999-00000001", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run("identity "+tt.in, func(t *testing.T) {
			got, ok := s.ResolveIdentity(tt.in)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("ResolveIdentity(%q) = %q,%v want %q", tt.in, got, ok, tt.want)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"+33 1 23 45 67 89", 4, "+33 1 23 45 ** **"},
		{"+33 1 23 45 67 89", 3, "+33 1 23 45 6* **"},
		{"0612345678", 0, "0612345678"},
		{"0612345678", 20, "**********"},
		{"anonymous", 3, "anonymous"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := enforce.Mask(tt.in, tt.n); got != tt.want {
			t.Errorf("Mask(%q,%d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestActionsAndReasonsRoundTrip(t *testing.T) {
	for _, a := range enforce.Actions() {
		got, err := enforce.ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v", a, got, err)
		}
	}
	if _, err := enforce.ParseAction("monitor.spy"); err == nil {
		t.Error("ParseAction accepted monitor.spy")
	}
	seen := map[string]bool{}
	for _, r := range enforce.Reasons() {
		if seen[r.String()] {
			t.Errorf("reason code %q used twice", r)
		}
		seen[r.String()] = true
	}
}

func TestHolderSwapsAtomically(t *testing.T) {
	var h enforce.Holder
	if h.Load() != nil {
		t.Fatal("new Holder must be empty (fail closed)")
	}
	s := MustSnapshot(t, designPolicy(t))
	h.Store(s)
	if h.Load() != s || h.Load().Generation() != 1 {
		t.Fatal("Holder did not return the stored snapshot")
	}
}
