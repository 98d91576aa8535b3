package asterisk

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// stasisStartFrom is stasisStart from a phone of the given channel name and
// caller id number.
func stasisStartFrom(channelID, name, number string, args ...string) string {
	b, _ := json.Marshal(map[string]any{
		"type": "StasisStart", "application": "callwarden", "timestamp": "2026-11-23T10:00:00.000+0000",
		"args": args,
		"channel": map[string]any{"id": channelID, "name": name, "state": "Up",
			"caller": map[string]string{"number": number}, "creationtime": "2026-11-23T10:00:00.000+0000"},
	})
	return string(b)
}

// finishPlayback waits until the adapter plays something to channelID and
// tells it the playback finished, as Asterisk would.
func (f *fakeARI) finishPlayback(conn net.Conn, channelID string) {
	f.t.Helper()
	prefix := "POST /channels/" + channelID + "/play/"
	waitFor(f.t, "a playback on "+channelID, func() bool { return f.called(prefix) })
	var id string
	f.mu.Lock()
	for _, c := range f.calls {
		if rest, ok := strings.CutPrefix(c, prefix); ok {
			id, _, _ = strings.Cut(rest, "?")
		}
	}
	f.mu.Unlock()
	f.send(conn, `{"type":"PlaybackFinished","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000",`+
		`"playback":{"id":"`+id+`","media_uri":"sound:x","target_uri":"channel:`+channelID+`","state":"done"}}`)
}

// listenToAgent1 has alice (sup1) ask to listen to agent 2001 and lets
// the snoop the adapter creates on agent1 enter Stasis, as Asterisk would.
func (f *fakeARI) listenToAgent1(conn net.Conn) {
	f.t.Helper()
	f.send(conn, stasisStart("sup1", "monitor", "listen", "2001"))
	waitFor(f.t, "a snoop on the agent", func() bool { return f.called("POST /channels/agent1/snoop") })
	snoop := f.query("POST /channels/agent1/snoop").Get("snoopId")
	f.send(conn, `{"type":"StasisStart","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000","args":["snoop"],`+
		`"channel":{"id":"`+snoop+`","name":"Snoop/agent1-00000001","state":"Up","creationtime":"2026-11-23T10:00:00.000+0000"}}`)
}

// agentOnASalesCall makes the fake PBX hold agent 2001's answered call
// (channel agent1) from customer 5550100 in the sales queue.
func agentOnASalesCall(f *fakeARI) {
	f.answer(http.MethodGet, "/channels", http.StatusOK,
		`[{"id":"agent1","name":"PJSIP/2001-00000002","state":"Up","connected":{"number":"5550100"}}]`)
	f.answer(http.MethodGet, "/bridges", http.StatusOK, `[]`)
	f.answer(http.MethodGet, "/channels/agent1/variable", http.StatusOK, `{"value":"sales"}`)
}

func TestUnknownCallerIsAuditedWithItsChannelCallerIDAndPBX(t *testing.T) {
	f := newFakeARI(t)
	agentOnASalesCall(f)
	audit := startAuditedAdapter(t, f, func(o *Options) { o.PBX = "pbx1" })
	conn := <-f.conn
	f.send(conn, stasisStartFrom("stranger1", "PJSIP/1999-0000000a", "1999", "monitor", "listen", "2001"))
	waitFor(t, "the unknown caller audited", func() bool { return len(audit.All()) > 0 })
	f.finishPlayback(conn, "stranger1")
	waitFor(t, "the unknown caller hung up", func() bool { return f.called("DELETE /channels/stranger1") })
	recs := audit.All()
	if len(recs) != 1 {
		t.Fatalf("audit records %+v, want one", recs)
	}
	r := recs[0]
	if r.User != "" || r.Decision != "deny" {
		t.Errorf("audited as user %q decision %q, want an unknown user denied", r.User, r.Decision)
	}
	if len(r.Channels) == 0 || r.Channels[0] != "stranger1" {
		t.Errorf("channels %v, want the requesting channel stranger1 first", r.Channels)
	}
	if !strings.Contains(r.Detail, "PJSIP/1999-0000000a") || !strings.Contains(r.Detail, "1999") {
		t.Errorf("detail %q names neither the phone's channel nor its caller id", r.Detail)
	}
	if r.PBX != "pbx1" || r.AskedBy != "asterisk:pbx1" {
		t.Errorf("PBX %q asked by %q, want pbx1 and asterisk:pbx1", r.PBX, r.AskedBy)
	}
}

func TestAllowWhoseBridgingFailsIsAuditedFailedAndTheSupervisorHungUp(t *testing.T) {
	f := newFakeARI(t)
	agentOnASalesCall(f)
	audit := startAuditedAdapter(t, f, nil)
	f.answer(http.MethodPost, "/bridges/*/addChannel", http.StatusBadRequest, `{"message":"Channel not in Stasis application"}`)
	conn := <-f.conn
	f.listenToAgent1(conn)
	waitFor(t, "the supervisor hung up", func() bool { return f.called("DELETE /channels/sup1") })
	waitFor(t, "two audit records", func() bool { return len(audit.All()) >= 2 })
	recs := audit.All()
	if len(recs) != 2 {
		t.Fatalf("audit records %+v, want the decision and its outcome", recs)
	}
	decision, result := recs[0], recs[1]
	if decision.User != "alice" || decision.Decision != "allow" {
		t.Errorf("decision record %+v, want alice allowed", decision)
	}
	if result.Decision != "allow" || result.Outcome != enforce.OutcomeFailed || result.User != "alice" || result.Action != "monitor.listen" {
		t.Errorf("outcome record %+v, want alice's allow with outcome failed", result)
	}
	if !strings.Contains(result.Detail, "Channel not in Stasis application") {
		t.Errorf("outcome detail %q does not say why the PBX refused", result.Detail)
	}
	// The snoop is attached while the bridge is made; the supervisor and
	// it are bridged in one call, and when that fails the snoop goes too.
	if snoop := f.query("POST /channels/agent1/snoop").Get("snoopId"); snoop != "" {
		waitFor(t, "the unbridged snoop hung up", func() bool { return f.called("DELETE /channels/" + snoop) })
	}
}

func TestAllowThatIsBridgedIsAuditedEnforced(t *testing.T) {
	f := newFakeARI(t)
	agentOnASalesCall(f)
	audit := startAuditedAdapter(t, f, nil)
	conn := <-f.conn
	f.listenToAgent1(conn)
	waitFor(t, "the outcome record", func() bool { return len(audit.All()) >= 2 })
	r := audit.All()[1]
	if r.Decision != "allow" || r.Outcome != enforce.OutcomeEnforced || r.User != "alice" {
		t.Errorf("outcome record %+v, want alice's allow enforced", r)
	}
	if r.Caller != "5550100" || r.PBX != "asterisk" || r.AskedBy != "asterisk:asterisk" {
		t.Errorf("outcome record %+v, want caller 5550100 on PBX asterisk asked by asterisk:asterisk", r)
	}
}
