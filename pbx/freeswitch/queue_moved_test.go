package freeswitch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// moveEvent is what FreeSWITCH's inbound socket sends once the dialplan
// (a transfer, mod_callcenter, uuid_broadcast set::) has set the queue on
// the agent's leg: an event carrying the channel's variables.
func moveEvent(queue string) Event {
	return chanEvent("CHANNEL_EXECUTE_COMPLETE", monitorTargetUUID, "Channel-Name: PJSIP/2001-00000007",
		"Channel-Call-State: ACTIVE", "Application: set", "Application-Data: callwarden_queue="+queue,
		"variable_callwarden_queue: "+queue)
}

func TestAMonitoredCallMovedToAProtectedQueueEndsTheSession(t *testing.T) {
	snap := mustExampleSnapshot(t)
	log := &auditLog{}
	reg, err := session.NewRegistry(session.RegistryOptions{Notice: time.Millisecond,
		Policy: func() *enforce.Snapshot { return snap }})
	if err != nil {
		t.Fatal(err)
	}
	a := MustAdapter(t, snap, log, func(o *Options) { o.Sessions = reg })
	// The model knows the agent's leg, in sales, from its answer.
	a.onEvent(chanEvent("CHANNEL_ANSWER", monitorTargetUUID, "Channel-Name: PJSIP/2001-00000007",
		"Channel-Call-State: ACTIVE", "variable_callwarden_queue: sales"))

	listed := func(queue string) bool {
		live, _ := reg.List(context.Background())
		return len(live) == 1 && live[0].Queue == queue
	}
	ended := make(chan error, 1)
	go func() {
		// admin listens to agent 2001's sales call.
		if !eventually(3*time.Second, func() bool { return listed("sales") }) {
			ended <- errors.New("the session was never listed in sales")
			return
		}
		// Another variable: nothing moves.
		a.onEvent(chanEvent("CHANNEL_EXECUTE_COMPLETE", monitorTargetUUID, "Application: set",
			"variable_callwarden_queue: sales", "variable_other: x"))
		// The call moves to support, which admin may monitor: the session
		// goes on, in support.
		a.onEvent(moveEvent("support"))
		if !eventually(3*time.Second, func() bool { return listed("support") }) {
			ended <- errors.New("the session did not move to support")
			return
		}
		// Then to the HR hotline, which nobody may monitor: it ends.
		a.onEvent(moveEvent("hr-hotline"))
		ended <- nil
	}()
	got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"), holdOn)
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(got, "|")
	for _, want := range []string{"api uuid_break " + uuid + " all", "api uuid_displace " + uuid + " start ", "api uuid_kill " + uuid} {
		if !strings.Contains(joined, want) {
			t.Errorf("commands %q, want %q: the eavesdrop broken, the refusal tone, the supervisor hung up", got, want)
		}
	}
	recs := waitRecords(t, log, 3)
	if dec := recs[0]; dec.Queue != "sales" || dec.Decision != "allow" {
		t.Errorf("decision record %+v, want an allow in sales", dec)
	}
	end := recs[len(recs)-1]
	if end.Outcome != enforce.OutcomeEnded || end.Cause != enforce.CauseProtectedTarget || end.Queue != "hr-hotline" || end.User != "admin" {
		t.Errorf("end record %+v, want admin's session ended protected_target in hr-hotline", end)
	}
	if live, _ := reg.List(context.Background()); len(live) != 0 {
		t.Errorf("still listed: %+v", live)
	}
}

func TestTheChannelModelReportsTheQueueWhenItLearnsOrChangesIt(t *testing.T) {
	m := newChannelModel(time.Now, nil)
	if _, moved := m.apply(chanEvent("CHANNEL_CALLSTATE", monitorTargetUUID, "Channel-Call-State: RINGING")); moved {
		t.Error("an event without variables reported a queue")
	}
	if q, moved := m.apply(moveEvent("sales")); !moved || q != "sales" {
		t.Errorf("apply = %q, %v; want the queue first learnt reported", q, moved)
	}
	if _, moved := m.apply(chanEvent("CHANNEL_CALLSTATE", monitorTargetUUID, "Channel-Call-State: ACTIVE")); moved {
		t.Error("an event without variables reported a move")
	}
	if _, moved := m.apply(moveEvent("sales")); moved {
		t.Error("the same queue again reported a move")
	}
	if q, moved := m.apply(moveEvent("support")); !moved || q != "support" {
		t.Errorf("apply = %q, %v; want support, moved", q, moved)
	}
	if q, moved := m.apply(chanEvent("CHANNEL_EXECUTE", monitorTargetUUID, "Application: park")); !moved || q != "" {
		t.Errorf("apply = %q, %v; want the queue unset reported as a move", q, moved)
	}
}
