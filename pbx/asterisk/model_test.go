package asterisk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap/zaptest"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

// chanJSON is a channel snapshot as Asterisk sends it; vars, when not nil,
// is its channelvars object (ari.conf channelvars).
func chanJSON(id, name, state, caller, connected string, vars map[string]string) map[string]any {
	c := map[string]any{"id": id, "name": name, "state": state, "creationtime": "2026-11-23T10:00:00.000+0000",
		"caller": map[string]string{"number": caller}, "connected": map[string]string{"number": connected}}
	if vars != nil {
		c["channelvars"] = vars
	}
	return c
}

// contract is the channelvars object of a channel whose dialplan set
// CALLWARDEN_QUEUE to queue (and nothing else): every variable ari.conf
// names is carried, an unset one as "".
func contract(queue string) map[string]string {
	return map[string]string{varUser: "", varQueue: queue, varQueueName: ""}
}

// event builds the JSON of an ARI event of typ with fields.
func event(typ string, fields map[string]any) string {
	m := map[string]any{"type": typ, "application": "callwarden", "timestamp": "2026-11-23T10:00:00.000+0000"}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func bridgeJSON(id string, members ...string) map[string]any {
	return map[string]any{"id": id, "bridge_type": "mixing", "channels": members}
}

// mustApply decodes each event as the adapter does and applies it to m.
func mustApply(tb testing.TB, m *pbxModel, events ...string) {
	tb.Helper()
	for _, e := range events {
		ev, _, err := decodeEvent([]byte(e))
		if err != nil {
			tb.Fatalf("decode %s: %v", e, err)
		}
		m.apply(ev)
	}
}

func syncedModel(tb testing.TB, events ...string) *pbxModel {
	tb.Helper()
	m := newPBXModel(nil)
	m.beginResync()
	m.finishResync(nil, nil)
	mustApply(tb, m, events...)
	return m
}

func channelOf(tb testing.TB, m *pbxModel, id string) ModelChannel {
	tb.Helper()
	for _, c := range m.view().Channels {
		if c.ID == id {
			return c
		}
	}
	tb.Fatalf("channel %s not in the model", id)
	return ModelChannel{}
}

// salesCallEvents are the events of customer 5550100's sales call answered
// by agent 2001: the customer's channel and the agent's member channel,
// bridged.
func salesCallEvents(vars bool) []string {
	var cv, av map[string]string
	if vars {
		cv, av = map[string]string{varUser: "", varQueue: "", varQueueName: "sales"}, contract("sales")
	}
	return []string{
		event("ChannelCreated", map[string]any{"channel": chanJSON("cust", "Local/sales@cw-customer-00000001;2", "Ring", "5550100", "", cv)}),
		event("ChannelCreated", map[string]any{"channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Down", "", "", av)}),
		event("ChannelStateChange", map[string]any{"channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "5550100", av)}),
		event("ChannelStateChange", map[string]any{"channel": chanJSON("cust", "Local/sales@cw-customer-00000001;2", "Up", "5550100", "", cv)}),
		event("BridgeCreated", map[string]any{"bridge": bridgeJSON("b1")}),
		event("ChannelEnteredBridge", map[string]any{"bridge": bridgeJSON("b1", "cust"), "channel": chanJSON("cust", "Local/sales@cw-customer-00000001;2", "Up", "5550100", "", cv)}),
		event("ChannelEnteredBridge", map[string]any{"bridge": bridgeJSON("b1", "cust", "member"), "channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "5550100", av)}),
	}
}

func TestModelFollowsTheEvents(t *testing.T) {
	t.Run("a bridged call is two Up channels in one bridge, with their variables", func(t *testing.T) {
		m := syncedModel(t, salesCallEvents(true)...)
		member := channelOf(t, m, "member")
		if member.State != "Up" || member.Bridge != "b1" || member.Connected != "5550100" || member.Vars[varQueue] != "sales" {
			t.Errorf("member channel %+v, want Up in b1, connected to 5550100, CALLWARDEN_QUEUE sales", member)
		}
		if cust := channelOf(t, m, "cust"); cust.Bridge != "b1" || cust.Caller != "5550100" || cust.Vars[varQueueName] != "sales" {
			t.Errorf("customer channel %+v, want in b1, caller 5550100, QUEUENAME sales", cust)
		}
		if v := m.view(); len(v.Bridges) != 1 || !slices.Equal(v.Bridges[0].Channels, []string{"cust", "member"}) {
			t.Errorf("bridges %+v, want b1 holding cust and member", v.Bridges)
		}
	})
	t.Run("a variable set is the event's value even when its snapshot predates it", func(t *testing.T) {
		m := syncedModel(t, salesCallEvents(true)...)
		mustApply(t, m, event("ChannelVarset", map[string]any{"variable": "__CALLWARDEN_QUEUE", "value": "support",
			"channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "5550100", contract("sales"))}))
		if q := channelOf(t, m, "member").Vars[varQueue]; q != "support" {
			t.Errorf("CALLWARDEN_QUEUE %q after it was set to support", q)
		}
	})
	t.Run("a channel that leaves its bridge is in none", func(t *testing.T) {
		m := syncedModel(t, salesCallEvents(true)...)
		mustApply(t, m, event("ChannelLeftBridge", map[string]any{"bridge": bridgeJSON("b1", "cust"),
			"channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "5550100", contract("sales"))}))
		if b := channelOf(t, m, "member").Bridge; b != "" {
			t.Errorf("member still in bridge %q after leaving it", b)
		}
	})
	t.Run("destroyed channels and bridges are gone, and the gauge follows", func(t *testing.T) {
		var tracked int
		m := newPBXModel(func(n int) { tracked = n })
		m.beginResync()
		m.finishResync(nil, nil)
		mustApply(t, m, salesCallEvents(true)...)
		if tracked != 2 {
			t.Errorf("gauge %d with two channels", tracked)
		}
		mustApply(t, m,
			event("ChannelDestroyed", map[string]any{"cause": 16, "cause_txt": "Normal Clearing", "channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "", nil)}),
			event("BridgeDestroyed", map[string]any{"bridge": bridgeJSON("b1", "cust")}))
		v := m.view()
		if len(v.Channels) != 1 || v.Channels[0].ID != "cust" || v.Channels[0].Bridge != "" || len(v.Bridges) != 0 {
			t.Errorf("model %+v, want the customer's channel alone, in no bridge", v)
		}
		if tracked != 1 {
			t.Errorf("gauge %d with one channel", tracked)
		}
	})
	t.Run("a late event of a destroyed channel does not bring it back", func(t *testing.T) {
		m := syncedModel(t, salesCallEvents(true)...)
		mustApply(t, m,
			event("ChannelDestroyed", map[string]any{"channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "", nil)}),
			event("ChannelStateChange", map[string]any{"channel": chanJSON("member", "Local/2001@cw-agent-00000002;1", "Up", "", "", nil)}))
		if v := m.view(); len(v.Channels) != 1 {
			t.Errorf("channels %+v, want the customer's alone", v.Channels)
		}
	})
	t.Run("snapshots without channelvars leave the variables unknown", func(t *testing.T) {
		m := syncedModel(t, salesCallEvents(false)...)
		if vars := channelOf(t, m, "member").Vars; vars != nil {
			t.Errorf("variables %v known without channelvars", vars)
		}
	})
}

func TestResyncMergesTheListingUnderTheEvents(t *testing.T) {
	m := syncedModel(t, salesCallEvents(true)...)
	// The connection drops: the model is stale from here on.
	m.unsync()
	if _, _, ok := m.call(mustExampleSnapshot(t), "agent2001", ""); ok {
		t.Fatal("an unsynced model answered a lookup")
	}
	m.beginResync()
	// While the PBX is listed: the customer hangs up (its channel and the
	// bridge go), and a new call's channel for agent 2002 comes up.
	mustApply(t, m,
		event("ChannelDestroyed", map[string]any{"channel": chanJSON("cust", "Local/sales@cw-customer-00000001;2", "Up", "5550100", "", nil)}),
		event("BridgeDestroyed", map[string]any{"bridge": bridgeJSON("b1", "member")}),
		event("ChannelStateChange", map[string]any{"channel": chanJSON("a2002", "PJSIP/2002-00000007", "Up", "", "", contract("support"))}))
	if _, _, ok := m.call(mustExampleSnapshot(t), "agent2001", ""); ok {
		t.Fatal("a model being resynced answered a lookup")
	}
	// The listing was made before those events: it still shows the
	// customer, the bridge, and agent 2002 ringing; and a channel the
	// model never saw an event of (agent 2003).
	m.finishResync([]ari.ChannelData{
		{ID: "cust", Name: "Local/sales@cw-customer-00000001;2", State: "Up", ChannelVars: contract("")},
		{ID: "member", Name: "Local/2001@cw-agent-00000002;1", State: "Up", ChannelVars: contract("sales")},
		{ID: "a2002", Name: "PJSIP/2002-00000007", State: "Ringing", ChannelVars: contract("")},
		{ID: "a2003", Name: "PJSIP/2003-00000008", State: "Up", ChannelVars: contract("")},
	}, []ari.BridgeData{{ID: "b1", ChannelIDs: []string{"cust", "member"}}})

	v := m.view()
	if !v.Synced {
		t.Fatal("not synced after the listing was merged")
	}
	var ids []string
	for _, c := range v.Channels {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"a2002", "a2003", "member"}) {
		t.Errorf("channels %v, want a2002, a2003 and member: the customer destroyed during the listing must not come back", ids)
	}
	if len(v.Bridges) != 0 || channelOf(t, m, "member").Bridge != "" {
		t.Errorf("bridges %+v, want none: b1 was destroyed during the listing", v.Bridges)
	}
	if c := channelOf(t, m, "a2002"); c.State != "Up" || c.Vars[varQueue] != "support" {
		t.Errorf("agent 2002's channel %+v, want the event's (Up, support) over the older listing's", c)
	}
	if _, found, ok := m.call(mustExampleSnapshot(t), "agent2003", ""); !ok || !found {
		t.Error("agent 2003's listed call not found after the resync")
	}
}

func TestAResyncInterruptedByADisconnectStaysUnsynced(t *testing.T) {
	m := newPBXModel(nil)
	m.beginResync()
	m.unsync()
	m.finishResync([]ari.ChannelData{{ID: "a2003", Name: "PJSIP/2003-00000008", State: "Up"}}, nil)
	if v := m.view(); v.Synced {
		t.Error("a listing finished after the connection dropped made the model synced")
	}
}

func TestModelFindsTheTargetsCall(t *testing.T) {
	snap := mustExampleSnapshot(t)
	events := append(salesCallEvents(true),
		// A snoop on the agent's channel, bridged too, and the
		// supervisor's requesting channel.
		event("ChannelCreated", map[string]any{"channel": chanJSON("snoop", "Snoop/member-00000003", "Up", "", "", contract(""))}),
		event("ChannelEnteredBridge", map[string]any{"bridge": bridgeJSON("b1", "cust", "member", "snoop"), "channel": chanJSON("snoop", "Snoop/member-00000003", "Up", "", "", contract(""))}),
		event("ChannelCreated", map[string]any{"channel": chanJSON("sup", "PJSIP/1001-00000004", "Up", "1001", "", contract(""))}),
	)
	m := syncedModel(t, events...)
	t.Run("the agent's bridged channel, its peer and the queue variables", func(t *testing.T) {
		c, found, ok := m.call(snap, "agent2001", "sup")
		if !ok || !found {
			t.Fatalf("call found %v synced %v", found, ok)
		}
		if c.agent.ID != "member" || c.peer == nil || c.peer.ID != "cust" || c.caller != "5550100" {
			t.Fatalf("call = agent %s peer %v caller %q; want member bridged with cust, caller 5550100", c.agent.ID, c.peer, c.caller)
		}
		if v, ok := channelVar(c.agent, varQueue); !ok || v != "sales" {
			t.Errorf("agent's CALLWARDEN_QUEUE %q (carried %v), want sales", v, ok)
		}
	})
	t.Run("a user without a live call has none", func(t *testing.T) {
		if _, found, ok := m.call(snap, "agent2002", "sup"); !ok || found {
			t.Errorf("agent2002: found %v synced %v, want no call", found, ok)
		}
	})
	t.Run("the requester's own channel is never its target", func(t *testing.T) {
		if _, found, _ := m.call(snap, "alice", "sup"); found {
			t.Error("alice's own requesting channel was taken as her call")
		}
	})
	t.Run("the model agrees with the listing's pickCall", func(t *testing.T) {
		v := m.view()
		var chans []ari.ChannelData
		for _, c := range v.Channels {
			chans = append(chans, ari.ChannelData{ID: c.ID, Name: c.Name, State: c.State, Caller: &ari.CallerID{Number: c.Caller}, Connected: &ari.CallerID{Number: c.Connected}})
		}
		var bridges []ari.BridgeData
		for _, b := range v.Bridges {
			bridges = append(bridges, ari.BridgeData{ID: b.ID, ChannelIDs: b.Channels})
		}
		for _, user := range []string{"agent2001", "agent2002", "alice"} {
			want, wantOK := pickCall(snap, user, "sup", chans, bridges)
			got, found, _ := m.call(snap, user, "sup")
			if found != wantOK || got.agent.ID != want.agent.ID || (got.peer == nil) != (want.peer == nil) {
				t.Errorf("%s: model found %v (%s), listing %v (%s)", user, found, got.agent.ID, wantOK, want.agent.ID)
			}
		}
	})
}

// newIdleAdapter builds an adapter on f without running it: its model
// stays as the test sets it.
func newIdleAdapter(t *testing.T, f *fakeARI) *Adapter {
	t.Helper()
	a, err := New(Options{URL: f.srv.URL + "/ari", User: "cw", Password: "secret", Timeout: time.Second,
		Snapshot: func() *enforce.Snapshot { return nil }, Recordings: memory.NewRecordings(), Logger: zaptest.NewLogger(t),
		Auditor: enforce.AuditorFunc(func(context.Context, enforce.AuditRecord) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.rest.close)
	return a
}

func TestFindCallUsesTheModelOnlyWhenSynced(t *testing.T) {
	snap := mustExampleSnapshot(t)
	t.Run("synced: no REST call at all", func(t *testing.T) {
		f := newFakeARI(t)
		a := newIdleAdapter(t, f)
		a.model.beginResync()
		a.model.finishResync(nil, nil)
		mustApply(t, a.model, salesCallEvents(true)...)
		c, err := a.findCall(t.Context(), snap, "agent2001", "sup")
		if err != nil || c.agent.ID != "member" || c.queue != "sales" {
			t.Fatalf("findCall = %s in %q, %v; want member in sales", c.agent.ID, c.queue, err)
		}
		if calls := f.restCalls(); len(calls) != 0 {
			t.Errorf("REST calls %v for a lookup in a synced model with channelvars", calls)
		}
	})
	t.Run("synced without channelvars: only the call's variables are read, over REST", func(t *testing.T) {
		f := newFakeARI(t)
		f.answer(http.MethodGet, "/channels/cust/variable", http.StatusOK, `{"value":"sales"}`)
		a := newIdleAdapter(t, f)
		a.model.beginResync()
		a.model.finishResync(nil, nil)
		mustApply(t, a.model, salesCallEvents(false)...)
		c, err := a.findCall(t.Context(), snap, "agent2001", "sup")
		if err != nil || c.queue != "sales" {
			t.Fatalf("findCall queue %q, %v; want sales (QUEUENAME on the customer's channel)", c.queue, err)
		}
		if f.called("GET /channels?") || f.called("GET /bridges") {
			t.Error("the PBX was listed although the model is synced")
		}
		if n := f.variableReads("member") + f.variableReads("cust"); n != 4 {
			t.Errorf("%d variable reads, want 4 (two variables on each of the call's two channels)", n)
		}
	})
	t.Run("not synced: the PBX is listed, and a call that ended in the gap is not found", func(t *testing.T) {
		f := newFakeARI(t)
		f.answer(http.MethodGet, "/channels", http.StatusOK, `[]`)
		f.answer(http.MethodGet, "/bridges", http.StatusOK, `[]`)
		a := newIdleAdapter(t, f)
		a.model.beginResync()
		a.model.finishResync(nil, nil)
		mustApply(t, a.model, salesCallEvents(true)...)
		// The connection drops; the call ends meanwhile (no event).
		a.model.unsync()
		_, err := a.findCall(t.Context(), snap, "agent2001", "sup")
		if !errors.Is(err, errNoCall) {
			t.Fatalf("findCall on a stale model: %v, want errNoCall from the listing", err)
		}
		if !f.called("GET /channels?") || !f.called("GET /bridges?") {
			t.Error("the PBX was not listed while the model was not synced")
		}
	})
}

func TestTheRequestersUserIsReadFromItsSnapshot(t *testing.T) {
	f := newFakeARI(t)
	a := newIdleAdapter(t, f)
	snap := mustExampleSnapshot(t)
	ch := ari.ChannelData{ID: "sup", Name: "Local/x@y-00000001;1", ChannelVars: map[string]string{varUser: "alice", varQueue: "", varQueueName: ""}}
	if u, err := a.resolveCaller(t.Context(), snap, ch); err != nil || u != "alice" {
		t.Fatalf("resolveCaller = %q, %v; want alice", u, err)
	}
	if calls := f.restCalls(); len(calls) != 0 {
		t.Errorf("REST calls %v although the snapshot carries CALLWARDEN_USER", calls)
	}
}

// restCalls returns every REST call the fake served.
func (f *fakeARI) restCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func TestAdapterResyncsAtEveryConnection(t *testing.T) {
	f := newFakeARI(t)
	f.answer(http.MethodGet, "/channels", http.StatusOK,
		`[{"id":"agent1","name":"PJSIP/2001-00000002","state":"Up","channelvars":{"CALLWARDEN_USER":"","CALLWARDEN_QUEUE":"sales","QUEUENAME":""}}]`)
	f.answer(http.MethodGet, "/bridges", http.StatusOK, `[]`)
	snap := mustExampleSnapshot(t)
	a := startAdapter(t, f, func() *enforce.Snapshot { return snap }, nil, nil)
	waitFor(t, "the model synced", func() bool { return a.Model().Synced })
	if got := counterValue(a.m.resyncs); got != 1 {
		t.Errorf("%v resyncs after the first connection, want 1", got)
	}
	if v := a.Model(); len(v.Channels) != 1 || v.Channels[0].Vars[varQueue] != "sales" {
		t.Errorf("model %+v, want the listed agent channel with its queue", v)
	}
	conn := <-f.conn
	f.send(conn, event("ChannelCreated", map[string]any{"channel": chanJSON("agent2", "PJSIP/2002-00000003", "Up", "", "", contract(""))}))
	waitFor(t, "the new channel in the model", func() bool { return len(a.Model().Channels) == 2 })
	f.dropConnections()
	waitFor(t, "the second resync", func() bool { return counterValue(a.m.resyncs) == 2 && a.Model().Synced })
	// The listing does not show agent2 (its ChannelDestroyed was lost in
	// the gap): the resynced model does not either.
	if v := a.Model(); len(v.Channels) != 1 || v.Channels[0].ID != "agent1" {
		t.Errorf("model after the resync %+v, want the listing's agent1 alone", v)
	}
}

// benchmarkChannels is a synced model of n live two-channel calls (a
// customer and an agent's PJSIP channel, bridged), fed through events.
func benchmarkModel(b *testing.B, calls int) *pbxModel {
	b.Helper()
	m := newPBXModel(nil)
	m.beginResync()
	m.finishResync(nil, nil)
	for i := range calls {
		cust, agent, br := fmt.Sprintf("cust-%d", i), fmt.Sprintf("agent-%d", i), fmt.Sprintf("bridge-%d", i)
		agentName := fmt.Sprintf("PJSIP/%d-%08x", 30000+i, i)
		for _, ev := range []ari.Event{
			&ari.ChannelCreated{Channel: ari.ChannelData{ID: cust, Name: fmt.Sprintf("PJSIP/trunk-%08x", i), State: "Up", Caller: &ari.CallerID{Number: fmt.Sprint(5550000 + i)}, ChannelVars: contract("")}},
			&ari.ChannelCreated{Channel: ari.ChannelData{ID: agent, Name: agentName, State: "Up", Connected: &ari.CallerID{Number: fmt.Sprint(5550000 + i)}, ChannelVars: contract("sales")}},
			&ari.BridgeCreated{Bridge: ari.BridgeData{ID: br}},
			&ari.ChannelEnteredBridge{Bridge: ari.BridgeData{ID: br, ChannelIDs: []string{cust, agent}}, Channel: ari.ChannelData{ID: agent, Name: agentName, State: "Up", ChannelVars: contract("sales")}},
		} {
			m.apply(ev)
		}
	}
	return m
}

// BenchmarkModelMemory reports the heap a tracked channel costs
// (bytes/channel), bridges and indexes included.
func BenchmarkModelMemory(b *testing.B) {
	for _, calls := range []int{500, 5000} {
		b.Run(fmt.Sprintf("channels=%d", 2*calls), func(b *testing.B) {
			var perChannel float64
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				m := benchmarkModel(b, calls)
				runtime.GC()
				runtime.ReadMemStats(&after)
				perChannel = float64(after.HeapAlloc-before.HeapAlloc) / float64(2*calls)
				runtime.KeepAlive(m)
			}
			b.ReportMetric(perChannel, "bytes/channel")
		})
	}
}

// BenchmarkModelLookup finds one agent's call among 1,000 and 10,000
// tracked channels: a map lookup, flat in the number of channels.
func BenchmarkModelLookup(b *testing.B) {
	snap := benchmarkSnapshot(b)
	for _, calls := range []int{500, 5000} {
		m := benchmarkModel(b, calls)
		b.Run(fmt.Sprintf("channels=%d", 2*calls), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, found, ok := m.call(snap, "agent-7", ""); !found || !ok {
					b.Fatal("agent-7's call not found")
				}
			}
		})
	}
}

// benchmarkSnapshot has user agent-7 whose phone is PJSIP/30007.
func benchmarkSnapshot(tb testing.TB) *enforce.Snapshot {
	tb.Helper()
	s, err := enforce.NewSnapshot(enforce.Policy{Users: []enforce.User{{ID: "agent-7", Identities: []string{"PJSIP/30007"}}}}, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestAnUndecodableEventMakesTheAdapterResync(t *testing.T) {
	f := newFakeARI(t)
	f.answer(http.MethodGet, "/channels", http.StatusOK, `[]`)
	f.answer(http.MethodGet, "/bridges", http.StatusOK, `[]`)
	a := startAdapter(t, f, mustExampleSnapshotFunc(t), nil, nil)
	waitFor(t, "the model synced", func() bool { return a.Model().Synced })
	conn := <-f.conn
	// A ChannelStateChange whose channel is not an object: the model
	// cannot know what changed.
	f.send(conn, `{"type":"ChannelStateChange","application":"callwarden","channel":"garbled"}`)
	waitFor(t, "a second resync", func() bool { return counterValue(a.m.resyncs) == 2 && a.Model().Synced })
	if n := counterValue(a.m.dropped.WithLabelValues("malformed")); n != 1 {
		t.Errorf("%v malformed events counted, want 1", n)
	}
}

func mustExampleSnapshotFunc(tb testing.TB) func() *enforce.Snapshot {
	s := mustExampleSnapshot(tb)
	return func() *enforce.Snapshot { return s }
}
