package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// IncrementalStore is a writable policy store with a change log and
// entry-by-entry applies (memory.Store, redisstore.Store).
type IncrementalStore interface {
	enforce.PolicyStore
	enforce.ChangeSource
	enforce.PatchStore
}

// load reads the whole policy and compiles it, tagged with the store's
// epoch, as a Loader does.
func load(t *testing.T, s IncrementalStore) (*enforce.Snapshot, enforce.Version) {
	t.Helper()
	p, v, err := s.PolicyVersion(testContext(t))
	if err != nil {
		t.Fatalf("PolicyVersion: %v", err)
	}
	snap, err := enforce.NewSnapshot(p, v.Gen)
	if err != nil {
		t.Fatalf("stored policy does not compile: %v", err)
	}
	return snap.WithOrigin(v.Epoch), v
}

// follow patches snap with the changes since v, as a Loader does.
func follow(t *testing.T, s IncrementalStore, snap *enforce.Snapshot, v enforce.Version) (*enforce.Snapshot, enforce.Version) {
	t.Helper()
	patch, nv, err := s.Changes(testContext(t), v)
	if err != nil {
		t.Fatalf("Changes since %+v: %v", v, err)
	}
	next, err := snap.Patch(patch, nv.Gen)
	if err != nil {
		t.Fatalf("the change log's patch does not apply: %v", err)
	}
	return next, nv
}

// assertSameSnapshot fails when the patched snapshot holds another policy
// than a fresh load.
func assertSameSnapshot(t *testing.T, got, want *enforce.Snapshot) {
	t.Helper()
	if got.Generation() != want.Generation() || got.Origin() != want.Origin() {
		t.Fatalf("patched snapshot at generation %d origin %q, fresh load at %d origin %q",
			got.Generation(), got.Origin(), want.Generation(), want.Origin())
	}
	assertSamePolicy(t, got.Policy(), want.Policy())
}

// RunIncremental runs the contract of the change log and of ApplyPatch;
// newStore returns an empty store of its own for each subtest.
func RunIncremental(t *testing.T, newStore func(t *testing.T) IncrementalStore) {
	t.Run("the change log brings a snapshot to the store's generation", func(t *testing.T) {
		s := newStore(t)
		mustApply(t, s, Policy(t), enforce.Unconditionally())
		snap, v := load(t, s)
		// Whole-policy applies and patches, several generations at once.
		p := Policy(t)
		p.Users[0].Queues = []string{"sales"}
		p.Users = p.Users[:3]                                  // dave removed
		p.Profiles[1].Grants[0].RecordedWithin = 0             // teacher changed
		p.Protected.Queues = append(p.Protected.Queues, "vip") // protected changed
		mustApply(t, s, p, enforce.Unconditionally())
		base, _ := load(t, s)
		if _, _, err := s.ApplyPatch(testContext(t), base, enforce.PolicyPatch{
			Users:    []enforce.User{{ID: "erin", Profile: "teacher", Queues: []string{"sales"}}},
			Profiles: []enforce.Profile{{Name: "new", Grants: []enforce.Grant{{Actions: enforce.NewActionSet(enforce.MonitorListen)}}}},
		}); err != nil {
			t.Fatalf("ApplyPatch: %v", err)
		}
		got, gv := follow(t, s, snap, v)
		want, wv := load(t, s)
		if gv != wv || wv.Gen != v.Gen+2 {
			t.Fatalf("Changes brought version %+v, store is at %+v (from %+v)", gv, wv, v)
		}
		assertSameSnapshot(t, got, want)
		if again, av := follow(t, s, got, gv); av != gv || again.Generation() != got.Generation() {
			t.Fatalf("Changes at the store's version moved it to %+v", av)
		}
	})
	t.Run("the change log refuses what it cannot bring forward", func(t *testing.T) {
		s := newStore(t)
		mustApply(t, s, Policy(t), enforce.Unconditionally())
		_, v := load(t, s)
		for name, since := range map[string]enforce.Version{
			"another epoch":      {Epoch: v.Epoch + "x", Gen: v.Gen},
			"a generation ahead": {Epoch: v.Epoch, Gen: v.Gen + 5},
		} {
			if _, _, err := s.Changes(testContext(t), since); !errors.Is(err, enforce.ErrChangelogGap) {
				t.Errorf("%s: Changes = %v, want ErrChangelogGap", name, err)
			}
		}
		big := BigPolicy(t, 1200)
		mustApply(t, s, big, enforce.Unconditionally())
		if _, _, err := s.Changes(testContext(t), v); !errors.Is(err, enforce.ErrChangelogGap) {
			t.Errorf("after a 1200-user apply: Changes = %v, want ErrChangelogGap (reload whole)", err)
		}
	})
	t.Run("a patch writes what changes and is seen by a fresh read", func(t *testing.T) {
		s := newStore(t)
		gen0, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		base, _ := load(t, s)
		alice, _ := base.User("alice")
		alice.Profile = "teacher"
		dave, _ := base.User("dave") // unchanged: not in the diff
		gen, diff, err := s.ApplyPatch(testContext(t), base, enforce.PolicyPatch{
			Users: []enforce.User{alice, dave}, RemovedUsers: []string{"bob", "nobody"}})
		if err != nil {
			t.Fatalf("ApplyPatch: %v", err)
		}
		if gen != gen0+1 || join(diff.ChangedUsers) != "alice" || join(diff.RemovedUsers) != "bob" || len(diff.AddedUsers) != 0 {
			t.Fatalf("ApplyPatch = generation %d, diff %+v", gen, diff)
		}
		p, g := mustPolicy(t, s)
		want, _ := base.Patch(enforce.PolicyPatch{Users: []enforce.User{alice}, RemovedUsers: []string{"bob"}}, gen)
		if g != gen {
			t.Fatalf("store at generation %d, want %d", g, gen)
		}
		assertSamePolicy(t, p, want.Policy())
	})
	t.Run("a patch on a stale or foreign base conflicts and writes nothing", func(t *testing.T) {
		s := newStore(t)
		mustApply(t, s, Policy(t), enforce.Unconditionally())
		base, _ := load(t, s)
		p := Policy(t)
		p.Users = p.Users[:2]
		gen, _ := mustApply(t, s, p, enforce.Unconditionally())
		for name, b := range map[string]*enforce.Snapshot{"stale": base, "another epoch": mustReorigin(t, s, "elsewhere")} {
			_, _, err := s.ApplyPatch(testContext(t), b, enforce.PolicyPatch{RemovedUsers: []string{"alice"}})
			if !errors.Is(err, enforce.ErrConflict) {
				t.Errorf("%s base: ApplyPatch = %v, want ErrConflict", name, err)
			}
		}
		if _, g := mustPolicy(t, s); g != gen {
			t.Fatalf("a refused patch moved the generation to %d", g)
		}
	})
	t.Run("an invalid patch is refused and writes nothing", func(t *testing.T) {
		s := newStore(t)
		gen, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		base, _ := load(t, s)
		for name, pt := range map[string]enforce.PolicyPatch{
			"unknown profile":          {Users: []enforce.User{{ID: "erin", Profile: "ghost"}}},
			"profile still assigned":   {RemovedProfiles: []string{"teacher"}},
			"identity of another user": {Users: []enforce.User{{ID: "erin", Identities: []string{"PJSIP/1001"}}}},
		} {
			if _, _, err := s.ApplyPatch(testContext(t), base, pt); !errors.Is(err, enforce.ErrInvalidPolicy) {
				t.Errorf("%s: ApplyPatch = %v, want ErrInvalidPolicy", name, err)
			}
		}
		if _, g := mustPolicy(t, s); g != gen {
			t.Fatalf("a refused patch moved the generation to %d", g)
		}
	})
	t.Run("an exact apply at generation 0 lands only on a store never written", func(t *testing.T) {
		s := newStore(t)
		gen, _, err := s.ApplyPolicy(testContext(t), Policy(t), enforce.IfGeneration(0))
		if err != nil || gen != 1 {
			t.Fatalf("first ApplyPolicy(IfGeneration(0)) = %d, %v; want generation 1", gen, err)
		}
		p := Policy(t)
		p.Users = p.Users[:1]
		if _, _, err := s.ApplyPolicy(testContext(t), p, enforce.IfGeneration(0)); !errors.Is(err, enforce.ErrConflict) {
			t.Fatalf("second ApplyPolicy(IfGeneration(0)) = %v, want ErrConflict", err)
		}
		if got, g := mustPolicy(t, s); g != 1 || len(got.Users) != len(Policy(t).Users) {
			t.Fatalf("a refused exact apply changed the store: generation %d, %d users", g, len(got.Users))
		}
	})
	t.Run("a patch that changes nothing keeps the generation", func(t *testing.T) {
		s := newStore(t)
		gen, _ := mustApply(t, s, Policy(t), enforce.Unconditionally())
		base, _ := load(t, s)
		alice, _ := base.User("alice")
		g, diff, err := s.ApplyPatch(testContext(t), base, enforce.PolicyPatch{Users: []enforce.User{alice}, RemovedUsers: []string{"nobody"}})
		if err != nil || g != gen || !diff.Empty() {
			t.Fatalf("ApplyPatch = %d, %+v, %v; want generation %d, empty diff", g, diff, err, gen)
		}
	})
}

// mustReorigin returns the store's current snapshot tagged with another
// origin: a snapshot of the same generation number from another history.
func mustReorigin(t *testing.T, s IncrementalStore, origin string) *enforce.Snapshot {
	snap, _ := load(t, s)
	return snap.WithOrigin(origin)
}

func join(l []string) string { return strings.Join(l, ",") }
