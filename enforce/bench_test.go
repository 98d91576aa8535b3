package enforce_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Sizes of the generated snapshot the performance target names.
const (
	benchUsers    = 100_000
	benchQueues   = 10_000
	benchProfiles = 1_000
	benchTeams    = 1_000
)

// genPolicy builds a policy of benchUsers users over benchQueues queues and
// benchProfiles profiles. Profile i grants monitoring on its own ten queues
// (explicit list), on the user's assigned queues, on its team, playback of
// recent recordings in office hours, and delegation of "p1".
func genPolicy(tb testing.TB) enforce.Policy {
	paris := mustLoc(tb, "Europe/Paris")
	q := func(i int) string { return "q" + strconv.Itoa(i%benchQueues) }
	p := enforce.Policy{
		Profiles:  make([]enforce.Profile, benchProfiles),
		Users:     make([]enforce.User, benchUsers),
		Protected: enforce.Protected{Users: []string{"u99999"}, Queues: []string{"q9999"}},
	}
	monitor := enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge)
	for i := range p.Profiles {
		own := make([]string, 10)
		for j := range own {
			own[j] = q(i*10 + j)
		}
		p.Profiles[i] = enforce.Profile{
			Name: "p" + strconv.Itoa(i),
			Grants: []enforce.Grant{
				{Actions: monitor, Scopes: scopes(list(own...), none, none, none)},
				{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.RecordingStart), Scopes: scopes(assigned, none, none, none)},
				{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(none, assigned, none, none)},
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: scopes(assigned, none, none, none),
					RecordedWithin: 720 * time.Hour,
					Hours:          &enforce.Weekly{Days: [7]bool{1: true, 2: true, 3: true, 4: true, 5: true}, From: 480, To: 1080, Location: paris}},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"p1"}, Scopes: scopes(assigned, none, none, none)},
			},
		}
	}
	for i := range p.Users {
		u := enforce.User{
			ID:         "u" + strconv.Itoa(i),
			Queues:     []string{q(i), q(i + 1), q(i + 2), q(i + 3), q(i + 4)},
			Teams:      []string{"t" + strconv.Itoa(i%benchTeams)},
			Identities: []string{"PJSIP/" + strconv.Itoa(100000+i)},
		}
		if i%10 != 9 { // one user in ten has no profile
			u.Profile = "p" + strconv.Itoa(i%benchProfiles)
		}
		p.Users[i] = u
	}
	// u5 is temporary: its assignment ended.
	p.Users[5].ValidUntil = mustTime(tb, "2026-01-01T00:00:00Z")
	return p
}

func BenchmarkDecide(b *testing.B) {
	s := MustSnapshot(b, genPolicy(b))
	now := mustTime(b, "2026-11-23T09:00:00Z") // Monday 10:00 in Paris
	recent := mustTime(b, "2026-11-20T09:00:00Z")
	old := mustTime(b, "2026-01-20T09:00:00Z")
	// u1234 has profile p234 whose own queues are q2340..q2349 and assigned
	// queues q1234..q1238; team t234.
	scenarios := map[string]struct {
		req    enforce.Request
		allow  bool
		reason enforce.Reason
	}{
		"allow-queue":                {enforce.Request{User: "u1234", Action: enforce.MonitorListen, Queue: "q2345", Agent: "u4321"}, true, enforce.ReasonGranted},
		"allow-assigned-queue":       {enforce.Request{User: "u1234", Action: enforce.RecordingStart, Queue: "q1236", Agent: "u4321"}, true, enforce.ReasonGranted},
		"allow-team":                 {enforce.Request{User: "u1234", Action: enforce.MonitorListen, Queue: "q7", Agent: "u2234"}, true, enforce.ReasonGranted},
		"allow-playback":             {enforce.Request{User: "u1234", Action: enforce.RecordingPlayback, Queue: "q1235", RecordedAt: recent}, true, enforce.ReasonGranted},
		"allow-assign":               {enforce.Request{User: "u1234", Action: enforce.ProfileAssign, AssignProfile: "p1", AssignQueues: []string{"q1234"}}, true, enforce.ReasonGranted},
		"deny-unknown_user":          {enforce.Request{User: "nobody", Action: enforce.MonitorListen, Queue: "q2345"}, false, enforce.ReasonUnknownUser},
		"deny-no_profile":            {enforce.Request{User: "u1239", Action: enforce.MonitorListen, Queue: "q2345"}, false, enforce.ReasonNoProfile},
		"deny-action_not_granted":    {enforce.Request{User: "u1234", Action: enforce.RecordingDelete, Queue: "q2345"}, false, enforce.ReasonActionNotGranted},
		"deny-out_of_scope":          {enforce.Request{User: "u1234", Action: enforce.MonitorBarge, Queue: "q5000", Agent: "u4321"}, false, enforce.ReasonOutOfScope},
		"deny-outside_window":        {enforce.Request{User: "u5", Action: enforce.MonitorListen, Queue: "q50"}, false, enforce.ReasonOutsideWindow},
		"deny-protected_target":      {enforce.Request{User: "u1234", Action: enforce.MonitorListen, Queue: "q2345", Agent: "u99999"}, false, enforce.ReasonProtectedTarget},
		"deny-recording_too_old":     {enforce.Request{User: "u1234", Action: enforce.RecordingPlayback, Queue: "q1235", RecordedAt: old}, false, enforce.ReasonRecordingTooOld},
		"deny-profile_not_delegable": {enforce.Request{User: "u1234", Action: enforce.ProfileAssign, AssignProfile: "p2", AssignQueues: []string{"q1234"}}, false, enforce.ReasonProfileNotDelegable},
	}
	for name, sc := range scenarios {
		req := sc.req
		if d := enforce.Decide(s, &req, now); d.Allow != sc.allow || d.Reason != sc.reason {
			b.Fatalf("%s: scenario decides %v/%s, want %v/%s", name, d.Allow, d.Reason, sc.allow, sc.reason)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enforce.Decide(s, &req, now)
			}
		})
	}
}

// BenchmarkNewSnapshot measures compiling a 100k-user policy: the cost of a
// full reload.
func BenchmarkNewSnapshot(b *testing.B) {
	p := genPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enforce.NewSnapshot(p, 1); err != nil {
			b.Fatal(err)
		}
	}
}
