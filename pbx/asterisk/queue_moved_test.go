package asterisk

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// varset is a ChannelVarset event of variable on channel.
func varset(channel, variable, value string) string {
	return `{"type":"ChannelVarset","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000",` +
		`"variable":"` + variable + `","value":"` + value + `",` +
		`"channel":{"id":"` + channel + `","name":"PJSIP/2001-00000002","state":"Up","creationtime":"2026-11-23T10:00:00.000+0000"}}`
}

// variableReads counts the adapter's reads of a variable on channel.
func (f *fakeARI) variableReads(channel string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, "GET /channels/"+channel+"/variable") {
			n++
		}
	}
	return n
}

func TestAMonitoredCallMovedOutOfTheSupervisorsQueuesEndsTheSession(t *testing.T) {
	f := newFakeARI(t)
	snap := mustExampleSnapshot(t)
	policy := func() *enforce.Snapshot { return snap }
	reg, err := session.NewRegistry(session.RegistryOptions{Policy: policy, Notice: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	agentOnASalesCall(f)
	audit := startAuditedAdapter(t, f, func(o *Options) { o.Sessions = reg })
	conn := <-f.conn
	// alice supervises sales and support: she listens to agent 2001's
	// sales call.
	f.listenToAgent1(conn)
	waitFor(t, "the session listed", func() bool { l, _ := reg.List(t.Context()); return len(l) == 1 })

	// Another variable changes: nothing is read or decided.
	reads := f.variableReads("agent1")
	f.send(conn, varset("agent1", "MIXMONITOR_FILENAME", "x.wav"))
	// The call moves within alice's queues: still allowed, now in support.
	f.answer(http.MethodGet, "/channels/agent1/variable", http.StatusOK, `{"value":"support"}`)
	f.send(conn, varset("agent1", "CALLWARDEN_QUEUE", "support"))
	waitFor(t, "the session moved to support", func() bool {
		l, _ := reg.List(t.Context())
		return len(l) == 1 && l[0].Queue == "support"
	})
	// The call's two queue variables are read at once on the agent's
	// channel (it has no peer): two reads, for the queue's change only.
	if n := f.variableReads("agent1"); n != reads+2 {
		t.Errorf("%d reads of the agent's variables after two variable changes, want 2 (the queue's, once)", n-reads)
	}
	if f.called("DELETE /channels/sup1") {
		t.Fatal("a move within the supervisor's queues ended the session")
	}

	// Then to billing, which alice does not supervise: the session ends.
	f.answer(http.MethodGet, "/channels/agent1/variable", http.StatusOK, `{"value":"billing"}`)
	f.send(conn, varset("agent1", "CALLWARDEN_QUEUE", "billing"))
	f.finishPlayback(conn, "sup1") // the refusal sound
	waitFor(t, "the supervisor hung up", func() bool { return f.called("DELETE /channels/sup1") })
	waitFor(t, "the end audited", func() bool {
		recs := audit.All()
		return recs[len(recs)-1].Outcome == enforce.OutcomeEnded
	})
	recs := audit.All()
	end := recs[len(recs)-1]
	if end.Cause != enforce.CauseQueueMoved || end.Queue != "billing" || end.User != "alice" {
		t.Errorf("end record %+v, want alice's session ended queue_moved in billing", end)
	}
}
