package asterisk

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

// chanSpyOn is a ChannelDialplan event: channel id starts ChanSpy.
func chanSpyOn(id string) string {
	return strings.Replace(rogueChanSpy, `"id":"spy1"`, `"id":"`+id+`"`, 1)
}

// listedSpy is a channel running ChanSpy as GET /channels lists it.
func listedSpy(id string) string {
	return `{"id":"` + id + `","name":"PJSIP/1002-` + id + `","state":"Up","caller":{"number":"1002"},"dialplan":{"app_name":"ChanSpy","app_data":",qEg(agent2001)"}}`
}

func TestWatchdogActsOnlyWhileItHoldsTheLease(t *testing.T) {
	const ttl = 300 * time.Millisecond
	store := memory.NewWatchdog()
	ctx := context.Background()
	name := "watchdog:asterisk:pbx1"
	// A daemon "a" holds the lease, then dies: it never renews it.
	if cur, err := store.AcquireLease(ctx, name, "a", ttl); err != nil || cur != "a" {
		t.Fatalf("AcquireLease = %q, %v", cur, err)
	}
	died := time.Now()
	// Two checks allowed a ChanSpy before a died; a's watchdog already
	// let one of them through (it took the allowance).
	for _, ch := range []string{"spy-unused", "spy-used"} {
		if err := store.PutAllowance(ctx, ch, enforce.MonitorListen, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := store.TakeAllowance(ctx, "spy-used", enforce.MonitorListen, time.Minute); err != nil || !ok {
		t.Fatalf("TakeAllowance = %v, %v", ok, err)
	}

	f := newFakeARI(t)
	f.answer("GET", "/channels", 200, "["+listedSpy("spy-rogue")+","+listedSpy("spy-unused")+","+listedSpy("spy-used")+
		`,{"id":"snoop-rogue","name":"Snoop/1700000000.1-00000009","state":"Up"}`+
		`,{"id":"cw-callwarden-a-snoop-0123456789abcdef","name":"Snoop/1700000000.1-0000000a","state":"Up"}]`)
	audit := &recordingAuditor{}
	snap := mustExampleSnapshot(t)
	b := startAdapterWith(t, f, func() *enforce.Snapshot { return snap }, nil, audit, func(o *Options) {
		o.App, o.PBX, o.Instance, o.Siblings = "callwarden-b", "pbx1", "b", []string{"callwarden-a"}
		o.Shared, o.LeaseTTL, o.LeaseRenew = store, ttl, 100*time.Millisecond
	})
	conn := <-f.conn
	if b.watching() {
		t.Fatal("b watches while a's lease has not expired")
	}
	// During the move: three ChanSpys start, and a's sibling snoop is made.
	for _, id := range []string{"spy-rogue", "spy-unused", "spy-used"} {
		f.send(conn, chanSpyOn(id))
	}
	time.Sleep(20 * time.Millisecond)
	if f.called("DELETE /channels/") {
		t.Fatal("a passive watchdog hung a channel up")
	}

	waitFor(t, "b to take the lease", b.watching)
	moved := time.Since(died)
	if moved > ttl+ttl {
		t.Errorf("the lease moved %s after a's last renewal, want within %s", moved, 2*ttl)
	}
	waitFor(t, "the rogue ChanSpy started during the move hung up", func() bool { return f.called("DELETE /channels/spy-rogue") })
	waitFor(t, "the foreign snoop running at the take-over hung up", func() bool { return f.called("DELETE /channels/snoop-rogue") })
	waitFor(t, "the take-over audited", func() bool {
		for _, r := range audit.All() {
			if r.Reason == ReasonWatchdogLease && strings.Contains(r.Detail, "taken by b") && strings.Contains(r.Detail, "a, stopped renewing") {
				return true
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	for _, id := range []string{"spy-unused", "spy-used", "cw-callwarden-a-snoop-0123456789abcdef"} {
		if f.called("DELETE /channels/" + id) {
			t.Errorf("the take-over hung up %s, which an allowance or the sibling covers", id)
		}
	}

	// Acting now: a's sibling snoops are let be, a ChanSpy allowed by a's
	// check passes once, and a foreign snoop is hung up.
	f.send(conn, strings.Replace(rogueSnoop, `"id":"snoop1"`, `"id":"cw-callwarden-a-snoop-fedcba9876543210"`, 1))
	if err := store.PutAllowance(ctx, "spy-later", enforce.MonitorListen, time.Minute); err != nil {
		t.Fatal(err)
	}
	f.send(conn, chanSpyOn("spy-later"))
	f.send(conn, rogueSnoop)
	waitFor(t, "the foreign snoop hung up", func() bool { return f.called("DELETE /channels/snoop1") })
	time.Sleep(50 * time.Millisecond)
	if f.called("DELETE /channels/cw-callwarden-a-") || f.called("DELETE /channels/spy-later") {
		t.Fatal("the holder hung up its sibling's snoop or a ChanSpy the sibling's check allowed")
	}
}

func TestWatchdogGoesPassiveWhenAnotherDaemonHoldsTheLease(t *testing.T) {
	store := memory.NewWatchdog()
	f := newFakeARI(t)
	snap := mustExampleSnapshot(t)
	b := startAdapterWith(t, f, func() *enforce.Snapshot { return snap }, nil, nil, func(o *Options) {
		o.Instance, o.Shared, o.LeaseTTL, o.LeaseRenew = "b", store, time.Second, 50*time.Millisecond
	})
	conn := <-f.conn
	waitFor(t, "b to take the free lease", b.watching)
	// b's lease is dropped and taken by "a" (say b was frozen longer than
	// the lease's life): b finds out at its next renewal.
	if err := store.ReleaseLease(context.Background(), "watchdog:asterisk:asterisk", "b"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := store.AcquireLease(context.Background(), "watchdog:asterisk:asterisk", "a", time.Minute); cur != "a" {
		t.Fatalf("a could not take the lease: holder %q", cur)
	}
	waitFor(t, "b to go passive", func() bool { return !b.watching() })
	f.send(conn, rogueChanSpy)
	f.send(conn, rogueSnoop)
	time.Sleep(50 * time.Millisecond)
	if f.called("DELETE /channels/") {
		t.Fatal("a passive watchdog hung a channel up")
	}
}

func TestConvergenceEndsTheStillRunningSessionOfADeadSibling(t *testing.T) {
	f := newFakeARI(t)
	const (
		siblings = "cw-callwarden-a-bridge-0123456789abcdef"
		own      = "cw-callwarden-b-bridge-fedcba9876543210"
		foreign  = "someone-elses-bridge"
	)
	audit := &recordingAuditor{}
	snap := mustExampleSnapshot(t)
	b := startAdapterWith(t, f, func() *enforce.Snapshot { return snap }, nil, audit, func(o *Options) {
		o.App, o.Siblings = "callwarden-b", []string{"callwarden-a"}
	})
	// Listed once b runs: at its start its own bridge would be an orphan.
	f.answer("GET", "/bridges", 200, `[{"id":"`+siblings+`","channels":["sup-a","cw-callwarden-a-snoop-0123456789abcdef"]},`+
		`{"id":"`+own+`","channels":["sup-b"]},{"id":"`+foreign+`","channels":["sup-x"]}]`)
	f.answer("GET", "/channels", 200, `[{"id":"sup-a","name":"PJSIP/1001-1"},{"id":"sup-b","name":"PJSIP/1001-2"},`+
		`{"id":"sup-x","name":"PJSIP/1001-3"},{"id":"cw-callwarden-a-snoop-0123456789abcdef","name":"Snoop/1-1"}]`)
	runs := func(channel string) bool {
		t.Helper()
		ok, err := prober{b}.SessionRuns(context.Background(), enforce.LiveSession{ChannelID: channel, Instance: "dead-a"})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !runs("sup-b") {
		t.Error("b's own running session reported ended")
	}
	if runs("sup-x") || f.called("DELETE /bridges/"+foreign) {
		t.Error("a bridge of no callwarden application counted as the session's, or was destroyed")
	}
	if runs("sup-a") {
		t.Error("the dead sibling's session reported running: it would stay listed, and its supervisor listening")
	}
	for _, call := range []string{"DELETE /bridges/" + siblings, "DELETE /channels/sup-a", "DELETE /channels/cw-callwarden-a-snoop-0123456789abcdef"} {
		if !f.called(call) {
			t.Errorf("no %s: the dead sibling's session is not ended in Asterisk", call)
		}
	}
	if f.called("DELETE /bridges/"+own) || f.called("DELETE /channels/sup-b") {
		t.Error("b ended its own running session")
	}
	waitFor(t, "the end audited as an orphan", func() bool {
		for _, r := range audit.All() {
			if r.Source == "watchdog" && strings.Contains(r.Detail, "of callwarden-a, whose daemon dead-a died") {
				return true
			}
		}
		return false
	})
}
