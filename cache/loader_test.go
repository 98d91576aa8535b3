package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
)

// flakyStore is a memory.Store that can be made unreachable, or made to
// serve a given policy, and counts full reads.
type flakyStore struct {
	*memory.Store
	down   atomic.Bool
	reads  atomic.Int64
	served atomic.Pointer[enforce.Policy]
}

func (f *flakyStore) Policy(ctx context.Context) (enforce.Policy, uint64, error) {
	f.reads.Add(1)
	if f.down.Load() {
		return enforce.Policy{}, 0, fmt.Errorf("dial: %w", enforce.ErrUnavailable)
	}
	p, gen, err := f.Store.Policy(ctx)
	if s := f.served.Load(); s != nil {
		return *s, gen + 100, nil
	}
	return p, gen, err
}

func (f *flakyStore) Generation(ctx context.Context) (uint64, error) {
	if f.down.Load() {
		return 0, fmt.Errorf("dial: %w", enforce.ErrUnavailable)
	}
	gen, err := f.Store.Generation(ctx)
	if f.served.Load() != nil {
		gen += 100
	}
	return gen, err
}

// fakeClock is a settable clock for staleness.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// startLoader runs a loader until the test ends.
func startLoader(t *testing.T, opts cache.LoaderOptions) *cache.Loader {
	t.Helper()
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = time.Millisecond, 10*time.Millisecond
	}
	l, err := cache.NewLoader(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return l
}

func newFlaky(t *testing.T) *flakyStore {
	t.Helper()
	f := &flakyStore{Store: memory.NewStore()}
	if _, _, err := f.ApplyPolicy(testContext(t), storetest.Policy(t), enforce.Unconditionally()); err != nil {
		t.Fatal(err)
	}
	return f
}

func allowsAlice(s *enforce.Snapshot) bool {
	d := enforce.Decide(s, &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales", Agent: "carol"},
		time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	return d.Allow
}

func TestLoaderNeverServesBeforeTheFirstLoad(t *testing.T) {
	f := newFlaky(t)
	f.down.Store(true)
	l := startLoader(t, cache.LoaderOptions{Store: f, Generation: f.Generation, PollInterval: 10 * time.Millisecond, Staleness: time.Minute})
	waitFor(t, "the loader has retried", func() bool { return f.reads.Load() >= 3 })
	if s := l.Snapshot(); s != nil {
		t.Fatal("snapshot served before any load")
	}
	if d := enforce.Decide(l.Snapshot(), &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales"}, time.Now()); d.Allow || d.Reason != enforce.ReasonStoreUnavailable {
		t.Fatalf("decision before load = %+v, want store_unavailable", d)
	}
	err := l.Ready()
	if !errors.Is(err, cache.ErrNoSnapshot) || !errors.Is(err, enforce.ErrUnavailable) {
		t.Fatalf("Ready = %v, want ErrNoSnapshot wrapping the store error", err)
	}
	f.down.Store(false)
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	if err := l.Ready(); err != nil {
		t.Fatalf("Ready after load = %v", err)
	}
	if !allowsAlice(l.Snapshot()) {
		t.Fatal("loaded snapshot does not allow alice")
	}
}

func TestLoaderFollowsNotifications(t *testing.T) {
	f := newFlaky(t)
	// A poll interval of an hour: only the notification can bring the change.
	l := startLoader(t, cache.LoaderOptions{Store: f, Watch: f.Watch, Generation: f.Generation, PollInterval: time.Hour})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	p := storetest.Policy(t)
	p.Users[0].Profile = "" // alice loses her profile
	gen, _, err := f.ApplyPolicy(testContext(t), p, enforce.Unconditionally())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new generation is loaded", func() bool { return l.Generation() == gen })
	if allowsAlice(l.Snapshot()) {
		t.Fatal("alice still allowed after her profile was removed")
	}
}

func TestLoaderCatchesMissedNotificationsByPolling(t *testing.T) {
	f := newFlaky(t)
	l := startLoader(t, cache.LoaderOptions{Store: f, Generation: f.Generation, PollInterval: 10 * time.Millisecond})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	p := storetest.Policy(t)
	p.Users = p.Users[1:]
	gen, _, err := f.ApplyPolicy(testContext(t), p, enforce.Unconditionally())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poll loads the new generation", func() bool { return l.Generation() == gen })
}

func TestLoaderIgnoresOldNotifications(t *testing.T) {
	f := newFlaky(t)
	notes := make(chan uint64, 1)
	watch := func(ctx context.Context) (<-chan uint64, error) {
		out := make(chan uint64)
		go func() {
			defer close(out)
			for {
				select {
				case <-ctx.Done():
					return
				case g := <-notes:
					select {
					case out <- g:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		return out, nil
	}
	l := startLoader(t, cache.LoaderOptions{Store: f, Watch: watch, Generation: f.Generation, PollInterval: time.Hour})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	// The subscription triggers one check (generation unchanged: no read).
	time.Sleep(20 * time.Millisecond)
	before := f.reads.Load()
	notes <- l.Generation()
	notes <- l.Generation() - 1
	time.Sleep(50 * time.Millisecond)
	if after := f.reads.Load(); after != before {
		t.Fatalf("old notifications caused %d reloads", after-before)
	}
}

func TestLoaderStalenessBound(t *testing.T) {
	f := newFlaky(t)
	clock := newFakeClock()
	l := startLoader(t, cache.LoaderOptions{Store: f, Generation: f.Generation, PollInterval: 5 * time.Millisecond,
		Staleness: 30 * time.Second, Now: clock.Now})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })

	t.Run("an idle healthy store does not go stale", func(t *testing.T) {
		clock.Advance(time.Minute)
		waitFor(t, "a poll refreshes the contact", func() bool { return l.Snapshot() != nil && l.Ready() == nil })
	})
	t.Run("an unreachable store is served from the snapshot within the bound", func(t *testing.T) {
		f.down.Store(true)
		time.Sleep(20 * time.Millisecond) // some failed polls
		clock.Advance(29 * time.Second)
		if !allowsAlice(l.Snapshot()) {
			t.Fatal("decisions stopped within the staleness bound")
		}
	})
	t.Run("past the bound decisions fail closed", func(t *testing.T) {
		clock.Advance(16 * time.Second)
		if s := l.Snapshot(); s != nil {
			t.Fatal("stale snapshot served")
		}
		d := enforce.Decide(l.Snapshot(), &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales"}, clock.Now())
		if d.Allow || d.Reason != enforce.ReasonStoreUnavailable {
			t.Fatalf("decision = %+v, want store_unavailable", d)
		}
		err := l.Ready()
		if !errors.Is(err, cache.ErrStale) || !strings.Contains(err.Error(), "store unreachable for 45s (staleness 30s)") {
			t.Fatalf("Ready = %v", err)
		}
	})
	t.Run("the store back brings decisions back without restart", func(t *testing.T) {
		f.down.Store(false)
		waitFor(t, "a poll reaches the store", func() bool { return l.Snapshot() != nil })
		if !allowsAlice(l.Snapshot()) || l.Ready() != nil {
			t.Fatalf("after recovery: allow=%v ready=%v", allowsAlice(l.Snapshot()), l.Ready())
		}
	})
}

func TestLoaderKeepsItsSnapshotWhenTheStoreHoldsAnInvalidPolicy(t *testing.T) {
	f := newFlaky(t)
	var reloadErrs atomic.Int64
	l := startLoader(t, cache.LoaderOptions{Store: f, Generation: f.Generation, PollInterval: 5 * time.Millisecond,
		OnReload: func(_ uint64, _ time.Duration, err error) {
			if err != nil {
				reloadErrs.Add(1)
			}
		}})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	gen := l.Generation()
	bad := storetest.Policy(t)
	bad.Users = append(bad.Users, bad.Users[0]) // duplicate id
	f.served.Store(&bad)
	waitFor(t, "a reload fails", func() bool { return reloadErrs.Load() > 0 })
	if l.Generation() != gen || !allowsAlice(l.Snapshot()) {
		t.Fatalf("snapshot replaced by an invalid policy: generation %d, want %d", l.Generation(), gen)
	}
}

func TestNewLoaderRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts cache.LoaderOptions
	}{
		{"no store", cache.LoaderOptions{}},
		{"staleness shorter than the poll interval", cache.LoaderOptions{Store: memory.NewStore(), PollInterval: time.Minute, Staleness: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := cache.NewLoader(tt.opts); err == nil {
				t.Fatal("NewLoader accepted bad options")
			}
		})
	}
}

func TestLoaderReloadOnDemand(t *testing.T) {
	f := newFlaky(t)
	l, err := cache.NewLoader(cache.LoaderOptions{Store: f})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if l.Snapshot() == nil || l.Generation() != 1 {
		t.Fatalf("after Reload: generation %d", l.Generation())
	}
}

// TestLoaderMeasuresStalenessFromWhenTheCallWasSent: a reply that arrives
// late proves the store answered when it executed the call, not when the
// reply landed; the data is as old as the request, so staleness counts from
// the moment the call was sent.
func TestLoaderMeasuresStalenessFromWhenTheCallWasSent(t *testing.T) {
	f := newFlaky(t)
	clock := newFakeClock()
	var slow atomic.Bool
	gen := func(ctx context.Context) (uint64, error) {
		if f.down.Load() {
			return 0, fmt.Errorf("dial: %w", enforce.ErrUnavailable)
		}
		if slow.CompareAndSwap(true, false) {
			clock.Advance(20 * time.Second) // the reply takes 20s to come back
			f.down.Store(true)              // and the store is gone after it
		}
		return f.Store.Generation(ctx)
	}
	l, err := cache.NewLoader(cache.LoaderOptions{Store: f, Generation: gen, PollInterval: time.Millisecond,
		Staleness: 30 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(testContext(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	defer func() { cancel(); <-done }()

	clock.Advance(time.Second)
	sent := clock.Now()
	slow.Store(true)
	waitFor(t, "the slow check completes", func() bool { return !slow.Load() && f.down.Load() })
	waitFor(t, "the contact is the slow call's send time", func() bool { return l.LastContact().Equal(sent) })
	clock.Advance(11 * time.Second) // 31s after the send, 11s after the reply
	if s := l.Snapshot(); s != nil {
		t.Fatal("served a snapshot 31s after the last answered call was sent (staleness 30s)")
	}
}

// countingSource counts full and incremental reads of a memory.Store.
type countingSource struct {
	*memory.Store
	full, incr atomic.Int64
}

func (c *countingSource) PolicyVersion(ctx context.Context) (enforce.Policy, enforce.Version, error) {
	c.full.Add(1)
	return c.Store.PolicyVersion(ctx)
}

func (c *countingSource) Changes(ctx context.Context, since enforce.Version) (enforce.PolicyPatch, enforce.Version, error) {
	c.incr.Add(1)
	return c.Store.Changes(ctx, since)
}

func TestLoaderFollowsChangesIncrementally(t *testing.T) {
	src := &countingSource{Store: memory.NewStore()}
	if _, _, err := src.ApplyPolicy(testContext(t), storetest.Policy(t), enforce.Unconditionally()); err != nil {
		t.Fatal(err)
	}
	l := startLoader(t, cache.LoaderOptions{Store: src, Incremental: src, Watch: src.Watch, Generation: src.Generation,
		PollInterval: time.Hour})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })

	t.Run("one-user changes patch the snapshot without a full read", func(t *testing.T) {
		for i := range 5 {
			base := l.Snapshot()
			alice, _ := base.User("alice")
			alice.Profile = map[bool]string{true: "", false: "supervisor"}[i%2 == 0]
			gen, _, err := src.ApplyPatch(testContext(t), base, enforce.PolicyPatch{Users: []enforce.User{alice}})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the change is followed", func() bool { return l.Generation() == gen })
			if allowsAlice(l.Snapshot()) != (alice.Profile != "") {
				t.Fatalf("after change %d alice's decision does not follow her profile %q", i, alice.Profile)
			}
		}
		if f := src.full.Load(); f != 1 {
			t.Fatalf("%d full reads, want only the first load", f)
		}
	})
	t.Run("a change too large for the log falls back to a full read", func(t *testing.T) {
		gen, _, err := src.ApplyPolicy(testContext(t), storetest.BigPolicy(t, 1200), enforce.Unconditionally())
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the change is followed", func() bool { return l.Generation() == gen })
		if f := src.full.Load(); f != 2 {
			t.Fatalf("%d full reads, want 2", f)
		}
		if n := l.Snapshot().UserCount(); n != 1200 {
			t.Fatalf("snapshot holds %d users, want 1200", n)
		}
	})
}

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

func TestLoaderTellsEveryInstalledSnapshot(t *testing.T) {
	src := &countingSource{Store: memory.NewStore()}
	if _, _, err := src.ApplyPolicy(testContext(t), storetest.Policy(t), enforce.Unconditionally()); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		gens []uint64
	)
	l := startLoader(t, cache.LoaderOptions{Store: src, Incremental: src, Watch: src.Watch, Generation: src.Generation,
		PollInterval: time.Hour, OnInstall: func(s *enforce.Snapshot) {
			mu.Lock()
			gens = append(gens, s.Generation())
			mu.Unlock()
		}})
	waitFor(t, "the first snapshot is loaded", func() bool { return l.Snapshot() != nil })
	base := l.Snapshot()
	alice, _ := base.User("alice")
	alice.Profile = ""
	gen, _, err := src.ApplyPatch(testContext(t), base, enforce.PolicyPatch{Users: []enforce.User{alice}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the patch is followed", func() bool { return l.Generation() == gen })
	mu.Lock()
	defer mu.Unlock()
	if len(gens) != 2 || gens[0] != base.Generation() || gens[1] != gen {
		t.Fatalf("OnInstall saw generations %v, want [%d %d]: the load, then the patch", gens, base.Generation(), gen)
	}
}
