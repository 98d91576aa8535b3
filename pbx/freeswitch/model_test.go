package freeswitch

import (
	"bufio"
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// transcriptEvents are the plain events of a transcript, in Event-Sequence
// order (as the sequencer delivers them), the adapter's subscription only.
func transcriptEvents(tb testing.TB, name string) []Event {
	tb.Helper()
	var evs []Event
	blocks := strings.Split(MustFixture(tb, name), "<<< RECV ")
	for _, b := range blocks[1:] {
		head, rest, _ := strings.Cut(b, "\n")
		i, j := strings.LastIndex(head, "("), strings.LastIndex(head, " bytes)")
		if i < 0 || j < i {
			continue
		}
		n, err := strconv.Atoi(head[i+1 : j])
		if err != nil || n > len(rest) {
			tb.Fatalf("%s: block %q", name, head)
		}
		f, err := readFrame(bufio.NewReader(strings.NewReader(rest[:n])))
		if err != nil || f.contentType() != typeEventPlain {
			continue
		}
		pe, err := parsePlainEvent(f.body)
		if err != nil {
			tb.Fatal(err)
		}
		if ev := eventFromHeaders(pe.header); knownEvent(ev.Name) {
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(evs) < 20 {
		tb.Fatalf("%s: only %d events", name, len(evs))
	}
	return evs
}

// modelChannelOf is channel id of the model's view, if there.
func modelChannelOf(m *channelModel, id string) (ModelChannel, bool) {
	chs, _ := m.view()
	for _, c := range chs {
		if c.UUID == id {
			return c, true
		}
	}
	return ModelChannel{}, false
}

func TestChannelModelFollowsARealBridgedSIPCall(t *testing.T) {
	const a, b = "7e82e66f-0907-4827-bbad-3dea54cd6bcd", "10351a32-3476-4eff-9551-0ca62747ea62"
	m := newChannelModel(time.Now, nil)
	evs := transcriptEvents(t, "esl-transcript-sip.txt")
	bridged, unbridged := false, false
	for _, ev := range evs {
		m.apply(ev)
		switch {
		case ev.Name == "CHANNEL_BRIDGE" && ev.Get("Unique-ID") == a:
			bridged = true
			ca, oka := modelChannelOf(m, a)
			cb, okb := modelChannelOf(m, b)
			if !oka || !okb || ca.Peer != b || cb.Peer != a || ca.CallState != "ACTIVE" || ca.Name != "sofia/internal/9196@127.0.0.1:5080" ||
				ca.CallerNumber != "9196" || !ca.Variables {
				t.Fatalf("after the bridge: %+v / %+v, want both answered legs, each the other's peer", ca, cb)
			}
		case ev.Name == "CHANNEL_UNBRIDGE" && ev.Get("Unique-ID") == a:
			unbridged = true
			if ca, ok := modelChannelOf(m, a); ok && ca.Peer != "" {
				t.Fatalf("after the unbridge: %+v, want no peer", ca)
			}
		}
	}
	if !bridged || !unbridged {
		t.Fatalf("the transcript's bridge (%v) and unbridge (%v) were not seen", bridged, unbridged)
	}
	if chs, _ := m.view(); len(chs) != 0 {
		t.Errorf("after every channel was destroyed the model holds %+v", chs)
	}
}

// chanEvent is a channel event of channel id with headers "Name: value".
func chanEvent(name, id string, headers ...string) Event {
	h := map[string]string{"Event-Name": name, "Unique-ID": id}
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		h[k] = v
	}
	return eventFromHeaders(h)
}

// agentLeg is the answered agent leg id named name, with presence id and
// callwarden_agent agent ("" for none).
func agentLeg(id, name, presence, agent string) Event {
	hs := []string{"Channel-Name: " + name, "Channel-Call-State: ACTIVE", "Caller-Caller-ID-Number: 0612345678",
		"variable_callwarden_queue: sales"}
	if presence != "" {
		hs = append(hs, "Channel-Presence-ID: "+presence)
	}
	if agent != "" {
		hs = append(hs, "variable_callwarden_agent: "+agent)
	}
	return chanEvent("CHANNEL_ANSWER", id, hs...)
}

// syncedModel is a model synced on an empty listing, fed evs.
func syncedModel(evs ...Event) *channelModel {
	m := newChannelModel(time.Now, nil)
	m.merge(nil, false)
	for _, ev := range evs {
		m.apply(ev)
	}
	return m
}

func uuids(cs []candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.uuid)
	}
	return out
}

func TestChannelModelLookup(t *testing.T) {
	snap := mustExampleSnapshot(t)

	t.Run("the agent's answered channels are found by name prefix, exact name and presence id, oldest first", func(t *testing.T) {
		m := syncedModel(
			agentLeg("c1", "PJSIP/2001-00000007", "", ""),
			agentLeg("c2", "2001", "", ""),
			agentLeg("c3", "loopback/agent_2001-b", "2001@lab.callwarden", "2001"),
			agentLeg("other", "PJSIP/2003-00000001", "", ""),
		)
		got, ok := m.lookup(snap, "agent2001", uuid)
		if !ok || !slices.Equal(uuids(got), []string{"c1", "c2", "c3"}) {
			t.Fatalf("lookup = %v (synced %v), want c1 c2 c3", uuids(got), ok)
		}
		if c := got[0]; c.queue != "sales" || c.caller != "0612345678" || c.partial {
			t.Errorf("candidate %+v, want queue sales, caller 0612345678, variables known", c)
		}
	})

	t.Run("the leg whose callwarden_agent names the agent wins, else the oldest", func(t *testing.T) {
		a := &Adapter{model: syncedModel(
			agentLeg("leg-a", "loopback/agent_2001-a", "2001@lab.callwarden", ""),
			agentLeg("leg-b", "loopback/agent_2001-b", "2001@lab.callwarden", "2001"),
		)}
		cands, _ := a.model.lookup(snap, "agent2001", uuid)
		if got := uuids(preferred(snap, "agent2001", cands)); !slices.Equal(got, []string{"leg-b", "leg-a"}) {
			t.Fatalf("preferred %v, want leg-b then leg-a", got)
		}
		if got := uuids(preferred(snap, "agent2001", cands[:1])); !slices.Equal(got, []string{"leg-a"}) {
			t.Fatalf("preferred %v without the agent's leg, want leg-a", got)
		}
	})

	t.Run("an unanswered channel, the requester's own and a hung-up one are no call", func(t *testing.T) {
		m := syncedModel(
			chanEvent("CHANNEL_CREATE", "ringing", "Channel-Name: PJSIP/2001-00000001", "Channel-Call-State: RINGING"),
			agentLeg(uuid, "PJSIP/2001-00000002", "", ""),
			agentLeg("gone", "PJSIP/2001-00000003", "", ""),
			chanEvent("CHANNEL_CALLSTATE", "gone", "Channel-Call-State: HANGUP"),
			agentLeg("destroyed", "PJSIP/2001-00000004", "", ""),
			chanEvent("CHANNEL_DESTROY", "destroyed"),
		)
		if got, ok := m.lookup(snap, "agent2001", uuid); !ok || len(got) != 0 {
			t.Fatalf("lookup = %v (synced %v), want none", uuids(got), ok)
		}
		if _, ok := modelChannelOf(m, "destroyed"); ok {
			t.Error("a destroyed channel is still tracked")
		}
	})

	t.Run("a late event of a destroyed channel does not bring it back", func(t *testing.T) {
		m := syncedModel(agentLeg("c1", "PJSIP/2001-00000007", "", ""), chanEvent("CHANNEL_DESTROY", "c1"),
			agentLeg("c1", "PJSIP/2001-00000007", "", ""))
		if got, _ := m.lookup(snap, "agent2001", uuid); len(got) != 0 {
			t.Fatalf("lookup = %v, want none", uuids(got))
		}
	})

	t.Run("a renamed channel is found by its new name only", func(t *testing.T) {
		m := syncedModel(agentLeg("c1", "PJSIP/2003-00000007", "", ""), agentLeg("c1", "PJSIP/2001-00000007", "", ""))
		if got, _ := m.lookup(snap, "agent2001", uuid); !slices.Equal(uuids(got), []string{"c1"}) {
			t.Fatalf("agent2001: %v, want c1", uuids(got))
		}
		if got, _ := m.lookup(snap, "agent2003", uuid); len(got) != 0 {
			t.Fatalf("agent2003: %v, want none", uuids(got))
		}
	})
}

func TestChannelModelResync(t *testing.T) {
	snap := mustExampleSnapshot(t)
	listing := []listedChannel{
		{UUID: "listed", Name: "PJSIP/2001-00000001", CallState: "ACTIVE", CIDNum: "0611111111"},
		{UUID: "destroyed", Name: "PJSIP/2001-00000002", CallState: "ACTIVE"},
		{UUID: "moved", Name: "PJSIP/2001-00000003", CallState: "ACTIVE"},
	}

	t.Run("nothing is answered before the listing is merged, nor after a reset or the connection going down", func(t *testing.T) {
		m := newChannelModel(time.Now, nil)
		m.apply(agentLeg("c1", "PJSIP/2001-00000007", "", ""))
		if _, ok := m.lookup(snap, "agent2001", uuid); ok {
			t.Fatal("answered before the listing")
		}
		m.merge(nil, false)
		if got, ok := m.lookup(snap, "agent2001", uuid); !ok || len(got) != 1 {
			t.Fatalf("after the listing: %v (synced %v), want c1", uuids(got), ok)
		}
		m.down()
		if _, ok := m.lookup(snap, "agent2001", uuid); ok {
			t.Fatal("answered while the connection is down")
		}
		m.reset()
		if chs, synced := m.view(); len(chs) != 0 || synced {
			t.Fatalf("after a reset: %+v, synced %v; want nothing", chs, synced)
		}
	})

	t.Run("events during the listing win: a destroyed channel stays gone, a changed one keeps its change", func(t *testing.T) {
		m := newChannelModel(time.Now, nil)
		m.apply(agentLeg("destroyed", "PJSIP/2001-00000002", "", ""))
		m.apply(chanEvent("CHANNEL_DESTROY", "destroyed"))
		m.apply(agentLeg("moved", "PJSIP/2003-00000003", "", ""))
		m.merge(listing, false)
		got, ok := m.lookup(snap, "agent2001", uuid)
		if !ok || !slices.Equal(uuids(got), []string{"listed"}) {
			t.Fatalf("lookup = %v (synced %v), want only the listed channel", uuids(got), ok)
		}
		if c := got[0]; !c.partial || c.caller != "0611111111" {
			t.Errorf("listed channel %+v, want its variables unknown (dumped on use), caller from the listing", c)
		}
		if c, _ := modelChannelOf(m, "moved"); c.Name != "PJSIP/2003-00000003" {
			t.Errorf("moved channel %+v, want the event's name, not the listing's", c)
		}
	})

	t.Run("a listed channel is completed by its next event", func(t *testing.T) {
		m := newChannelModel(time.Now, nil)
		m.merge(listing, false)
		m.apply(chanEvent("CHANNEL_EXECUTE", "listed", "Channel-Call-State: ACTIVE", "variable_cc_queue: support"))
		if c, _ := modelChannelOf(m, "listed"); !c.Variables || c.Queue != "support" || c.Name != "PJSIP/2001-00000001" {
			t.Errorf("listed channel after an event %+v, want cc_queue support and the listing's name", c)
		}
	})
}

// modelFake is an inbound ESL peer whose `show channels` answers listing;
// during, if set, runs before that answer is sent.
func modelFake(t *testing.T, listing string, during func(f *fakeESL)) *fakeESL {
	var f *fakeESL
	f = newFakeESL(t, func(_ int, cmd string) (string, time.Duration) {
		if cmd == "show channels as json" {
			if during != nil {
				during(f)
			}
			return listing, 0
		}
		return "+OK", 0
	})
	return f
}

// pushEvent sends a plain event made of headers to the adapter.
func pushEvent(f *fakeESL, seq int, name, id string, headers ...string) {
	f.push(fmt.Sprintf("Event-Name: %s\nEvent-Sequence: %d\nUnique-ID: %s\n%s\n\n", name, seq, id, strings.Join(headers, "\n")))
}

// waitModel waits until the adapter's model is synced and cond holds.
func waitModel(t *testing.T, a *Adapter, what string, cond func([]ModelChannel) bool) {
	t.Helper()
	if eventually(3*time.Second, func() bool { chs, synced := a.Channels(); return synced && cond(chs) }) {
		return
	}
	chs, synced := a.Channels()
	t.Fatalf("the model never had %s: %+v (synced %v)", what, chs, synced)
}

func hasChannel(id string) func([]ModelChannel) bool {
	return func(chs []ModelChannel) bool {
		return slices.ContainsFunc(chs, func(c ModelChannel) bool { return c.UUID == id })
	}
}

// modelLookups are the lookups counted by result.
func modelLookups(a *Adapter) map[string]float64 {
	out := map[string]float64{}
	for _, r := range []string{"hit", "miss", "stale", "unsynced"} {
		out[r] = counterValue(a.m.lookups.WithLabelValues(r))
	}
	return out
}

// counterValue is c's value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func TestMonitorDecidesFromTheChannelModel(t *testing.T) {
	snap := mustExampleSnapshot(t)
	fastWindow := func(o *Options) { o.EventWindow = 5 * time.Millisecond }
	answered := []string{"Channel-Name: PJSIP/2001-00000007", "Channel-Call-State: ACTIVE",
		"Caller-Caller-ID-Number: 0612345678", "variable_callwarden_queue: sales"}
	lookupCommands := func(got []string) (show, dump int) {
		for _, c := range got {
			switch {
			case c == "api show channels as json":
				show++
			case strings.HasPrefix(c, "api uuid_dump "):
				dump++
			}
		}
		return show, dump
	}

	t.Run("a call the model knows is eavesdropped on without show channels or uuid_dump, once uuid_exists confirms it", func(t *testing.T) {
		fake := modelFake(t, noChannels, nil)
		log := &auditLog{}
		a := mustAdapterOn(t, fake, snap, log, fastWindow)
		waitModel(t, a, "a sync", func([]ModelChannel) bool { return true })
		pushEvent(fake, 1, "CHANNEL_ANSWER", monitorTargetUUID, answered...)
		waitModel(t, a, "the agent's call", hasChannel(monitorTargetUUID))
		// FreeSWITCH's own listing would say the agent has no call: the
		// model's answer is the one used.
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), noChannels)
		if show, dump := lookupCommands(got); show != 0 || dump != 0 {
			t.Errorf("%d show channels, %d uuid_dump: want none:\n%q", show, dump, got)
		}
		confirm, eavesdrop := commandIndex(got, "api uuid_exists "+monitorTargetUUID), commandIndex(got, "execute-app-arg: "+monitorTargetUUID)
		if confirm < 0 || confirm > eavesdrop {
			t.Errorf("the channel was not confirmed with uuid_exists before the eavesdrop:\n%q", got)
		}
		if commandIndex(got, "execute-app-name: eavesdrop\nevent-lock: true\nexecute-app-arg: "+monitorTargetUUID) < 0 {
			t.Errorf("no eavesdrop on the agent's call:\n%q", got)
		}
		if dec := waitRecords(t, log, 2)[0]; dec.Decision != "allow" || dec.Queue != "sales" || dec.Caller == "" {
			t.Errorf("decision record %+v, want allow in queue sales with the caller", dec)
		}
		if n := modelLookups(a); n["hit"] != 1 {
			t.Errorf("lookups %v, want one hit", n)
		}
	})

	t.Run("a call the model still holds but FreeSWITCH has ended is not eavesdropped on: the agent's next call is", func(t *testing.T) {
		// The agent's call ended and the next one was answered within the
		// events' reordering window: the model has the first's answer, not
		// yet its hangup nor the second.
		fake := modelFake(t, noChannels, nil)
		log := &auditLog{}
		a := mustAdapterOn(t, fake, snap, log, fastWindow)
		waitModel(t, a, "a sync", func([]ModelChannel) bool { return true })
		const ended = "0c1d2e3f-0000-4000-8000-000000000001"
		pushEvent(fake, 1, "CHANNEL_ANSWER", ended, answered...)
		waitModel(t, a, "the agent's ended call", hasChannel(ended))
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"))
		if commandIndex(got, "api uuid_exists "+ended) < 0 {
			t.Errorf("the model's channel was not confirmed:\n%q", got)
		}
		if commandIndex(got, "execute-app-arg: "+ended) >= 0 || commandIndex(got, "execute-app-arg: "+monitorTargetUUID) < 0 {
			t.Errorf("want the eavesdrop on the agent's next call %s, not on the ended %s:\n%q", monitorTargetUUID, ended, got)
		}
		if dec := waitRecords(t, log, 2)[1]; dec.Outcome != enforce.OutcomeEnforced {
			t.Errorf("result record %+v, want enforced", dec)
		}
		if n := modelLookups(a); n["stale"] != 1 || n["hit"] != 0 {
			t.Errorf("lookups %v, want one stale", n)
		}
	})

	t.Run("a call the model does not know yet is looked up on FreeSWITCH", func(t *testing.T) {
		a := mustAdapterOn(t, modelFake(t, noChannels, nil), snap, &auditLog{}, fastWindow)
		waitModel(t, a, "a sync", func([]ModelChannel) bool { return true })
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"))
		if show, dump := lookupCommands(got); show != 1 || dump != 1 {
			t.Errorf("%d show channels, %d uuid_dump: want the lookup on FreeSWITCH:\n%q", show, dump, got)
		}
		if commandIndex(got, "execute-app-arg: "+monitorTargetUUID) < 0 {
			t.Errorf("no eavesdrop on the agent's call:\n%q", got)
		}
		if n := modelLookups(a); n["miss"] != 1 || n["hit"] != 0 {
			t.Errorf("lookups %v, want one miss", n)
		}
	})

	t.Run("a channel only listed at the resync is dumped, and known afterwards", func(t *testing.T) {
		a := mustAdapterOn(t, modelFake(t, channelsJSON("PJSIP/2001-00000007"), nil), snap, &auditLog{}, fastWindow)
		waitModel(t, a, "the listed call", hasChannel(monitorTargetUUID))
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), noChannels)
		if show, dump := lookupCommands(got); show != 0 || dump != 1 {
			t.Errorf("%d show channels, %d uuid_dump: want one uuid_dump:\n%q", show, dump, got)
		}
		waitModel(t, a, "the listed call's variables", func(chs []ModelChannel) bool {
			return slices.ContainsFunc(chs, func(c ModelChannel) bool { return c.UUID == monitorTargetUUID && c.Variables && c.Queue == "sales" })
		})
	})

	t.Run("a channel destroyed while FreeSWITCH lists it does not come back", func(t *testing.T) {
		a := mustAdapterOn(t, modelFake(t, channelsJSON("PJSIP/2001-00000007"), func(f *fakeESL) {
			pushEvent(f, 1, "CHANNEL_DESTROY", monitorTargetUUID, "Channel-Name: PJSIP/2001-00000007")
		}), snap, &auditLog{}, fastWindow)
		waitModel(t, a, "the resync", hasChannel(uuid)) // the listing's other row
		if chs, _ := a.Channels(); hasChannel(monitorTargetUUID)(chs) {
			t.Fatalf("the destroyed channel is back: %+v", chs)
		}
		if v := counterValue(a.m.resyncs); v != 1 {
			t.Errorf("%v resyncs, want 1", v)
		}
	})

	t.Run("while the inbound connection is down the model is not used", func(t *testing.T) {
		fake := modelFake(t, noChannels, nil)
		a := mustAdapterOn(t, fake, snap, &auditLog{}, fastWindow)
		waitModel(t, a, "a sync", func([]ModelChannel) bool { return true })
		pushEvent(fake, 1, "CHANNEL_ANSWER", monitorTargetUUID, answered...)
		waitModel(t, a, "the agent's call", hasChannel(monitorTargetUUID))
		fake.close() // and no reconnection: the listener is gone
		if !eventually(3*time.Second, func() bool { return !a.in.live() }) {
			t.Fatal("the inbound connection never went down")
		}
		// The agent's call ended meanwhile: FreeSWITCH lists no call.
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), noChannels)
		if show, _ := lookupCommands(got); show != 1 || commandIndex(got, "eavesdrop") >= 0 {
			t.Errorf("want FreeSWITCH asked and no eavesdrop:\n%q", got)
		}
		if commandIndex(got, "callwarden_reason target_not_in_call") < 0 {
			t.Errorf("want target_not_in_call:\n%q", got)
		}
		if n := modelLookups(a); n["unsynced"] != 1 || n["hit"] != 0 {
			t.Errorf("lookups %v, want one unsynced", n)
		}
	})
}

// modelOf is a synced model of n unrelated answered channels and agent
// 2001's call.
func modelOf(n int) *channelModel {
	m := syncedModel()
	for i := range n {
		id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		m.apply(chanEvent("CHANNEL_CREATE", id, fmt.Sprintf("Channel-Name: sofia/internal/%d@pbx.example", 100000+i),
			fmt.Sprintf("Channel-Presence-ID: %d@pbx.example", 100000+i), "Channel-Call-State: RINGING",
			fmt.Sprintf("Caller-Caller-ID-Number: 0612%06d", i), "variable_cc_queue: support@default"))
		m.apply(chanEvent("CHANNEL_CALLSTATE", id, "Channel-Call-State: ACTIVE"))
	}
	m.apply(agentLeg(monitorTargetUUID, "PJSIP/2001-00000007", "", "2001"))
	return m
}

func BenchmarkChannelModel(b *testing.B) {
	snap := mustExampleSnapshot(b)
	b.Run("bytes-per-channel", func(b *testing.B) {
		const n = 10000
		var per float64
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m := modelOf(n)
			runtime.GC()
			runtime.ReadMemStats(&after)
			per = float64(after.HeapAlloc-before.HeapAlloc) / n
			runtime.KeepAlive(m)
		}
		b.ReportMetric(per, "B/channel")
	})
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("lookup-%d-channels", n), func(b *testing.B) {
			m := modelOf(n)
			b.ReportAllocs()
			for b.Loop() {
				if got, ok := m.lookup(snap, "agent2001", uuid); !ok || len(got) != 1 {
					b.Fatalf("lookup = %v", got)
				}
			}
		})
	}
	b.Run("apply", func(b *testing.B) {
		m := modelOf(1000)
		ev := agentLeg(monitorTargetUUID, "PJSIP/2001-00000007", "", "2001")
		b.ReportAllocs()
		for b.Loop() {
			m.apply(ev)
		}
	})
}

// bigListing is `show channels as json` of n answered channels, each row
// with FreeSWITCH's columns (about a KiB a row, as 1.10 writes them).
func bigListing(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"row_count":%d,"rows":[`, n)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"uuid":"%08d-0000-4000-8000-000000000000","direction":"inbound","created":"2026-11-23 10:37:47",`+
			`"created_epoch":"1795430267","name":"sofia/internal/%d@pbx.example","state":"CS_EXECUTE","cid_name":"customer",`+
			`"cid_num":"0612%06d","ip_addr":"192.0.2.10","dest":"queue_sales_%d","application":"playback",`+
			`"application_data":"tone_stream://%%(1000,0,440);loops=-1","dialplan":"XML","context":"default","read_codec":"PCMU",`+
			`"read_rate":"8000","read_bit_rate":"64000","write_codec":"PCMU","write_rate":"8000","write_bit_rate":"64000",`+
			`"secure":"","hostname":"pbx","presence_id":"%d@pbx.example","presence_data":"","accountcode":"","callstate":"ACTIVE",`+
			`"callee_name":"agent","callee_num":"%d","callee_direction":"","call_uuid":"","sent_callee_name":"","sent_callee_num":"",`+
			`"initial_cid_name":"customer","initial_cid_num":"0612%06d","initial_ip_addr":"192.0.2.10","initial_dest":"queue_sales_%d",`+
			`"initial_dialplan":"XML","initial_context":"default"}`, i, 100000+i, i, i, 100000+i, 100000+i, i, i)
	}
	b.WriteString("]}")
	return b.String()
}

func TestChannelModelResyncsAPBXWithThousandsOfChannels(t *testing.T) {
	const n = 3000
	listing := bigListing(n)
	if len(listing) <= maxBody {
		t.Fatalf("the listing is %d bytes: it must be larger than an event may be (%d) to prove anything", len(listing), maxBody)
	}
	a := mustAdapterOn(t, modelFake(t, listing, nil), mustExampleSnapshot(t), &auditLog{},
		func(o *Options) { o.EventWindow = 5 * time.Millisecond })
	waitModel(t, a, fmt.Sprintf("the %d listed channels", n), func(chs []ModelChannel) bool { return len(chs) == n })
}

func TestChannelModelForgetsOldTombstones(t *testing.T) {
	now := time.Unix(0, 0)
	m := newChannelModel(func() time.Time { return now }, nil)
	for i := range maxTombstones {
		m.apply(chanEvent("CHANNEL_DESTROY", fmt.Sprint("old-", i)))
	}
	now = now.Add(tombstoneTTL)
	m.apply(chanEvent("CHANNEL_DESTROY", "new"))
	if n := len(m.gone); n != 1 {
		t.Fatalf("%d tombstones after the TTL, want only the new one", n)
	}
}

func TestChannelModelIsDroppedWhenFreeSWITCHFallsSilent(t *testing.T) {
	var silent atomic.Bool
	fake := newFakeESL(t, func(n int, cmd string) (string, time.Duration) {
		switch {
		case cmd == "show channels as json":
			return channelsJSON("PJSIP/2001-00000007"), 0
		case n == 1 && silent.Load():
			return "+OK", time.Second // no answer within Timeout: a dead peer
		}
		return "+OK", 0
	})
	a := mustAdapterOn(t, fake, mustExampleSnapshot(t), &auditLog{}, func(o *Options) {
		o.EventWindow, o.KeepAlive, o.Timeout = 5*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond
	})
	waitModel(t, a, "the listed call", hasChannel(monitorTargetUUID))
	silent.Store(true)
	if !eventually(50*time.Millisecond+200*time.Millisecond+time.Second, func() bool {
		_, synced := a.Channels()
		return !synced || fake.connections() > 1
	}) {
		t.Fatal("the model still answers from a connection whose keepalive gets no answer")
	}
}

func TestChannelModelDoesNotAnswerWhileTheAgentsLegIsBeingAnswered(t *testing.T) {
	snap := mustExampleSnapshot(t)
	// Measured on the lab: the customer's loopback leg (-a) may be ACTIVE
	// hundreds of milliseconds before the agent's (-b, callwarden_agent).
	m := syncedModel(
		agentLeg("customer", "loopback/agent_2001-a", "2001@lab.callwarden", ""),
		chanEvent("CHANNEL_CREATE", "agent", "Channel-Name: loopback/agent_2001-b", "Channel-Call-State: RINGING",
			"Channel-Presence-ID: 2001@lab.callwarden", "variable_callwarden_agent: 2001"),
	)
	if got, ok := m.lookup(snap, "agent2001", uuid); ok {
		t.Fatalf("lookup = %v, answered: the customer's leg would be taken for the agent's", uuids(got))
	}
	m.apply(chanEvent("CHANNEL_CALLSTATE", "agent", "Channel-Call-State: ACTIVE"))
	if got, ok := m.lookup(snap, "agent2001", uuid); !ok || !slices.Equal(uuids(got), []string{"customer", "agent"}) {
		t.Fatalf("once answered: %v (answered %v), want both legs", uuids(got), ok)
	}
}

func TestChannelModelSecondListingDropsGhostsAndAddsLateRows(t *testing.T) {
	snap := mustExampleSnapshot(t)
	m := newChannelModel(time.Now, nil)
	// The first listing, made just after the subscription, still shows a
	// channel destroyed just before it and lacks one made just before it.
	m.merge([]listedChannel{{UUID: "ghost", Name: "PJSIP/2001-00000001", CallState: "ACTIVE"},
		{UUID: "evented", Name: "PJSIP/2003-00000001", CallState: "ACTIVE"}}, false)
	m.apply(chanEvent("CHANNEL_CALLSTATE", "evented", "Channel-Call-State: ACTIVE"))
	m.merge([]listedChannel{{UUID: "late", Name: "PJSIP/2001-00000002", CallState: "ACTIVE"}}, true)
	chs, synced := m.view()
	var ids []string
	for _, c := range chs {
		ids = append(ids, c.UUID)
	}
	if !synced || !slices.Equal(ids, []string{"evented", "late"}) {
		t.Fatalf("after the second listing: %v (synced %v), want the evented channel and the late row, not the ghost", ids, synced)
	}
	if got, _ := m.lookup(snap, "agent2001", uuid); !slices.Equal(uuids(got), []string{"late"}) {
		t.Errorf("lookup = %v, want late", uuids(got))
	}
}

func TestChannelModelLeavesTwoCallsOfTheAgentToFreeSWITCH(t *testing.T) {
	m := syncedModel(
		agentLeg("old", "loopback/agent_2001-b", "2001@lab.callwarden", "2001"),
		agentLeg("new", "loopback/agent_2001-b", "2001@lab.callwarden", "2001"),
	)
	if got, ok := m.lookup(mustExampleSnapshot(t), "agent2001", uuid); ok {
		t.Fatalf("lookup = %v, answered: which call is the agent's is the listing's to say", uuids(got))
	}
}
