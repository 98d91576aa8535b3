package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/session"
)

// followingLab is callwarden on the lab deciding from a Loader that
// follows a memory store, and the lab's events.
type followingLab struct {
	l      *lab.TestLab
	ctx    context.Context
	events *lab.EventStream
	cw     *callwarden
	st     *memory.Store
	loader *cache.Loader
	// now and boundary are a lapse test's clock (lapseClock).
	now      func() time.Time
	boundary time.Time
}

// startFollowingStore runs callwarden deciding from a Loader over a
// memory store holding the example profiles, its live sessions decided
// again on every snapshot the Loader installs (as cmd/callwarden wires
// them). The Loader follows the store until the test ends.
func startFollowingStore(t *testing.T) followingLab {
	t.Helper()
	return startFollowingStoreAt(t, time.Now)
}

// startFollowingStoreAt is startFollowingStore with the registry deciding
// again at the time now tells.
func startFollowingStoreAt(t *testing.T, now func() time.Time) followingLab {
	t.Helper()
	l := suite.Lab(t)
	ctx := monitorContext(t)
	st := memory.NewStore()
	if _, _, err := st.ApplyPolicy(ctx, mustExampleProfiles(t), enforce.Unconditionally()); err != nil {
		t.Fatal(err)
	}
	var cw *callwarden
	loader, err := cache.NewLoader(cache.LoaderOptions{Store: st, Incremental: st, Watch: st.Watch, Generation: st.Generation,
		PollInterval: time.Hour, OnInstall: func(s *enforce.Snapshot) { cw.sessions.Redecide(s) }})
	if err != nil {
		t.Fatal(err)
	}
	cw = startCallwardenFrom(t, l, asterisk.WatchdogEnforce, loader.Snapshot, session.RegistryOptions{Policy: loader.Snapshot, Now: now})
	if err := loader.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = loader.Run(lctx) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return followingLab{l: l, ctx: ctx, events: mustEvents(ctx, t, l), cw: cw, st: st, loader: loader}
}

// changeAlice applies change to alice's entry in st, as `users revoke`
// or an admin API write does, and returns when it did so.
func changeAlice(ctx context.Context, t *testing.T, st *memory.Store, loader *cache.Loader, change func(*enforce.User)) time.Time {
	t.Helper()
	base := loader.Snapshot()
	alice, _ := base.User("alice")
	change(&alice)
	at := time.Now()
	if _, _, err := st.ApplyPatch(ctx, base, enforce.PolicyPatch{Users: []enforce.User{alice}}); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestRevokedSupervisorLeavesTheBridge: alice listens to a sales call;
// her profile is taken away in the store (what `users revoke` and the
// admin API write); the loader installs the new snapshot, the registry
// decides her session again and the adapter ends it: she leaves the
// bridge within a second and the audit says cause revoked.
func TestRevokedSupervisorLeavesTheBridge(t *testing.T) {
	f := startFollowingStore(t)
	l, ctx, events, cw := f.l, f.ctx, f.events, f.cw

	agent, ext := salesCall(ctx, t, l, events, "5550100")
	sess := mustMonitor(ctx, t, l, events, "1001", "*222"+ext, agent.ID)
	cw.audit.wait(ctx, t, "alice allowed", decision("alice", "monitor.listen", "allow"))
	var id string
	waitFor(ctx, t, "the session listed", func() error {
		live, err := cw.sessions.List(ctx)
		if err != nil || len(live) != 1 {
			return fmt.Errorf("live sessions %+v, %v: want one", live, err)
		}
		id = live[0].ID
		return nil
	})

	revoked := changeAlice(ctx, t, f.st, f.loader, func(u *enforce.User) { u.Profile, u.Queues = "", nil })
	leftBridgeWithin(ctx, t, events, sess, revoked, "the revoke")
	end := cw.audit.wait(ctx, t, "the session's end", func(r enforce.AuditRecord) bool {
		return r.Session == id && r.Outcome == enforce.OutcomeEnded
	})
	if end.Cause != enforce.CauseRevoked || end.User != "alice" {
		t.Errorf("end record %+v, want cause %s", end, enforce.CauseRevoked)
	}
	mustWait(ctx, t, events, "the supervisor hung up", lab.OnChannel("ChannelDestroyed", sess.sup.First))
	if live, err := cw.sessions.List(ctx); err != nil || len(live) != 0 {
		t.Errorf("live sessions after the end: %+v, %v", live, err)
	}
}

// TestWhisperDropsToListenWhenTheProfileBecomesListenOnly: alice whispers
// to a sales agent; her profile becomes listen-only; the session drops
// to listen (a new snoop with listen's directions in the same bridge, the
// whisper snoop gone), audited with cause revoked, and she stays.
func TestWhisperDropsToListenWhenTheProfileBecomesListenOnly(t *testing.T) {
	f := startFollowingStore(t)
	l, ctx, events, cw := f.l, f.ctx, f.events, f.cw
	agent, ext := salesCall(ctx, t, l, events, "5550100")
	sess := mustMonitor(ctx, t, l, events, "1001", "*223"+ext, agent.ID)

	changed := changeAlice(ctx, t, f.st, f.loader, func(u *enforce.User) { u.Profile = "listen-only" })
	// The event stream is searched from its start: the new snoop is the
	// one that is not the whisper's.
	created := mustWait(ctx, t, events, "a listen snoop on the agent's channel", func(e lab.Event) bool {
		return snoopOn(agent.ID)(e) && e.Channel.ID != sess.snoop
	})
	mustWait(ctx, t, events, "the listen snoop in the session's bridge", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.ChannelID() == created.Channel.ID && e.Bridge.ID == sess.bridge
	})
	mustWait(ctx, t, events, "the whisper snoop gone", lab.OnChannel("ChannelDestroyed", sess.snoop))
	t.Logf("whisper dropped to listen %v after the change", time.Since(changed))
	ch, err := l.ARI.Channel(ctx, created.Channel.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := "snoop,listen,spy=both,whisper=none"; !strings.Contains(ch.Dialplan.AppData, want) {
		t.Errorf("new snoop runs %s(%s), want %s", ch.Dialplan.AppName, ch.Dialplan.AppData, want)
	}
	down := cw.audit.wait(ctx, t, "the downgrade audited", func(r enforce.AuditRecord) bool {
		return r.User == "alice" && r.Outcome == enforce.OutcomeEnforced && r.Cause == enforce.CauseRevoked
	})
	if down.Action != "monitor.listen" || !strings.Contains(down.Detail, "down to listen") {
		t.Errorf("downgrade record %+v", down)
	}
	if _, err := l.ARI.Channel(ctx, sess.sup.First); err != nil {
		t.Errorf("the supervisor was hung up on a downgrade: %v", err)
	}
}

// lapseLead is how far ahead of now a test sets the instant an allow
// lapses: time for the supervisor to be bridged first.
const lapseLead = 4 * time.Second

// lapseClock is a test's clock: the real time shifted so that lapseLead
// from its start is a minute boundary (weekly hours have minutes), and
// that boundary.
func lapseClock() (now func() time.Time, boundary time.Time) {
	at := time.Now().Add(lapseLead)
	shift := at.Truncate(time.Minute).Add(time.Minute).Sub(at)
	return func() time.Time { return time.Now().Add(shift) }, at.Add(shift)
}

// windowEndingAt returns weekly hours, every day in UTC, whose window
// closes at boundary (a minute boundary).
func windowEndingAt(boundary time.Time) *enforce.Weekly {
	b := boundary.UTC()
	to := b.Hour()*60 + b.Minute()
	w := &enforce.Weekly{From: (to + 24*60 - 30) % (24 * 60), To: to, Location: time.UTC}
	for d := range w.Days {
		w.Days[d] = true
	}
	return w
}

// TestSessionEndsWhenItsAllowLapses: alice listens to a sales call whose
// allow lapses while she listens, without anyone touching her session:
// her valid_until passes, her grant's weekly hours end, or the agent she
// listens to is made protected. She leaves the bridge within a second of
// the instant (the registry's timer, or the snapshot installed), and the
// end is audited with its cause.
func TestSessionEndsWhenItsAllowLapses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause string
		// lapse changes the store so that alice's allow on target lapses,
		// and returns the instant it does, by the test's clock.
		lapse func(f followingLab, target string) time.Time
	}{
		{"her valid_until passes", enforce.CauseWindowClosed, func(f followingLab, _ string) time.Time {
			until := f.now().Add(lapseLead)
			changeAlice(f.ctx, t, f.st, f.loader, func(u *enforce.User) { u.ValidUntil = until })
			return until
		}},
		{"her grant's weekly hours end", enforce.CauseWindowClosed, func(f followingLab, _ string) time.Time {
			base := f.loader.Snapshot()
			p, _ := base.Profile("supervisor-with-recording")
			p.Grants = append([]enforce.Grant(nil), p.Grants...)
			p.Grants[0].Hours = windowEndingAt(f.boundary)
			if _, _, err := f.st.ApplyPatch(f.ctx, base, enforce.PolicyPatch{Profiles: []enforce.Profile{p}}); err != nil {
				t.Fatal(err)
			}
			return f.boundary
		}},
		{"the agent is made protected", enforce.CauseProtectedTarget, func(f followingLab, target string) time.Time {
			base := f.loader.Snapshot()
			prot := base.Protected()
			prot.Users = append(append([]string(nil), prot.Users...), target)
			at := f.now()
			if _, _, err := f.st.ApplyPatch(f.ctx, base, enforce.PolicyPatch{Protected: &prot}); err != nil {
				t.Fatal(err)
			}
			return at
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, boundary := lapseClock()
			f := startFollowingStoreAt(t, now)
			f.now, f.boundary = now, boundary
			l, ctx, events, cw := f.l, f.ctx, f.events, f.cw
			cw.now.Set(now()) // the adapter decides the start at the registry's time
			agent, ext := salesCall(ctx, t, l, events, "5550100")
			sess := mustMonitor(ctx, t, l, events, "1001", "*222"+ext, agent.ID)
			var live enforce.LiveSession
			waitFor(ctx, t, "the session listed", func() error {
				all, err := cw.sessions.List(ctx)
				if err != nil || len(all) != 1 {
					return fmt.Errorf("live sessions %+v, %v: want one", all, err)
				}
				live = all[0]
				return nil
			})
			lapsed := tc.lapse(f, live.Target)
			leftBridgeWithin(ctx, t, events, sess, time.Now().Add(lapsed.Sub(now())), tc.name)
			end := cw.audit.wait(ctx, t, "the session's end", func(r enforce.AuditRecord) bool {
				return r.Session == live.ID && r.Outcome == enforce.OutcomeEnded
			})
			if end.Cause != tc.cause || end.User != "alice" {
				t.Errorf("end record %+v, want cause %s", end, tc.cause)
			}
		})
	}
}
