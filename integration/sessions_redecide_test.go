package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/session"
)

// startFollowingStore runs callwarden deciding from a Loader over a
// memory store holding the example profiles, its live sessions decided
// again on every snapshot the Loader installs (as cmd/callwarden wires
// them). The Loader follows the store until the test ends.
func startFollowingStore(ctx context.Context, t *testing.T, l *lab.TestLab) (*callwarden, *memory.Store, *cache.Loader) {
	t.Helper()
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
	return cw, st, loader
}

// TestRevokedSupervisorLeavesTheBridge: alice listens to a sales call;
// her profile is taken away in the store (what `users revoke` and the
// admin API write); the loader installs the new snapshot, the registry
// decides her session again and the adapter ends it: she leaves the
// bridge within a second and the audit says cause revoked.
func TestRevokedSupervisorLeavesTheBridge(t *testing.T) {
	l := suite.Lab(t)
	ctx := monitorContext(t)
	cw, st, loader := startFollowingStore(ctx, t, l)
	events := mustEvents(ctx, t, l)

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

	base := loader.Snapshot()
	alice, _ := base.User("alice")
	alice.Profile, alice.Queues = "", nil
	revoked := time.Now()
	gen, _, err := st.ApplyPatch(ctx, base, enforce.PolicyPatch{Users: []enforce.User{alice}})
	if err != nil {
		t.Fatal(err)
	}
	leftBridgeWithin(ctx, t, events, sess, revoked, fmt.Sprintf("the revoke (generation %d)", gen))
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
