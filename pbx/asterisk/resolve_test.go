package asterisk

import (
	"os"
	"testing"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/config/configtest"
	"github.com/callwarden/callwarden/enforce"
)

// mustExampleSnapshot compiles deploy/examples/profiles.yaml, the lab's
// profiles.
func mustExampleSnapshot(tb testing.TB) *enforce.Snapshot {
	tb.Helper()
	if _, err := os.Stat("../../deploy/examples/profiles.yaml"); err != nil {
		tb.Fatal(err)
	}
	return configtest.MustSnapshot(tb, "../../deploy/examples/profiles.yaml")
}

func chanData(id, name, state, number string) ari.ChannelData {
	return ari.ChannelData{ID: id, Name: name, State: state, Caller: &ari.CallerID{Number: number}}
}

func TestCallerIsResolvedByEndpointThenCallerID(t *testing.T) {
	snap := mustExampleSnapshot(t)
	for _, tc := range []struct {
		name string
		ch   ari.ChannelData
		want string
	}{
		{"PJSIP endpoint", chanData("1", "PJSIP/1001-0000002a", "Up", "9999"), "alice"},
		{"Local supervisor line by caller id", chanData("2", "Local/1003@cw-supervisor-line-0000000a;1", "Up", "1003"), "erin"},
		{"unknown phone", chanData("3", "PJSIP/7777-00000001", "Up", "7777"), ""},
	} {
		if got := resolveChannelUser(snap, tc.ch, true); got != tc.want {
			t.Errorf("%s: resolved %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTargetCallIsTheAgentsBridgedChannel(t *testing.T) {
	snap := mustExampleSnapshot(t)
	customer := chanData("cust", "Local/sales@cw-customer-00000001;2", "Up", "5550100")
	member := chanData("member", "Local/2001@cw-agent-00000002;1", "Up", "5550100")
	phone := chanData("phone", "Local/2001@cw-agent-00000002;2", "Up", "")
	ringing := chanData("ring", "PJSIP/2001-00000009", "Ringing", "")
	snoop := chanData("snoop", "Snoop/member-00000003", "Up", "")
	sup := chanData("sup", "PJSIP/1001-00000004", "Up", "1001")
	chans := []ari.ChannelData{phone, ringing, snoop, customer, member, sup}
	bridges := []ari.BridgeData{{ID: "b1", ChannelIDs: []string{"cust", "member", "snoop"}}}

	c, ok := pickCall(snap, "agent2001", "sup", chans, bridges)
	if !ok {
		t.Fatal("no call found for agent2001")
	}
	if c.agent.ID != "member" || c.peer == nil || c.peer.ID != "cust" || c.caller != "5550100" {
		t.Fatalf("call = agent %s peer %v caller %q; want member bridged with cust, caller 5550100", c.agent.ID, c.peer, c.caller)
	}
	if _, ok := pickCall(snap, "agent2002", "sup", chans, bridges); ok {
		t.Fatal("agent2002 has no call but one was found")
	}
	// The requester's own channel is never its target.
	if _, ok := pickCall(snap, "alice", "sup", chans, bridges); ok {
		t.Fatal("alice's own requesting channel was taken as her call")
	}
}
