package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// TestARequestStrandedByADyingSiblingIsDecidedByTheSurvivor runs daemon b
// (`callwarden serve`, application callwarden-b, sibling callwarden-a)
// behind deploy/production's failover dialplan, with a stand-in for
// daemon a: a websocket that registers callwarden-a and never answers. A
// listen request enters a's application. While a's websocket is open, b
// leaves the request alone (it is a's). Then a dies: the request is
// stranded, in an application nobody serves, where Asterisk would keep it
// until the supervisor hangs up. b, holding the watchdog lease, moves it
// into its own application, decides it (allowed: the supervisor is
// bridged to a snoop on the agent) and audits the decision.
func TestARequestStrandedByADyingSiblingIsDecidedByTheSurvivor(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 2*time.Minute)
	bin, store := mustBinaryOnExampleProfiles(ctx, t, l)
	mustLoadDialplan(ctx, t, l, "cwtest_failover.conf", twoDaemonsDialplan(t))
	events := mustEvents(ctx, t, l)

	t.Cleanup(func() { waitApplicationGone(t, l, "callwarden-b stopped") })
	b := startServed(t, bin, twoDaemonsConfig(t, l, "callwarden-b", "callwarden-a"), "b",
		config.EnvAsteriskPassword+"="+l.ARIPassword)
	waitFor(ctx, t, "daemon b connected and holding the watchdog lease", func() error {
		if !b.logged("ARI connected") || !b.logged("watchdog active") {
			return fmt.Errorf("daemon b not yet connected and watching")
		}
		return nil
	})
	t.Cleanup(func() { hangupAll(t, l) })
	agent, ext := salesCall(ctx, t, l, events, "5550100")

	a, err := l.ARI.Events(ctx, "callwarden-a")
	mustOK(t, err)
	aClosed := false
	t.Cleanup(func() {
		if !aClosed {
			_ = a.Close()
		}
	})
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cwtest-failover-features", "*222"+ext)
	mustWait(ctx, t, a, "the request in a's application", lab.OnChannel("StasisStart", sup.First))

	// a is alive: its request is its own, however long it takes.
	time.Sleep(3 * time.Second)
	if slices.ContainsFunc(events.Events(), func(e lab.Event) bool {
		return e.ChannelID() == sup.First && e.Type == "ChannelEnteredBridge"
	}) || b.logged("request stranded in a dead sibling's application moved here to be decided") {
		t.Fatal("b took a request from a live sibling's application")
	}

	// a dies.
	mustOK(t, a.Close())
	aClosed = true
	died := time.Now()
	bridged := mustWait(ctx, t, events, "the stranded supervisor bridged by b", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.ChannelID() == sup.First
	})
	if !strings.HasPrefix(bridged.Bridge.ID, "cw-callwarden-b-bridge-") {
		t.Errorf("the stranded supervisor entered bridge %s, want one of callwarden-b", bridged.Bridge.ID)
	}
	mustWait(ctx, t, events, "b's snoop on the agent", snoopOn(agent.ID))
	t.Logf("the stranded request was bridged by b %s after a died", time.Since(died).Round(time.Millisecond))
	waitFor(ctx, t, "b's log of the move", func() error {
		if !b.logged("request stranded in a dead sibling's application moved here to be decided") {
			return fmt.Errorf("b has not logged the move of the stranded request")
		}
		return nil
	})
	waitFor(ctx, t, "b's decision on the stranded request audited", func() error {
		recs, err := store.ReadAudit(ctx, enforce.AuditFilter{Since: died.Add(-time.Second)})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Source == "asterisk" && r.Action == "monitor.listen" && r.Decision == "allow" && slices.Contains(r.Channels, sup.First) {
				return nil
			}
		}
		return fmt.Errorf("no allow of %s audited yet:\n%s", sup.First, auditLines(recs))
	})
}

// TestARequestLeftUndecidedByACrashIsDecidedAfterTheRestart: a listen
// request enters application callwarden-b while its daemon is dying (a
// stand-in websocket registers callwarden-b and closes without answering).
// Asterisk keeps the request in the application and will not send its
// StasisStart again. When `callwarden serve` starts as callwarden-b, its
// sweep finds the request with no handler and sends it into the
// application again: it is decided (allowed, the supervisor bridged to a
// snoop on the agent) and audited, not hung up as an orphan.
func TestARequestLeftUndecidedByACrashIsDecidedAfterTheRestart(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 2*time.Minute)
	bin, store := mustBinaryOnExampleProfiles(ctx, t, l)
	mustLoadDialplan(ctx, t, l, "cwtest_failover.conf", twoDaemonsDialplan(t))
	events := mustEvents(ctx, t, l)
	t.Cleanup(func() { hangupAll(t, l) })
	agent, ext := salesCall(ctx, t, l, events, "5550100")

	dying, err := l.ARI.Events(ctx, "callwarden-b")
	mustOK(t, err)
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cwtest-b-only", "*222"+ext)
	mustWait(ctx, t, dying, "the request in callwarden-b", lab.OnChannel("StasisStart", sup.First))
	mustOK(t, dying.Close())
	crashed := time.Now()

	t.Cleanup(func() { waitApplicationGone(t, l, "callwarden-b stopped") })
	b := startServed(t, bin, twoDaemonsConfig(t, l, "callwarden-b", "callwarden-a"), "b",
		config.EnvAsteriskPassword+"="+l.ARIPassword)
	mustWait(ctx, t, events, "the request decided and bridged after the restart", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.ChannelID() == sup.First
	})
	mustWait(ctx, t, events, "the snoop on the agent", snoopOn(agent.ID))
	t.Logf("the request left by the crash was bridged %s after it", time.Since(crashed).Round(time.Millisecond))
	waitFor(ctx, t, "the decision audited, and no orphan record", func() error {
		recs, err := store.ReadAudit(ctx, enforce.AuditFilter{Since: crashed.Add(-time.Second)})
		if err != nil {
			return err
		}
		allowed := false
		for _, r := range recs {
			if !slices.Contains(r.Channels, sup.First) {
				continue
			}
			if r.Source == "watchdog" {
				return fmt.Errorf("the request was ended as an orphan: %+v", r)
			}
			allowed = allowed || r.Source == "asterisk" && r.Action == "monitor.listen" && r.Decision == "allow"
		}
		if !allowed {
			return fmt.Errorf("no allow of %s audited yet:\n%s", sup.First, auditLines(recs))
		}
		return nil
	})
	if !b.logged("request left undecided by the previous process asked again") {
		t.Error("the daemon did not log that it asked the request again")
	}
}
