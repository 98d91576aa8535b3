package enforce_test

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
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
func genPolicy(tb testing.TB) enforce.Policy { return genPolicyN(tb, benchUsers) }

// genPolicyN is genPolicy with n users (n > 5).
func genPolicyN(tb testing.TB, n int) enforce.Policy {
	paris := mustLoc(tb, "Europe/Paris")
	q := func(i int) string { return "q" + strconv.Itoa(i%benchQueues) }
	p := enforce.Policy{
		Profiles:  make([]enforce.Profile, benchProfiles),
		Users:     make([]enforce.User, n),
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
	// The spread cases ask about every user and queue rather than one hot
	// key, so that the cost of a large policy (cache misses) shows; the
	// 1k-user case is the reference a 100k-user policy is held to.
	b.Run("spread-100k", func(b *testing.B) { benchSpread(b, s, benchUsers, now) })
	small := MustSnapshot(b, genPolicyN(b, 1_000))
	b.Run("spread-1k", func(b *testing.B) { benchSpread(b, small, 1_000, now) })
}

// spreadRequests returns n monitor.listen requests from users drawn
// uniformly among users u0..u<users-1> about a target drawn the same way:
// half on one of the requester's assigned queues, half on a queue drawn
// uniformly among all benchQueues, a quarter naming no agent. Ids are fresh
// strings, as a parsed request's would be.
func spreadRequests(users, n int) []enforce.Request {
	r := rand.New(rand.NewPCG(1, 2))
	reqs := make([]enforce.Request, n)
	for i := range reqs {
		u := r.IntN(users)
		q := r.IntN(benchQueues)
		if i%2 == 0 {
			q = (u + r.IntN(5)) % benchQueues
		}
		reqs[i] = enforce.Request{User: "u" + strconv.Itoa(u), Action: enforce.MonitorListen, Queue: "q" + strconv.Itoa(q)}
		if i%4 != 3 {
			reqs[i].Agent = "u" + strconv.Itoa(r.IntN(users))
		}
	}
	return reqs
}

func benchSpread(b *testing.B, s *enforce.Snapshot, users int, now time.Time) {
	reqs := spreadRequests(users, 1<<16)
	allowed := 0
	for i := range reqs {
		if enforce.Decide(s, &reqs[i], now).Allow {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(reqs) {
		b.Fatalf("spread requests: %d of %d allowed, want a mix", allowed, len(reqs))
	}
	b.ReportAllocs()
	cpu := processCPU()
	i := 0
	for b.Loop() {
		enforce.Decide(s, &reqs[i&(len(reqs)-1)], now)
		i++
	}
	// On a shared machine ns/op counts the time other processes hold the
	// cores; the process's CPU time per decision does not.
	b.ReportMetric(float64(processCPU()-cpu)/float64(i), "cpu-ns/op")
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNewSnapshot measures compiling a 100k-user policy: the cost of a
// full reload. B/user is the live heap the snapshot holds beyond the policy
// it was compiled from, per user.
func BenchmarkNewSnapshot(b *testing.B) {
	p := genPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enforce.NewSnapshot(p, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	before := liveHeap()
	s := MustSnapshot(b, p)
	b.ReportMetric(float64(liveHeap()-before)/float64(len(p.Users)), "B/user")
	runtime.KeepAlive(s)
	runtime.KeepAlive(p)
}

// liveHeap returns the bytes of live heap after a full collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkWhoCan measures who-can over the 100k-user policy: the index
// finds the candidates, Decide confirms each. "loop-every-user" is the
// same question answered by deciding for every user, the cost the index
// avoids; BenchmarkNewAccessIndex is the one-off cost of the index.
func BenchmarkWhoCan(b *testing.B) {
	s := MustSnapshot(b, genPolicy(b))
	ix := enforce.NewAccessIndex(s)
	users := s.Policy().Users
	now := mustTime(b, "2026-11-23T09:00:00Z") // Monday 10:00 in Paris
	recent := mustTime(b, "2026-11-20T09:00:00Z")
	// loop answers by deciding for every user.
	loop := func(req enforce.Request) int {
		n := 0
		for i := range users {
			req.User = users[i].ID
			if enforce.Decide(s, &req, now).Allow {
				n++
			}
		}
		return n
	}
	// q2345 is p234's own queue and u2341..u2345's assigned one; u4321 is
	// in team t321.
	scenarios := map[string]enforce.Request{
		"listen-queue-and-agent": {Action: enforce.MonitorListen, Queue: "q2345", Agent: "u4321"},
		"barge-queue":            {Action: enforce.MonitorBarge, Queue: "q2345"},
		"start-recording-queue":  {Action: enforce.RecordingStart, Queue: "q2345"},
		"playback-recording":     {Action: enforce.RecordingPlayback, Queue: "q2345", Agent: "u4321", RecordedAt: recent},
		"listen-agent-only":      {Action: enforce.MonitorListen, Agent: "u4321"},
		"protected-agent":        {Action: enforce.MonitorListen, Queue: "q2345", Agent: "u99999"},
	}
	for name, req := range scenarios {
		got, err := ix.WhoCan(req, now)
		if err != nil {
			b.Fatal(err)
		}
		if want := loop(req); len(got) != want {
			b.Fatalf("%s: who-can lists %d users, deciding for every user allows %d", name, len(got), want)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ix.WhoCan(req, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(got)), "users")
		})
	}
	b.Run("loop-every-user", func(b *testing.B) {
		for b.Loop() {
			loop(scenarios["listen-queue-and-agent"])
		}
	})
}

func BenchmarkNewAccessIndex(b *testing.B) {
	s := MustSnapshot(b, genPolicy(b))
	b.ReportAllocs()
	for b.Loop() {
		enforce.NewAccessIndex(s)
	}
}
