package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
)

// unloadableSource is a memory.Store that can be made to hold, one
// generation ahead of its real content, a policy no callwarden can load:
// its generation reads keep succeeding, but every read of that generation
// (whole or through the change log) fails the way a hand-edited store
// fails.
type unloadableSource struct {
	*memory.Store
	// broken is the error a read of the unloadable generation fails with
	// (nil: the store is healthy). A *patchFailure makes the change log
	// return a patch that does not apply instead.
	broken   atomic.Pointer[error]
	genReads atomic.Int64
	// ghost is the unloadable generation's whole policy when broken is
	// errPatchDoesNotApply: alice deleted, zed on a missing profile.
	ghost enforce.Policy
}

// errPatchDoesNotApply selects a change log that returns a patch giving a
// user a profile that does not exist (it decodes, but does not validate).
var errPatchDoesNotApply = errors.New("patch does not apply")

func (u *unloadableSource) brokenErr() error {
	if p := u.broken.Load(); p != nil {
		return *p
	}
	return nil
}

func (u *unloadableSource) Generation(ctx context.Context) (uint64, error) {
	u.genReads.Add(1)
	gen, err := u.Store.Generation(ctx)
	if u.brokenErr() != nil {
		gen++
	}
	return gen, err
}

func (u *unloadableSource) Policy(ctx context.Context) (enforce.Policy, uint64, error) {
	p, v, err := u.PolicyVersion(ctx)
	return p, v.Gen, err
}

func (u *unloadableSource) PolicyVersion(ctx context.Context) (enforce.Policy, enforce.Version, error) {
	p, v, err := u.Store.PolicyVersion(ctx)
	switch broken := u.brokenErr(); {
	case err != nil || broken == nil:
		return p, v, err
	case errors.Is(broken, errPatchDoesNotApply):
		// The whole policy decodes but references a missing profile.
		v.Gen++
		return u.ghost, v, nil
	default:
		return enforce.Policy{}, enforce.Version{}, broken
	}
}

func (u *unloadableSource) Changes(ctx context.Context, since enforce.Version) (enforce.PolicyPatch, enforce.Version, error) {
	patch, v, err := u.Store.Changes(ctx, since)
	switch broken := u.brokenErr(); {
	case err != nil || broken == nil:
		return patch, v, err
	case errors.Is(broken, errPatchDoesNotApply):
		v.Gen++
		return enforce.PolicyPatch{RemovedUsers: []string{"alice"}, Users: []enforce.User{{ID: "zed", Profile: "ghost"}}}, v, nil
	default:
		return enforce.PolicyPatch{}, enforce.Version{}, broken
	}
}

// TestLoaderFailsClosedWhenTheStoreGenerationCannotBeLoaded: a store that
// answers but holds a generation this daemon cannot load (a hand edit, a
// newer callwarden) does not keep the old snapshot fresh: the snapshot is
// verified current only by reads that match it or loads that succeed, so
// past the staleness bound decisions deny store_unavailable and Ready
// says which generation cannot be loaded, even though every generation
// read succeeds. Fixing the store brings decisions back.
func TestLoaderFailsClosedWhenTheStoreGenerationCannotBeLoaded(t *testing.T) {
	corrupt := fmt.Errorf("%w: profile %q grant 0: scopes: unknown dimension %q", enforce.ErrCorrupt, "newer", "regions")
	for _, tt := range []struct {
		name        string
		incremental bool
		broken      error
	}{
		{"full loads, a user on a missing profile", false, errPatchDoesNotApply},
		{"full loads, an entry that does not decode", false, corrupt},
		{"change log, a patch that does not apply", true, errPatchDoesNotApply},
		{"change log, an entry that does not decode", true, corrupt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &unloadableSource{Store: memory.NewStore(), ghost: storetest.Policy(t)}
			src.ghost.Users = append(src.ghost.Users[1:], enforce.User{ID: "zed", Profile: "ghost"})
			if _, _, err := src.ApplyPolicy(testContext(t), storetest.Policy(t), enforce.Unconditionally()); err != nil {
				t.Fatal(err)
			}
			clock := newFakeClock()
			var failures atomic.Int64
			opts := cache.LoaderOptions{Store: src, Generation: src.Generation, PollInterval: 5 * time.Millisecond,
				Staleness: 30 * time.Second, Now: clock.Now,
				OnReload: func(_ uint64, _ time.Duration, err error) {
					if err != nil {
						failures.Add(1)
					}
				}}
			if tt.incremental {
				opts.Incremental = src
			}
			l := startLoader(t, opts)
			waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
			loaded := l.Generation()

			src.broken.Store(&tt.broken)
			waitFor(t, "a load of the new generation fails", func() bool { return failures.Load() > 0 })
			if !allowsAlice(l.Snapshot()) || l.Ready() != nil {
				t.Fatalf("within the bound: allow=%v ready=%v, want the last snapshot served", allowsAlice(l.Snapshot()), l.Ready())
			}
			clock.Advance(31 * time.Second)
			reads := src.genReads.Load()
			waitFor(t, "more generation reads succeed", func() bool { return src.genReads.Load() > reads+3 })
			if s := l.Snapshot(); s != nil {
				t.Fatalf("snapshot of generation %d still served 31s after the store moved to a generation that cannot be loaded (staleness 30s)", s.Generation())
			}
			d := enforce.Decide(l.Snapshot(), &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales", Agent: "carol"}, clock.Now())
			if d.Allow || d.Reason != enforce.ReasonStoreUnavailable {
				t.Fatalf("decision = %+v, want store_unavailable", d)
			}
			err := l.Ready()
			want := fmt.Sprintf("store generation %d cannot be loaded", loaded+1)
			if !errors.Is(err, cache.ErrStale) || !errors.Is(err, cache.ErrUnloadable) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Ready = %v, want ErrStale and ErrUnloadable saying %q", err, want)
			}

			src.broken.Store(nil) // the store is fixed
			waitFor(t, "decisions come back", func() bool { return l.Snapshot() != nil })
			if !allowsAlice(l.Snapshot()) || l.Ready() != nil {
				t.Fatalf("after the fix: allow=%v ready=%v", allowsAlice(l.Snapshot()), l.Ready())
			}
		})
	}
}
