package asterisk

import (
	"testing"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

func TestEveryHandlerFollowingAChannelGetsItsEvents(t *testing.T) {
	a, err := New(Options{
		URL: "http://127.0.0.1:1/ari", User: "u", Password: "p",
		Snapshot: func() *enforce.Snapshot { return nil }, Auditor: &recordingAuditor{}, Recordings: memory.NewRecordings(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two supervisors monitor the same agent: both sessions follow its channel.
	first, second := a.subscribe("sup-1", "agent"), a.subscribe("sup-2", "agent")
	a.follow(first, "agent") // following twice delivers once
	hangup := &ari.ChannelHangupRequest{Channel: ari.ChannelData{ID: "agent"}}
	if !a.route(hangup) {
		t.Fatal("the agent's hangup reached no handler")
	}
	for name, in := range map[string]*inbox{"first": first, "second": second} {
		if n := len(in.ch); n != 1 {
			t.Errorf("the %s session got %d copies of the agent's hangup, want 1", name, n)
		}
	}

	// The first session ends: the second still follows the agent, and the
	// first's own channel is no longer routed anywhere.
	a.unsubscribe(first)
	for len(second.ch) > 0 {
		<-second.ch
	}
	if !a.route(hangup) || len(second.ch) != 1 {
		t.Error("the remaining session lost the agent's events when the other one ended")
	}
	if a.route(&ari.ChannelHangupRequest{Channel: ari.ChannelData{ID: "sup-1"}}) {
		t.Error("an ended session's channel is still routed")
	}
	a.unsubscribe(second)
	if len(a.subs) != 0 {
		t.Errorf("subscriptions left after every session ended: %v", a.subs)
	}
}
