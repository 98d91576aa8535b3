// Package storetest is the contract suite of callwarden's stores: one set
// of behaviours every enforce.PolicyStore, enforce.RecordingStore and
// enforce.AuditLog must show, run by the cache unit tests against the
// in-memory stores and by the integration suite against Redis. It only
// uses the interfaces, never a backend's internals.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// Context returns a context that ends after d, or when tb's test ends,
// for the store tests' calls.
func Context(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func testContext(t *testing.T) context.Context { return Context(t, 20*time.Second) }

// MustLocation loads an IANA zone or fails the test.
func MustLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

// Policy returns a valid policy that uses every field of the model: each
// scope kind, delegation, absolute and weekly windows with a time zone,
// recorded_within, max_duration and max_pause, identities, validity and
// protected targets.
func Policy(tb testing.TB) enforce.Policy {
	paris := MustLocation(tb, "Europe/Paris")
	list := func(v ...string) enforce.Scope { return enforce.Scope{Kind: enforce.ScopeList, Values: v} }
	return enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "supervisor", NotifyTarget: true, MaskDigits: 4, Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge),
					Scopes:      [4]enforce.Scope{{Kind: enforce.ScopeAssigned}, list("team-a", "team-b"), {}, {Kind: enforce.ScopeAll}},
					MaxDuration: 30 * time.Minute},
				{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"teacher"},
					Scopes: [4]enforce.Scope{{Kind: enforce.ScopeAssigned}}},
			}},
			{Name: "teacher", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPlayback), RecordedWithin: 720 * time.Hour,
					Scopes:    [4]enforce.Scope{{Kind: enforce.ScopeAssigned}},
					Hours:     &enforce.Weekly{Days: [7]bool{1: true, 2: true, 3: true, 4: true, 5: true}, From: 8 * 60, To: 18 * 60, Location: paris},
					ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, paris)},
			}},
			{Name: "agent", Grants: []enforce.Grant{
				{Actions: enforce.NewActionSet(enforce.RecordingPause, enforce.RecordingResume),
					Scopes: [4]enforce.Scope{{}, {}, {Kind: enforce.ScopeSelf}}, MaxPause: 2 * time.Minute},
			}},
			{Name: "empty"},
		},
		Users: []enforce.User{
			{ID: "alice", Profile: "supervisor", Queues: []string{"sales", "support"}, Teams: []string{"team-a"},
				Identities: []string{"PJSIP/1001", "1001"}},
			{ID: "bob", Profile: "teacher", Queues: []string{"sales"},
				ValidFrom: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
			{ID: "carol", Profile: "agent", Teams: []string{"team-a"}, Agents: []string{"carol"}, Sites: []string{"paris"},
				Identities: []string{"PJSIP/2001"}},
			{ID: "dave", Teams: []string{"team-a"}},
		},
		Protected: enforce.Protected{Users: []string{"ceo"}, Queues: []string{"hr-hotline"}},
	}
}

// BigPolicy returns a valid policy of n users over n/100 profiles (at
// least 10), shaped like enforce's benchmark policy: each profile grants
// monitoring on ten explicit queues, on assigned queues and teams, and
// playback within office hours in Europe/Paris; each user has five queues,
// a team and a phone identity, and one in ten has no profile. For load
// tests and benchmarks.
func BigPolicy(tb testing.TB, n int) enforce.Policy {
	paris := MustLocation(tb, "Europe/Paris")
	nProfiles := max(n/100, 10)
	q := func(i int) string { return "q" + strconv.Itoa(i%10000) }
	p := enforce.Policy{Profiles: make([]enforce.Profile, nProfiles), Users: make([]enforce.User, n),
		Protected: enforce.Protected{Users: []string{"u0"}, Queues: []string{"q9999"}}}
	monitor := enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge)
	for i := range p.Profiles {
		own := make([]string, 10)
		for j := range own {
			own[j] = q(i*10 + j)
		}
		p.Profiles[i] = enforce.Profile{Name: "p" + strconv.Itoa(i), Grants: []enforce.Grant{
			{Actions: monitor, Scopes: [4]enforce.Scope{{Kind: enforce.ScopeList, Values: own}}},
			{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.RecordingStart), Scopes: [4]enforce.Scope{{Kind: enforce.ScopeAssigned}}},
			{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: [4]enforce.Scope{{}, {Kind: enforce.ScopeAssigned}}},
			{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: [4]enforce.Scope{{Kind: enforce.ScopeAssigned}},
				RecordedWithin: 720 * time.Hour,
				Hours:          &enforce.Weekly{Days: [7]bool{1: true, 2: true, 3: true, 4: true, 5: true}, From: 480, To: 1080, Location: paris}},
		}}
	}
	for i := range p.Users {
		u := enforce.User{ID: "u" + strconv.Itoa(i), Queues: []string{q(i), q(i + 1), q(i + 2), q(i + 3), q(i + 4)},
			Teams: []string{"t" + strconv.Itoa(i%1000)}, Identities: []string{"PJSIP/" + strconv.Itoa(100000+i)}}
		if i%10 != 9 {
			u.Profile = "p" + strconv.Itoa(i%nProfiles)
		}
		p.Users[i] = u
	}
	return p
}

// assertSamePolicy fails when got differs from want in content.
func assertSamePolicy(t *testing.T, got, want enforce.Policy) {
	t.Helper()
	if d := enforce.DiffPolicies(want, got); !d.Empty() {
		t.Fatalf("stored policy differs from the one applied: %+v", d)
	}
	if len(got.Profiles) != len(want.Profiles) || len(got.Users) != len(want.Users) {
		t.Fatalf("stored policy has %d profiles and %d users, want %d and %d",
			len(got.Profiles), len(got.Users), len(want.Profiles), len(want.Users))
	}
}

func mustApply(t *testing.T, s enforce.PolicyStore, p enforce.Policy, pre enforce.Precondition) (uint64, enforce.PolicyDiff) {
	t.Helper()
	gen, diff, err := s.ApplyPolicy(testContext(t), p, pre)
	if err != nil {
		t.Fatalf("ApplyPolicy: %v", err)
	}
	return gen, diff
}

func mustPolicy(t *testing.T, s enforce.PolicyStore) (enforce.Policy, uint64) {
	t.Helper()
	p, gen, err := s.Policy(testContext(t))
	if err != nil {
		t.Fatalf("Policy: %v", err)
	}
	return p, gen
}

// RunPolicyStore runs the contract of a writable enforce.PolicyStore;
// newStore returns an empty store of its own for each subtest.
func RunPolicyStore(t *testing.T, newStore func(t *testing.T) enforce.PolicyStore) {
	t.Run("an empty store holds an empty policy at generation 0", func(t *testing.T) {
		p, gen := mustPolicy(t, newStore(t))
		if gen != 0 || len(p.Profiles) != 0 || len(p.Users) != 0 {
			t.Fatalf("empty store: generation %d, %d profiles, %d users", gen, len(p.Profiles), len(p.Users))
		}
	})

	t.Run("an applied policy reads back whole, sorted, at a new generation", func(t *testing.T) {
		s := newStore(t)
		want := Policy(t)
		gen, diff := mustApply(t, s, want, enforce.Unconditionally())
		if gen == 0 {
			t.Fatal("generation 0 after an apply")
		}
		if !slices.Equal(diff.AddedProfiles, []string{"agent", "empty", "supervisor", "teacher"}) ||
			!slices.Equal(diff.AddedUsers, []string{"alice", "bob", "carol", "dave"}) || !diff.ProtectedChanged {
			t.Fatalf("diff of a first apply = %+v", diff)
		}
		got, gotGen := mustPolicy(t, s)
		if gotGen != gen {
			t.Fatalf("Policy generation %d, ApplyPolicy returned %d", gotGen, gen)
		}
		assertSamePolicy(t, got, want)
		if !slices.IsSortedFunc(got.Users, func(a, b enforce.User) int { return cmpString(a.ID, b.ID) }) ||
			!slices.IsSortedFunc(got.Profiles, func(a, b enforce.Profile) int { return cmpString(a.Name, b.Name) }) {
			t.Fatal("entries are not sorted")
		}
		h := got.Profiles[slices.IndexFunc(got.Profiles, func(p enforce.Profile) bool { return p.Name == "teacher" })].Grants[0].Hours
		if h == nil || h.Location == nil || h.Location.String() != "Europe/Paris" {
			t.Fatalf("weekly hours lost their time zone: %+v", h)
		}
		if _, err := enforce.NewSnapshot(got, gotGen); err != nil {
			t.Fatalf("stored policy does not compile: %v", err)
		}
	})

	t.Run("a change reports what it added, removed and changed", func(t *testing.T) {
		s := newStore(t)
		gen1, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		p := Policy(t)
		p.Users = slices.DeleteFunc(p.Users, func(u enforce.User) bool { return u.ID == "dave" })
		p.Users = append(p.Users, enforce.User{ID: "erin", Profile: "agent"})
		p.Users[0].Queues = []string{"sales"} // alice
		p.Profiles[1].Grants[0].RecordedWithin = time.Hour
		gen2, diff := mustApply(t, s, p, enforce.IfGeneration(gen1))
		if gen2 <= gen1 {
			t.Fatalf("generation went from %d to %d", gen1, gen2)
		}
		want := enforce.PolicyDiff{ChangedProfiles: []string{"teacher"}, AddedUsers: []string{"erin"},
			RemovedUsers: []string{"dave"}, ChangedUsers: []string{"alice"}}
		if fmt.Sprint(diff) != fmt.Sprint(want) {
			t.Fatalf("diff = %+v, want %+v", diff, want)
		}
		got, _ := mustPolicy(t, s)
		assertSamePolicy(t, got, p)
	})

	t.Run("an apply that changes nothing keeps the generation", func(t *testing.T) {
		s := newStore(t)
		gen1, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		gen2, diff := mustApply(t, s, Policy(t), enforce.Unconditionally())
		if gen2 != gen1 || !diff.Empty() {
			t.Fatalf("no-op apply: generation %d -> %d, diff %+v", gen1, gen2, diff)
		}
	})

	t.Run("an apply based on a stale generation conflicts and changes nothing", func(t *testing.T) {
		s := newStore(t)
		gen1, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		p := Policy(t)
		p.Users = p.Users[:1]
		gen2, _ := mustApply(t, s, p, enforce.IfGeneration(gen1))
		_, _, err := s.ApplyPolicy(testContext(t), Policy(t), enforce.IfGeneration(gen1))
		if !errors.Is(err, enforce.ErrConflict) {
			t.Fatalf("stale apply: err = %v, want ErrConflict", err)
		}
		got, gen := mustPolicy(t, s)
		if gen != gen2 || len(got.Users) != 1 {
			t.Fatalf("after a conflict: generation %d (want %d), %d users (want 1)", gen, gen2, len(got.Users))
		}
	})

	t.Run("an invalid policy is refused and changes nothing", func(t *testing.T) {
		s := newStore(t)
		gen1, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		bad := Policy(t)
		bad.Users = append(bad.Users, enforce.User{ID: "mallory", Profile: "no-such-profile"})
		_, _, err := s.ApplyPolicy(testContext(t), bad, enforce.Unconditionally())
		if err == nil || errors.Is(err, enforce.ErrConflict) || errors.Is(err, enforce.ErrUnavailable) {
			t.Fatalf("invalid apply: err = %v, want a validation error", err)
		}
		if !errors.Is(err, enforce.ErrInvalidPolicy) {
			t.Fatalf("invalid apply: err = %v, want enforce.ErrInvalidPolicy", err)
		}
		got, gen := mustPolicy(t, s)
		if gen != gen1 {
			t.Fatalf("generation moved from %d to %d", gen1, gen)
		}
		assertSamePolicy(t, got, Policy(t))
	})

	t.Run("a policy read is the store's own copy", func(t *testing.T) {
		s := newStore(t)
		mustApply(t, s, Policy(t), enforce.Unconditionally())
		got, _ := mustPolicy(t, s)
		got.Users[0].Queues[0] = "tampered"
		got.Profiles[0].Grants = nil
		again, _ := mustPolicy(t, s)
		assertSamePolicy(t, again, Policy(t))
	})

	t.Run("of concurrent applies on one generation exactly one wins", func(t *testing.T) {
		s := newStore(t)
		gen1, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		const n = 6
		errs := concurrently(n, func(i int) error {
			p := Policy(t)
			p.Users = append(p.Users, enforce.User{ID: "racer" + strconv.Itoa(i)})
			_, _, err := s.ApplyPolicy(testContext(t), p, enforce.IfGeneration(gen1))
			return err
		})
		var (
			wins, conflicts int
			unexpected      []error
		)
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, enforce.ErrConflict):
				conflicts++
			default:
				unexpected = append(unexpected, err)
			}
		}
		if wins != 1 || conflicts != n-1 || len(unexpected) > 0 {
			t.Fatalf("%d wins, %d conflicts, errors %v; want 1 win", wins, conflicts, unexpected)
		}
		got, gen := mustPolicy(t, s)
		if gen != gen1+1 || len(got.Users) != len(Policy(t).Users)+1 {
			t.Fatalf("after the race: generation %d, %d users", gen, len(got.Users))
		}
	})

	t.Run("unconditional concurrent applies all land", func(t *testing.T) {
		s := newStore(t)
		gen1, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		errs := concurrently(4, func(i int) error {
			p := Policy(t)
			p.Users = append(p.Users, enforce.User{ID: "writer" + strconv.Itoa(i)})
			_, _, err := s.ApplyPolicy(testContext(t), p, enforce.Unconditionally())
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("unconditional applies: %v", err)
		}
		_, gen := mustPolicy(t, s)
		if gen != gen1+4 {
			t.Fatalf("generation %d after 4 changes from %d", gen, gen1)
		}
	})
}

// concurrently runs f(0) to f(n-1) each in its own goroutine and returns
// their errors, indexed like the calls, once all have returned.
func concurrently(n int, f func(i int) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func mustSaveRecording(t *testing.T, s enforce.RecordingStore, r enforce.Recording) {
	t.Helper()
	if err := s.SaveRecording(testContext(t), r); err != nil {
		t.Fatalf("SaveRecording(%s): %v", r.ID, err)
	}
}

// RunRecordingStore runs the contract of an enforce.RecordingStore;
// newStore returns an empty store of its own for each subtest.
func RunRecordingStore(t *testing.T, newStore func(t *testing.T) enforce.RecordingStore) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	rec := func(id, target string, started time.Time, state enforce.RecordingState) enforce.Recording {
		return enforce.Recording{ID: id, Name: "cw-" + id, PBX: "asterisk", Target: target, Queue: "sales",
			Caller: "+33123456789", Channel: "PJSIP/2001-00000001", StartedBy: "alice", StartedAt: started, State: state}
	}

	t.Run("a saved recording reads back whole", func(t *testing.T) {
		s := newStore(t)
		r := rec("r1", "carol", t0, enforce.RecordingPaused)
		r.Pauses = []enforce.Pause{{By: "carol", At: t0.Add(time.Minute), ResumedBy: "carol", ResumedAt: t0.Add(2 * time.Minute)},
			{By: "carol", At: t0.Add(3 * time.Minute)}}
		mustSaveRecording(t, s, r)
		got, err := s.Recording(testContext(t), "r1")
		if err != nil {
			t.Fatal(err)
		}
		if !sameRecording(got, r) {
			t.Fatalf("Recording = %+v, want %+v", got, r)
		}
	})

	t.Run("an unknown recording is not found", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Recording(testContext(t), "nope"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if _, err := s.ActiveRecording(testContext(t), "nobody"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("the active recording is the latest one not stopped", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		for _, r := range []enforce.Recording{
			rec("old", "carol", t0, enforce.RecordingActive),
			rec("new", "carol", t0.Add(time.Hour), enforce.RecordingPaused),
			rec("done", "carol", t0.Add(2*time.Hour), enforce.RecordingStopped),
			rec("other", "dave", t0.Add(3*time.Hour), enforce.RecordingActive),
		} {
			mustSaveRecording(t, s, r)
		}
		got, err := s.ActiveRecording(ctx, "carol")
		if err != nil || got.ID != "new" {
			t.Fatalf("ActiveRecording(carol) = %s, %v; want new", got.ID, err)
		}
	})

	t.Run("stopping a recording takes it out of the active ones", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		r := rec("r1", "carol", t0, enforce.RecordingActive)
		mustSaveRecording(t, s, r)
		r.State, r.StoppedBy, r.StoppedAt = enforce.RecordingStopped, "alice", t0.Add(time.Minute)
		mustSaveRecording(t, s, r)
		if _, err := s.ActiveRecording(ctx, "carol"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("after stop: err = %v, want ErrNotFound", err)
		}
		got, err := s.Recording(ctx, "r1")
		if err != nil || got.State != enforce.RecordingStopped || got.StoppedBy != "alice" {
			t.Fatalf("stopped recording = %+v, %v", got, err)
		}
	})

	t.Run("a recording moved to another target leaves the first one", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		r := rec("r1", "carol", t0, enforce.RecordingActive)
		mustSaveRecording(t, s, r)
		r.Target = "dave"
		mustSaveRecording(t, s, r)
		if _, err := s.ActiveRecording(ctx, "carol"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("old target: err = %v, want ErrNotFound", err)
		}
		if got, err := s.ActiveRecording(ctx, "dave"); err != nil || got.ID != "r1" {
			t.Fatalf("new target: %s, %v", got.ID, err)
		}
	})
}

func sameRecording(a, b enforce.Recording) bool {
	if len(a.Pauses) != len(b.Pauses) {
		return false
	}
	for i := range a.Pauses {
		pa, pb := a.Pauses[i], b.Pauses[i]
		if pa.By != pb.By || pa.ResumedBy != pb.ResumedBy || !pa.At.Equal(pb.At) || !pa.ResumedAt.Equal(pb.ResumedAt) {
			return false
		}
	}
	return a.ID == b.ID && a.Name == b.Name && a.PBX == b.PBX && a.Target == b.Target && a.Queue == b.Queue &&
		a.Caller == b.Caller && a.Channel == b.Channel && a.StartedBy == b.StartedBy && a.StartedAt.Equal(b.StartedAt) &&
		a.StoppedBy == b.StoppedBy && a.StoppedAt.Equal(b.StoppedAt) && a.State == b.State
}

// RunAuditLog runs the contract of a enforce.AuditLog; newLog returns an
// empty, unbounded log of its own for each subtest.
func RunAuditLog(t *testing.T, newLog func(t *testing.T) enforce.AuditLog) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	record := func(i int, user, action, decision string) enforce.AuditRecord {
		return enforce.AuditRecord{Time: t0.Add(time.Duration(i) * time.Minute), Source: "asterisk", User: user,
			Action: action, Target: "carol", Queue: "sales", Decision: decision, Reason: "granted",
			Caller: "+33 1 23 45 ** **", Channels: []string{"PJSIP/1001-1"}}
	}
	fill := func(t *testing.T, l enforce.AuditLog) []enforce.AuditRecord {
		t.Helper()
		var recs []enforce.AuditRecord
		for i := range 10 {
			user, decision := "alice", "allow"
			if i%2 == 1 {
				user, decision = "bob", "deny"
			}
			r := record(i, user, "monitor.listen", decision)
			if i == 9 {
				r.Action, r.Target = "profile.assign", "dave"
			}
			if err := l.Audit(testContext(t), r); err != nil {
				t.Fatalf("Audit: %v", err)
			}
			recs = append(recs, r)
		}
		return recs
	}

	t.Run("records read back in order, whole", func(t *testing.T) {
		l := newLog(t)
		want := fill(t, l)
		got, err := l.ReadAudit(testContext(t), enforce.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("read %d records, want %d", len(got), len(want))
		}
		for i := range got {
			if !got[i].Time.Equal(want[i].Time) || got[i].User != want[i].User || got[i].Caller != want[i].Caller ||
				!slices.Equal(got[i].Channels, want[i].Channels) || got[i].Action != want[i].Action {
				t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	})

	t.Run("filters select by user, target, action, decision and time", func(t *testing.T) {
		l := newLog(t)
		fill(t, l)
		tests := []struct {
			name string
			f    enforce.AuditFilter
			want int
		}{
			{"user", enforce.AuditFilter{User: "bob"}, 5},
			{"decision", enforce.AuditFilter{Decision: "allow"}, 5},
			{"action", enforce.AuditFilter{Action: "profile.assign"}, 1},
			{"target", enforce.AuditFilter{Target: "carol"}, 9},
			{"since is inclusive", enforce.AuditFilter{Since: t0.Add(7 * time.Minute)}, 3},
			{"until is exclusive", enforce.AuditFilter{Until: t0.Add(2 * time.Minute)}, 2},
			{"combined", enforce.AuditFilter{User: "alice", Since: t0.Add(2 * time.Minute), Until: t0.Add(7 * time.Minute)}, 3},
			{"no match", enforce.AuditFilter{User: "nobody"}, 0},
		}
		for _, tt := range tests {
			got, err := l.ReadAudit(testContext(t), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("%s: %d records, want %d", tt.name, len(got), tt.want)
			}
		}
	})

	t.Run("a limit keeps the most recent records, oldest first", func(t *testing.T) {
		l := newLog(t)
		want := fill(t, l)
		got, err := l.ReadAudit(testContext(t), enforce.AuditFilter{User: "alice", Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got[0].Time.Equal(want[6].Time) || !got[1].Time.Equal(want[8].Time) {
			t.Fatalf("limited read = %+v", got)
		}
	})

	t.Run("an intact trail verifies", func(t *testing.T) {
		l := newLog(t)
		fill(t, l)
		res, err := l.VerifyAudit(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() || res.Checked != 10 || res.Truncated {
			t.Fatalf("VerifyAudit = %+v, want 10 checked, intact", res)
		}
	})

	t.Run("records of every length across hash block boundaries verify", func(t *testing.T) {
		l := newLog(t)
		detail := ""
		for i := range 140 {
			r := enforce.AuditRecord{Time: t0, Action: "monitor.listen", Detail: detail}
			if err := l.Audit(testContext(t), r); err != nil {
				t.Fatal(err)
			}
			detail += string(rune('a' + i%26))
		}
		res, err := l.VerifyAudit(testContext(t))
		if err != nil || !res.OK() || res.Checked != 140 {
			t.Fatalf("VerifyAudit = %+v, %v; want 140 checked, intact", res, err)
		}
	})

	t.Run("an empty trail verifies", func(t *testing.T) {
		res, err := newLog(t).VerifyAudit(testContext(t))
		if err != nil || !res.OK() || res.Checked != 0 {
			t.Fatalf("VerifyAudit = %+v, %v", res, err)
		}
	})

	t.Run("concurrent appends keep one chain", func(t *testing.T) {
		l := newLog(t)
		const writers, each = 4, 25
		errs := concurrently(writers, func(w int) error {
			for i := range each {
				if err := l.Audit(testContext(t), record(i, "w"+strconv.Itoa(w), "monitor.listen", "allow")); err != nil {
					return err
				}
			}
			return nil
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		res, err := l.VerifyAudit(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() || res.Checked != writers*each {
			t.Fatalf("VerifyAudit after concurrent appends = %+v, want %d checked, intact", res, writers*each)
		}
	})
}
