package enforce_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// patchWorld generates small random policies and patches over a fixed pool
// of names, so that patches often collide with what exists: identities
// moving between users or naming a user, profiles removed while in use or
// while delegable.
type patchWorld struct {
	rnd *rand.Rand
}

func (w *patchWorld) pick(prefix string, n int) string { return prefix + strconv.Itoa(w.rnd.IntN(n)) }

func (w *patchWorld) profile(name string) enforce.Profile {
	monitor := enforce.NewActionSet(enforce.MonitorListen, enforce.MonitorBarge)
	pr := enforce.Profile{Name: name, MaskDigits: w.rnd.IntN(3), NotifyTarget: w.rnd.IntN(2) == 0}
	switch w.rnd.IntN(4) {
	case 0:
		pr.Grants = []enforce.Grant{{Actions: monitor, Scopes: scopes(assigned, none, none, none)}}
	case 1:
		pr.Grants = []enforce.Grant{{Actions: monitor, Scopes: scopes(list(w.pick("q", 4), w.pick("q", 4)), none, none, none)}}
	case 2:
		pr.Grants = []enforce.Grant{
			{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(none, assigned, none, none)},
			{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{w.pick("p", 6)}, Scopes: scopes(assigned, none, none, none)},
		}
	case 3:
		pr.Grants = []enforce.Grant{{Actions: 0}} // invalid
		if w.rnd.IntN(4) > 0 {
			pr.Grants = nil
		}
	}
	return pr
}

func (w *patchWorld) user(id string) enforce.User {
	u := enforce.User{ID: id, Queues: []string{w.pick("q", 4)}, Teams: []string{w.pick("t", 3)}}
	if w.rnd.IntN(5) > 0 {
		u.Profile = w.pick("p", 6)
	}
	for range w.rnd.IntN(3) {
		if w.rnd.IntN(8) == 0 {
			u.Identities = append(u.Identities, w.pick("u", 12)) // an identity naming a user
		} else {
			u.Identities = append(u.Identities, w.pick("PJSIP/10", 16))
		}
	}
	return u
}

// patch returns a random patch naming each entry at most once (a patch
// that names one twice is refused; TestPatchRefusals covers it).
func (w *patchWorld) patch() enforce.PolicyPatch {
	var pt enforce.PolicyPatch
	named := map[string]bool{}
	for range w.rnd.IntN(3) {
		id := w.pick("u", 12)
		if named[id] {
			continue
		}
		named[id] = true
		if w.rnd.IntN(3) == 0 {
			pt.RemovedUsers = append(pt.RemovedUsers, id)
		} else {
			pt.Users = append(pt.Users, w.user(id))
		}
	}
	if w.rnd.IntN(3) == 0 {
		if w.rnd.IntN(3) == 0 {
			pt.RemovedProfiles = append(pt.RemovedProfiles, w.pick("p", 6))
		} else {
			pt.Profiles = append(pt.Profiles, w.profile(w.pick("p", 6)))
		}
	}
	if w.rnd.IntN(10) == 0 {
		pt.Protected = &enforce.Protected{Users: []string{w.pick("u", 12)}, Queues: []string{w.pick("q", 4)}}
	}
	return pt
}

// sameDecisions compares two snapshots on every user, action and scope of
// the world, and on identity resolution.
func sameDecisions(t *testing.T, step int, want, got *enforce.Snapshot) {
	t.Helper()
	now := mustTime(t, "2026-11-23T09:00:00Z")
	if want.UserCount() != got.UserCount() {
		t.Fatalf("step %d: UserCount %d, want %d", step, got.UserCount(), want.UserCount())
	}
	for ui := range 12 {
		user := "u" + strconv.Itoa(ui)
		for _, a := range enforce.Actions() {
			for qi := range 5 {
				for ai := range 13 {
					req := enforce.Request{User: user, Action: a, Queue: "q" + strconv.Itoa(qi), Agent: "u" + strconv.Itoa(ai),
						AssignProfile: "p" + strconv.Itoa(qi), AssignQueues: []string{"q" + strconv.Itoa(qi)}}
					if w, g := enforce.Decide(want, &req, now), enforce.Decide(got, &req, now); w != g {
						t.Fatalf("step %d: %+v: patched snapshot decides %+v, a fresh one %+v", step, req, g, w)
					}
				}
			}
		}
		for _, id := range []string{user, "PJSIP/10" + strconv.Itoa(ui), "PJSIP/10" + strconv.Itoa(ui) + "-0000002a"} {
			wu, wok := want.ResolveIdentity(id)
			gu, gok := got.ResolveIdentity(id)
			if wu != gu || wok != gok {
				t.Fatalf("step %d: ResolveIdentity(%q) = %q,%v, want %q,%v", step, id, gu, gok, wu, wok)
			}
		}
	}
	if d := enforce.DiffPolicies(want.Policy(), got.Policy()); !d.Empty() {
		t.Fatalf("step %d: Policy() of the patched snapshot differs: %+v", step, d)
	}
}

// TestPatchDecidesLikeAFreshSnapshot applies thousands of random patches
// and checks, after each, that Patch accepts exactly what NewSnapshot
// accepts on the patched policy and decides the same.
func TestPatchDecidesLikeAFreshSnapshot(t *testing.T) {
	w := &patchWorld{rnd: rand.New(rand.NewPCG(1, 2))}
	policy := enforce.Policy{}
	for i := range 6 {
		pr := w.profile("p" + strconv.Itoa(i))
		pr.Grants = []enforce.Grant{{Actions: enforce.NewActionSet(enforce.MonitorListen), Scopes: scopes(assigned, none, none, none)}}
		policy.Profiles = append(policy.Profiles, pr)
	}
	for i := range 8 {
		policy.Users = append(policy.Users, enforce.User{ID: "u" + strconv.Itoa(i), Profile: "p" + strconv.Itoa(i%6),
			Queues: []string{"q" + strconv.Itoa(i%4)}, Identities: []string{"PJSIP/10" + strconv.Itoa(i)}})
	}
	cur := MustSnapshot(t, policy)
	accepted, refused := 0, 0
	for step := range 3000 {
		pt := w.patch()
		ref := pt.Apply(policy)
		want, wantErr := enforce.NewSnapshot(ref, uint64(step+2))
		got, gotErr := cur.Patch(pt, uint64(step+2))
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("step %d: patch %+v: Patch error %v, NewSnapshot error %v", step, pt, gotErr, wantErr)
		}
		if gotErr != nil {
			refused++
			continue
		}
		accepted++
		if got.Generation() != uint64(step+2) {
			t.Fatalf("generation %d", got.Generation())
		}
		sameDecisions(t, step, want, got)
		cur, policy = got, ref
	}
	if accepted < 500 || refused < 100 {
		t.Fatalf("%d patches accepted, %d refused: the generator no longer exercises both", accepted, refused)
	}
}

func TestPatchRefusals(t *testing.T) {
	base := MustSnapshot(t, enforce.Policy{
		Profiles: []enforce.Profile{
			{Name: "sup", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.ProfileAssign), Profiles: []string{"teacher"}, Scopes: scopes(assigned, none, none, none)}}},
			{Name: "teacher", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.RecordingPlayback), Scopes: scopes(assigned, none, none, none)}}},
			{Name: "spare"},
		},
		Users: []enforce.User{
			{ID: "alice", Profile: "sup", Identities: []string{"PJSIP/1001"}},
			{ID: "bob", Profile: "teacher", Identities: []string{"PJSIP/1002"}},
		},
	})
	for name, tc := range map[string]struct {
		patch enforce.PolicyPatch
		want  string
	}{
		"a removed profile still assigned":   {enforce.PolicyPatch{RemovedProfiles: []string{"teacher"}, Profiles: nil}, `profile "teacher": removed but still assigned to 1 users`},
		"a user given an unknown profile":    {enforce.PolicyPatch{Users: []enforce.User{{ID: "carol", Profile: "ghost"}}}, `user "carol": unknown profile "ghost"`},
		"an identity owned by another user":  {enforce.PolicyPatch{Users: []enforce.User{{ID: "carol", Identities: []string{"PJSIP/1001"}}}}, `identity "PJSIP/1001" already belongs to user "alice"`},
		"an identity that is another user":   {enforce.PolicyPatch{Users: []enforce.User{{ID: "carol", Identities: []string{"bob"}}}}, `identity "bob" is the id of user "bob"`},
		"a user id that is an identity":      {enforce.PolicyPatch{Users: []enforce.User{{ID: "PJSIP/1002"}}}, `identity "PJSIP/1002" is the id of user "PJSIP/1002"`},
		"an invalid grant":                   {enforce.PolicyPatch{Profiles: []enforce.Profile{{Name: "x", Grants: []enforce.Grant{{}}}}}, `profile "x" grant 0: actions`},
		"a delegable profile removed":        {enforce.PolicyPatch{RemovedProfiles: []string{"teacher"}, Users: []enforce.User{{ID: "bob"}}}, `profile "sup" grant 0: profiles: unknown profile "teacher"`},
		"a user both put and removed":        {enforce.PolicyPatch{Users: []enforce.User{{ID: "bob"}}, RemovedUsers: []string{"bob"}}, `user "bob": both put and removed`},
		"a window that ends before it opens": {enforce.PolicyPatch{Users: []enforce.User{{ID: "bob", Profile: "teacher", ValidFrom: time.Unix(10, 0), ValidUntil: time.Unix(5, 0)}}}, `valid_until must be after valid_from`},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := base.Patch(tc.patch, 2)
			if err == nil || s != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Patch = %v, %v; want an error containing %q", s, err, tc.want)
			}
		})
	}
	t.Run("an identity moves from one user to another in one patch", func(t *testing.T) {
		s, err := base.Patch(enforce.PolicyPatch{Users: []enforce.User{
			{ID: "alice", Profile: "sup"}, {ID: "bob", Profile: "teacher", Identities: []string{"PJSIP/1001"}}}}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := s.ResolveIdentity("PJSIP/1001-00000001"); u != "bob" {
			t.Fatalf("PJSIP/1001 resolves to %q, want bob", u)
		}
		if u, _ := base.ResolveIdentity("PJSIP/1001"); u != "alice" {
			t.Fatalf("the base snapshot changed: PJSIP/1001 resolves to %q", u)
		}
	})
}

// BenchmarkPatch measures building the next snapshot of a 100k-user policy
// for one user changed and for one profile changed, against NewSnapshot
// (BenchmarkNewSnapshot) which a full reload pays.
func BenchmarkPatch(b *testing.B) {
	p := genPolicy(b)
	base := MustSnapshot(b, p)
	b.Run("one-user", func(b *testing.B) {
		b.ReportAllocs()
		s := base
		u := p.Users[1234]
		for i := 0; b.Loop(); i++ {
			u.Profile = "p" + strconv.Itoa(i%benchProfiles)
			next, err := s.Patch(enforce.PolicyPatch{Users: []enforce.User{u}}, uint64(i+2))
			if err != nil {
				b.Fatal(err)
			}
			s = next
		}
	})
	b.Run("one-profile", func(b *testing.B) {
		b.ReportAllocs()
		s := base
		pr := p.Profiles[234]
		for i := 0; b.Loop(); i++ {
			pr.MaskDigits = i % 4
			next, err := s.Patch(enforce.PolicyPatch{Profiles: []enforce.Profile{pr}}, uint64(i+2))
			if err != nil {
				b.Fatal(err)
			}
			s = next
		}
	})
}

// BenchmarkDecideAfterPatches is BenchmarkDecide's allow path on a snapshot
// whose indexes carry a delta (100 patched users): the layered lookup must
// keep the hot path allocation-free and within budget.
func BenchmarkDecideAfterPatches(b *testing.B) {
	p := genPolicy(b)
	s := MustSnapshot(b, p)
	for i := range 100 {
		u := p.Users[i*7+3]
		u.Queues = append(slices.Clone(u.Queues), "extra")
		var err error
		if s, err = s.Patch(enforce.PolicyPatch{Users: []enforce.User{u}}, uint64(i+2)); err != nil {
			b.Fatal(err)
		}
	}
	now := mustTime(b, "2026-11-23T09:00:00Z")
	req := enforce.Request{User: "u1234", Action: enforce.MonitorListen, Queue: "q2345", Agent: "u4321"}
	if d := enforce.Decide(s, &req, now); !d.Allow {
		b.Fatalf("decision %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		enforce.Decide(s, &req, now)
	}
}
