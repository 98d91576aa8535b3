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
}

// startFollowingStore runs callwarden deciding from a Loader over a
// memory store holding the example profiles, its live sessions decided
// again on every snapshot the Loader installs (as cmd/callwarden wires
// them). The Loader follows the store until the test ends.
func startFollowingStore(t *testing.T) followingLab {
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
	cw = startCallwardenFrom(t, l, asterisk.WatchdogEnforce, loader.Snapshot, session.RegistryOptions{Policy: loader.Snapshot})
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
