package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/session"
)

// listedChannel is a channel of GET /channels with what the adapter's
// model keeps of it; Channelvars are there because the lab's ari.conf
// names the dialplan-contract variables in channelvars.
type listedChannel struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	State     string            `json:"state"`
	Caller    lab.CallerID      `json:"caller"`
	Connected lab.CallerID      `json:"connected"`
	Vars      map[string]string `json:"channelvars"`
}

// pbxListing lists the lab's channels and bridges as the adapter's model
// shows them (sorted by id), from one GET /channels and one GET /bridges.
func pbxListing(ctx context.Context, l *lab.TestLab) (asterisk.ModelView, error) {
	var chans []listedChannel
	if err := ari(ctx, l, http.MethodGet, "/channels", nil, &chans); err != nil {
		return asterisk.ModelView{}, err
	}
	var bridges []lab.Bridge
	if err := ari(ctx, l, http.MethodGet, "/bridges", nil, &bridges); err != nil {
		return asterisk.ModelView{}, err
	}
	bridgeOf := map[string]string{}
	v := asterisk.ModelView{Synced: true}
	for _, b := range bridges {
		members := slices.Sorted(slices.Values(b.Channels))
		v.Bridges = append(v.Bridges, asterisk.ModelBridge{ID: b.ID, Channels: members})
		for _, id := range members {
			bridgeOf[id] = b.ID
		}
	}
	for _, c := range chans {
		v.Channels = append(v.Channels, asterisk.ModelChannel{ID: c.ID, Name: c.Name, State: c.State,
			Caller: c.Caller.Number, Connected: c.Connected.Number, Bridge: bridgeOf[c.ID], Vars: c.Vars})
	}
	sort.Slice(v.Channels, func(i, j int) bool { return v.Channels[i].ID < v.Channels[j].ID })
	sort.Slice(v.Bridges, func(i, j int) bool { return v.Bridges[i].ID < v.Bridges[j].ID })
	return v, nil
}

// modelDiff says how the adapter's model differs from a fresh listing of
// the PBX, "" when it does not.
func modelDiff(got, want asterisk.ModelView) string {
	if !got.Synced {
		return "the model is not synced"
	}
	index := func(v asterisk.ModelView) map[string]string {
		m := map[string]string{}
		for _, c := range v.Channels {
			m["channel "+c.ID] = fmt.Sprintf("%+v", c)
		}
		for _, b := range v.Bridges {
			m["bridge "+b.ID] = fmt.Sprint(b.Channels)
		}
		return m
	}
	g, w := index(got), index(want)
	var diffs []string
	for k, wv := range w {
		if gv, ok := g[k]; !ok {
			diffs = append(diffs, "missing "+k+": "+wv)
		} else if gv != wv {
			diffs = append(diffs, k+": model "+gv+", PBX "+wv)
		}
	}
	for k, gv := range g {
		if _, ok := w[k]; !ok {
			diffs = append(diffs, "stale "+k+": "+gv)
		}
	}
	sort.Strings(diffs)
	return fmt.Sprint(diffs)
}

// waitModelMatchesPBX waits until the adapter's model equals a fresh
// listing of the PBX (the two are read one after the other, so a call
// changing in between is read again).
func waitModelMatchesPBX(ctx context.Context, t *testing.T, l *lab.TestLab, cw *callwarden, what string) {
	t.Helper()
	waitFor(ctx, t, what, func() error {
		want, err := pbxListing(ctx, l)
		if err != nil {
			return err
		}
		if d := modelDiff(cw.a.Model(), want); d != "[]" {
			return fmt.Errorf("the model differs from GET /channels + GET /bridges: %s", d)
		}
		return nil
	})
}

func TestAsteriskModelResyncsAfterTheEventConnectionDrops(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 3*time.Minute)
	// A long backoff holds the gap open: the test ends one call and
	// starts another while callwarden hears nothing.
	const gap = 4 * time.Second
	cw := startCallwardenFrom(t, l, asterisk.WatchdogEnforce, exampleSnapshotFunc(t), session.RegistryOptions{}, func(o *asterisk.Options) {
		o.MinBackoff, o.MaxBackoff = gap, gap
	})
	events := mustEvents(ctx, t, l)
	// Background calls: every sales agent on a call.
	ended, endedExt := salesCall(ctx, t, l, events, "5550101")
	kept, keptExt := salesCall(ctx, t, l, events, "5550102")
	salesCall(ctx, t, l, events, "5550103")
	waitModelMatchesPBX(ctx, t, l, cw, "the model after the first connection")
	if v := cw.a.Model(); !slices.ContainsFunc(v.Channels, func(c asterisk.ModelChannel) bool {
		return c.ID == kept.ID && c.Vars["CALLWARDEN_QUEUE"] == "sales"
	}) {
		t.Fatalf("agent %s's channel %s not in the model with CALLWARDEN_QUEUE sales (ari.conf channelvars): %+v", keptExt, kept.ID, v.Channels)
	}
	resyncs := counterSum(t, cw.reg, "callwarden_asterisk_model_resyncs_total")

	if !cw.a.DropEventConnection(ctx) {
		t.Fatal("no event connection to drop")
	}
	waitFor(ctx, t, "the model unsynced by the drop", func() error {
		if cw.a.Model().Synced {
			return fmt.Errorf("still synced")
		}
		return nil
	})
	// In the gap: agent endedExt's call ends, a support call starts. No
	// event of either reaches callwarden.
	mustHangup(ctx, t, l, ended.ID)
	mustOK(t, l.WaitChannelGone(ctx, ended.ID))
	support, _ := queueCall(ctx, t, l, events, "support", "5550104")
	if cw.a.Connected() {
		t.Fatal("callwarden reconnected before the gap's calls changed: the test saw no gap")
	}

	waitFor(ctx, t, "the model resynced after the reconnection", func() error {
		if got := counterSum(t, cw.reg, "callwarden_asterisk_model_resyncs_total"); got != resyncs+1 || !cw.a.Model().Synced {
			return fmt.Errorf("%v resyncs (want %v), synced %v", got, resyncs+1, cw.a.Model().Synced)
		}
		return nil
	})
	// (a) The resynced model is the PBX: the ended call is gone, the new
	// one is there.
	waitModelMatchesPBX(ctx, t, l, cw, "the model after the resync")
	v := cw.a.Model()
	for _, c := range v.Channels {
		if c.ID == ended.ID {
			t.Errorf("the call that ended in the gap is still in the model: %+v", c)
		}
	}
	if !slices.ContainsFunc(v.Channels, func(c asterisk.ModelChannel) bool { return c.ID == support.ID }) {
		t.Errorf("the support call that started in the gap is not in the model")
	}

	// (b) A request on the agent whose call ended in the gap is refused
	// (no call), whichever path decided it; one on a live call is
	// enforced.
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*222"+endedExt)
	mustWait(ctx, t, events, "the refused supervisor hung up", lab.OnChannel("ChannelDestroyed", sup.First))
	rec := cw.audit.wait(ctx, t, "alice refused", decision("alice", "monitor.listen", "deny"))
	if rec.Reason != session.ReasonNoCall {
		t.Errorf("monitoring agent %s, whose call ended in the gap: reason %q, want %s (record %+v)", endedExt, rec.Reason, session.ReasonNoCall, rec)
	}
	mustMonitor(ctx, t, l, events, "1001", "*222"+keptExt, kept.ID)
	lookups := counterSum(t, cw.reg, "callwarden_asterisk_call_lookups_total")
	t.Logf("call lookups after the resync: %v (model and rest paths)", lookups)
	if lookups < 2 {
		t.Errorf("%v call lookups counted, want at least the two requests'", lookups)
	}
}

// exampleSnapshotFunc is the example profiles' snapshot, as a policy.
func exampleSnapshotFunc(t *testing.T) func() *enforce.Snapshot {
	s := exampleSnapshot(t)
	return func() *enforce.Snapshot { return s }
}

// TestSimultaneousMonitorRequestsAreNotSerialized has four supervisors ask
// at once to listen to the four agents' calls, and compares each one's
// Stasis-to-bridged time (Asterisk's timestamps) with a lone request's. A
// lock held across REST calls, or an event loop waiting on the network,
// would make the last of the four take about four times as long.
func TestSimultaneousMonitorRequestsAreNotSerialized(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 3*time.Minute)
	startCallwarden(t, l, asterisk.WatchdogEnforce)
	events := mustEvents(ctx, t, l)
	var agents []lab.Channel
	var exts []string
	for i, q := range []string{"sales", "sales", "sales", "support"} {
		agent, ext := queueCall(ctx, t, l, events, q, fmt.Sprint(5550110+i))
		agents, exts = append(agents, agent), append(exts, ext)
	}
	// interceptTime is supervisor sup's time from Stasis() to its snoop
	// on agent entering a bridge; seen are the snoops already measured.
	seen := map[string]bool{}
	interceptTime := func(sup lab.LocalCall, agent lab.Channel) time.Duration {
		start := mustWait(ctx, t, events, "Stasis on the supervisor", func(e lab.Event) bool {
			return e.Type == "ChannelDialplan" && e.ChannelID() == sup.First && e.DialplanApp == "Stasis"
		})
		isNew := snoopOn(agent.ID)
		created := mustWait(ctx, t, events, "the snoop", func(e lab.Event) bool { return isNew(e) && !seen[e.Channel.ID] })
		seen[created.Channel.ID] = true
		bridged := mustWait(ctx, t, events, "the snoop bridged", lab.OnChannel("ChannelEnteredBridge", created.Channel.ID))
		return eventTime(t, bridged).Sub(eventTime(t, start))
	}
	// Alone, twice: the first request also opens callwarden's HTTP
	// connections to ARI.
	var alone time.Duration
	for range 2 {
		lone := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*222"+exts[0])
		alone = interceptTime(lone, agents[0])
		mustHangup(ctx, t, l, lone.First)
		mustOK(t, l.WaitChannelGone(ctx, lone.First))
	}

	sups := make([]lab.LocalCall, len(agents))
	for i := range agents {
		sups[i] = originatePhone(ctx, t, l, "1001", "Local/1001@cw-supervisor-line/n", "*222"+exts[i], nil)
	}
	var together []time.Duration
	for i := range agents {
		together = append(together, interceptTime(sups[i], agents[i]))
	}
	slowest := slices.Max(together)
	t.Logf("Stasis -> snoop bridged: alone %s; %d at once %v (slowest %s)", alone, len(agents), together, slowest)
	// Loose on purpose: the machine is shared and timings are noisy.
	if slowest > 500*time.Millisecond {
		t.Errorf("the slowest of %d simultaneous requests took %s, want < 500ms", len(agents), slowest)
	}
}

// TestInterceptLatencyWithAThousandUnrelatedChannelsUp measures Stasis to
// bridged with the lab idle, then with 1,000 unrelated channels up: with
// the model of the PBX, a request no longer lists every channel, so the
// unrelated calls should barely show. The bound is loose (shared machine);
// the numbers are logged.
func TestInterceptLatencyWithAThousandUnrelatedChannelsUp(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 5*time.Minute)
	cw := startCallwarden(t, l, asterisk.WatchdogEnforce)
	events := mustEvents(ctx, t, l)
	const n = 10
	idle := interceptSamples(ctx, t, l, events, n)

	// 500 Local calls that wait: two channels each, no media.
	const calls = 500
	for i := range calls {
		id := l.NewID("background")
		if _, err := l.Originate(ctx, lab.OriginateParams{Endpoint: "Local/wait@cw-customer-audio/n", Context: "cw-customer-audio",
			Extension: "wait", Priority: 1, CallerID: fmt.Sprint(5560000 + i), ChannelID: id, OtherChannelID: id + "-2"}); err != nil {
			t.Fatalf("background call %d: %v", i, err)
		}
	}
	waitFor(ctx, t, "the model tracking the background calls", func() error {
		if got := len(cw.a.Model().Channels); got < 2*calls {
			return fmt.Errorf("%d channels tracked", got)
		}
		return nil
	})
	loaded := interceptSamples(ctx, t, l, events, n)
	p50, p99 := func(d []time.Duration) time.Duration { return d[len(d)/2] }, func(d []time.Duration) time.Duration { return d[len(d)-1] }
	t.Logf("Stasis -> snoop bridged, n=%d each: idle p50 %s p99(max) %s; with %d unrelated channels p50 %s p99(max) %s",
		n, p50(idle), p99(idle), 2*calls, p50(loaded), p99(loaded))
	if p99(loaded) > 500*time.Millisecond {
		t.Errorf("with %d unrelated channels the slowest request took %s, want < 500ms", 2*calls, p99(loaded))
	}
	if got := counterSum(t, cw.reg, "callwarden_asterisk_call_lookups_total"); got < 2*n {
		t.Errorf("%v call lookups counted, want %d", got, 2*n)
	}
}
