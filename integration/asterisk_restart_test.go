package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
)

// TestAsteriskRestartIsSurvivedAndTheNextRequestDecided restarts Asterisk inside its
// container (`core restart now`): callwarden loses its connection, reconnects with
// backoff, and decides the next request correctly. Asterisk 22 greets every
// (re)connection with event types the ARI library cannot decode; they are counted,
// not fatal. The test waits until Asterisk is fully booted again, so the tests after
// it find the lab as it was.
func TestAsteriskRestartIsSurvivedAndTheNextRequestDecided(t *testing.T) {
	l := suite.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cw := startCallwarden(t, l, asterisk.WatchdogEnforce)

	if _, err := l.AsteriskCLI(ctx, "core restart now"); err != nil {
		t.Logf("core restart now: %v (the CLI connection drops with Asterisk)", err)
	}
	nctx, ncancel := context.WithTimeout(ctx, 30*time.Second)
	defer ncancel()
	waitFor(nctx, t, "callwarden notices that Asterisk restarted", func() error {
		if cw.a.Connected() {
			return errors.New("callwarden still connected")
		}
		return nil
	})
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := cw.a.WaitConnected(wctx); err != nil {
		t.Fatalf("callwarden did not reconnect: %v", err)
	}
	mustAsteriskCLI(ctx, t, l, "core waitfullybooted")
	if n := counterSum(t, cw.reg, "callwarden_asterisk_reconnects_total"); n < 1 {
		t.Errorf("reconnects counted %v, want >= 1", n)
	}
	t.Logf("event types unknown to the ARI library, dropped so far: %v",
		counterSum(t, cw.reg, "callwarden_asterisk_unknown_events_total"))

	// The reconnection set the application's event filter again: Asterisk only
	// sends what callwarden acts on.
	var app struct {
		EventsAllowed []struct {
			Type string `json:"type"`
		} `json:"events_allowed"`
	}
	mustOK(t, ari(ctx, l, "GET", "/applications/callwarden", nil, &app))
	allowed := map[string]bool{}
	for _, e := range app.EventsAllowed {
		allowed[e.Type] = true
	}
	if !allowed["StasisStart"] || !allowed["ChannelDialplan"] || allowed["ChannelVarset"] || allowed["ChannelToneDetected"] {
		t.Errorf("events allowed for callwarden after the restart: %v", app.EventsAllowed)
	}

	events := mustEvents(ctx, t, l)
	_, ext := salesCall(ctx, t, l, events, "5550100")
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*8"+ext)
	mustWait(ctx, t, events, "alice's guarded ChanSpy after the restart", func(e lab.Event) bool {
		return e.Type == "ChannelDialplan" && e.ChannelID() == sup.First && e.DialplanApp == "ChanSpy"
	})
	rec := cw.audit.wait(ctx, t, "alice's check after the restart", func(r enforce.AuditRecord) bool {
		return r.User == "alice" && r.Action == "monitor.listen" && r.Decision == "allow" && r.Queue == "sales"
	})
	if rec.Target != "agent"+ext {
		t.Errorf("decided on %q, want agent%s", rec.Target, ext)
	}
	if got, err := l.ARI.ChannelVar(ctx, sup.First, "CALLWARDEN_DECISION"); err != nil || got != "allow" {
		t.Errorf("CALLWARDEN_DECISION after the restart = %q (%v), want allow", got, err)
	}
}
