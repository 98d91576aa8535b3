package integration

// Two daemons on the lab's FreeSWITCH share one watchdog (freeswitch.watchdog_lease):
// one holds the lease and judges; a monitor session started through the other
// daemon's socket is not taken for a bypass, and a rogue eavesdrop is stopped once,
// by the holder alone.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/config/configtest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

func TestTwoFreeSWITCHDaemonsShareOneWatchdog(t *testing.T) {
	_, fs, ctx := fsLab(t)
	snap := configtest.MustSnapshot(t, writeFile(t, "profiles.yaml", freeswitchMonitorProfiles))
	shared := memory.NewWatchdog()
	type daemon struct {
		a        *freeswitch.Adapter
		log      *sessiontest.AuditLog
		outbound string
	}
	start := func(instance string) daemon {
		d := daemon{log: &sessiontest.AuditLog{}, outbound: freeHostPort(t, fs.HostIP)}
		d.a = runFSAdapter(ctx, t, freeswitch.Options{ESLAddress: fs.ESLAddr(), ESLPassword: fs.ESLPassword,
			OutboundListen: d.outbound, PBX: "fslab", Snapshot: func() *enforce.Snapshot { return snap }, Auditor: d.log,
			Shared: shared, Instance: instance})
		return d
	}
	one, two := start("one"), start("two")
	var holder, other daemon
	waitFor(shortly(t, ctx), t, "exactly one daemon watching", func() error {
		switch a, b := one.a.WatchdogActive(), two.a.WatchdogActive(); {
		case a && !b:
			holder, other = one, two
		case b && !a:
			holder, other = two, one
		default:
			return fmt.Errorf("watching: one %v, two %v", a, b)
		}
		return nil
	})
	watchdogRecords := func() []enforce.AuditRecord {
		var out []enforce.AuditRecord
		for _, d := range []daemon{one, two} {
			for _, r := range d.log.All() {
				if r.Source == "watchdog" && r.Reason == "no_allow_decision" {
					out = append(out, r)
				}
			}
		}
		return out
	}

	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")
	waitListed(ctx, t, fs, agentLeg)

	t.Run("a session started through the passive daemon is not a bypass for the holder", func(t *testing.T) {
		cw := &fsDaemon{outbound: other.outbound, fs: fs}
		sup := cw.supervisorCall(ctx, t, "1001", "*2222001")
		waitFor(shortly(t, ctx), t, "the session enforced by the passive daemon", func() error {
			for _, r := range other.log.All() {
				if len(r.Channels) > 0 && r.Channels[0] == sup && r.Outcome == enforce.OutcomeEnforced {
					return nil
				}
			}
			return errors.New("not enforced yet")
		})
		// The holder has seen the eavesdrop start by now (its events arrive
		// within the 50 ms window); give it a second to act wrongly.
		time.Sleep(time.Second)
		if up, err := fs.Exists(ctx, sup); err != nil || !up {
			t.Fatalf("the supervisor's channel is gone (%v): the holder's watchdog stopped an allowed eavesdrop", err)
		}
		if recs := watchdogRecords(); len(recs) != 0 {
			t.Fatalf("watchdog records %+v, want none", recs)
		}
		mustOK(t, fs.Kill(ctx, sup))
	})

	t.Run("a rogue eavesdrop is stopped once, by the holder", func(t *testing.T) {
		spy, _ := rogueEavesdrop(ctx, t, fs, subscribeFS(ctx, t, fs), agentLeg)
		mustOK(t, fs.WaitGone(shortly(t, ctx), spy))
		waitFor(shortly(t, ctx), t, "the bypass audited", func() error {
			if len(watchdogRecords()) == 0 {
				return errors.New("no watchdog record yet")
			}
			return nil
		})
		time.Sleep(500 * time.Millisecond) // a second record would come now
		recs := watchdogRecords()
		if len(recs) != 1 || len(recs[0].Channels) != 1 || recs[0].Channels[0] != spy {
			t.Fatalf("watchdog records %+v, want one, on the spy leg", recs)
		}
		for _, d := range []struct {
			name string
			daemon
			want int
		}{{"the holder", holder, 1}, {"the passive daemon", other, 0}} {
			n := 0
			for _, r := range d.log.All() {
				if r.Source == "watchdog" && r.Reason == "no_allow_decision" {
					n++
				}
			}
			if n != d.want {
				t.Errorf("%s audited %d bypasses, want %d", d.name, n, d.want)
			}
		}
	})
}

// The same with two `callwarden serve` daemons on the lab's Redis, as deployed:
// freeswitch.watchdog_lease set through the environment.
func TestTwoServedFreeSWITCHDaemonsShareOneWatchdogInRedis(t *testing.T) {
	l, fs, ctx := fsLab(t)
	lease := "CALLWARDEN_FREESWITCH_WATCHDOG_LEASE=true"
	one := serveFreeSWITCH(ctx, t, l, fs, "fs-one", lease)
	two := serveFreeSWITCHConfig(ctx, t, l, fs, "fs-two", lease)
	var holder, other *fsDaemon
	waitFor(shortly(t, ctx), t, "exactly one daemon holding the watchdog lease", func() error {
		a, err := one.metric(ctx, "callwarden_freeswitch_watchdog_lease_held")
		if err != nil {
			return err
		}
		b, err := two.metric(ctx, "callwarden_freeswitch_watchdog_lease_held")
		if err != nil {
			return err
		}
		switch {
		case a == "1" && b == "0":
			holder, other = one, two
		case a == "0" && b == "1":
			holder, other = two, one
		default:
			return fmt.Errorf("lease held: fs-one %s, fs-two %s", a, b)
		}
		return nil
	})
	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")
	waitListed(ctx, t, fs, agentLeg)

	// alice listens through the daemon that does not hold the lease.
	sup := other.supervisorCall(ctx, t, "1001", "*2222001")
	recs := fsMonitorRecords(shortly(t, ctx), t, l, sup, 2)
	if recs[1].Outcome != enforce.OutcomeEnforced {
		t.Fatalf("records %+v, want the session enforced", recs)
	}
	time.Sleep(time.Second) // the holder has seen the eavesdrop start: time to act wrongly
	if up, err := fs.Exists(ctx, sup); err != nil || !up {
		t.Fatalf("the supervisor's channel is gone (%v): the holder's watchdog stopped an allowed eavesdrop", err)
	}
	if got, err := holder.metric(ctx, "callwarden_freeswitch_watchdog_lease_takeovers_total"); err != nil || got != "1" {
		t.Errorf("the holder's take-overs = %s (%v), want 1", got, err)
	}
	mustOK(t, fs.Kill(ctx, sup))

	// A rogue eavesdrop is stopped, and audited once.
	spy, _ := rogueEavesdrop(ctx, t, fs, subscribeFS(ctx, t, fs), agentLeg)
	mustOK(t, fs.WaitGone(shortly(t, ctx), spy))
	watchdogRecord(shortly(t, ctx), t, l, spy)
	time.Sleep(500 * time.Millisecond) // a second record would come now
	all, err := recentAudit(ctx, t, l)
	mustOK(t, err)
	if n := len(auditOn(all, "watchdog", spy)); n != 1 {
		t.Errorf("%d watchdog records on the spy leg, want 1", n)
	}
}
