package asterisk

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

func TestOrphansOfAPreviousProcessAreEndedBeforeTheAdapterServes(t *testing.T) {
	const (
		bridge    = "cw-callwarden-bridge-0123456789abcdef"
		snoop     = "cw-callwarden-snoop-fedcba9876543210"
		recSnoop  = "cw-callwarden-recsnoop-000000000042"
		othersApp = "cw-callwarden-x-bridge-0123456789abcdef" // application "callwarden-x"'s
	)
	f := newFakeARI(t)
	f.answer(http.MethodGet, "/bridges", http.StatusOK,
		`[{"id":"`+bridge+`","channels":["`+snoop+`","sup1"]},{"id":"`+othersApp+`","channels":[]},{"id":"queue-bridge","channels":["agent1","cust1"]}]`)
	f.answer(http.MethodGet, "/channels", http.StatusOK, `[
	 {"id":"agent1","name":"PJSIP/2001-00000002","state":"Up","dialplan":{"app_name":"Queue","app_data":"sales"}},
	 {"id":"cust1","name":"PJSIP/trunk-00000001","state":"Up","caller":{"number":"5550100"}},
	 {"id":"`+snoop+`","name":"Snoop/agent1-00000001","state":"Up","dialplan":{"app_name":"Stasis","app_data":"callwarden,snoop,whisper,spy=both,whisper=out"}},
	 {"id":"sup1","name":"PJSIP/1001-00000003","state":"Up","caller":{"number":"1001"},"dialplan":{"app_name":"Stasis","app_data":"callwarden,monitor,whisper,2001"}},
	 {"id":"`+recSnoop+`","name":"Snoop/agent1-00000002","state":"Up","dialplan":{"app_name":"Stasis","app_data":"callwarden,recording"}},
	 {"id":"req1","name":"PJSIP/1003-00000004","state":"Up","caller":{"number":"1003"},"dialplan":{"app_name":"Stasis","app_data":"callwarden,check,monitor.listen,2001"}},
	 {"id":"else1","name":"PJSIP/1004-00000005","state":"Up","dialplan":{"app_name":"Stasis","app_data":"someone-else,check"}}
	]`)
	f.answer(http.MethodGet, "/channels/req1", http.StatusOK,
		`{"id":"req1","name":"PJSIP/1003-00000004","state":"Up","caller":{"number":"1003"},"dialplan":{"app_name":"Stasis","app_data":"callwarden,check,monitor.listen,2001"}}`)
	recs := memory.NewRecordings()
	if err := recs.SaveRecording(context.Background(), enforce.Recording{ID: "000000000042", Name: "callwarden-000000000042",
		Target: "agent2001", StartedBy: "alice", StartedAt: time.Now(), State: enforce.RecordingActive, Channel: recSnoop}); err != nil {
		t.Fatal(err)
	}
	audit := startAuditedAdapter(t, f, func(o *Options) { o.Recordings = recs })

	// Connected means swept: everything below is already done.
	for _, call := range []string{"DELETE /bridges/" + bridge, "DELETE /channels/" + snoop, "DELETE /channels/sup1",
		"DELETE /channels/" + recSnoop} {
		if !f.called(call) {
			t.Errorf("orphan not ended before serving: no %s", call)
		}
	}
	// The request the dead process never decided is asked again, not ended.
	if !f.called("POST /channels/req1/move?app=callwarden&appArgs=check%2Cmonitor.listen%2C2001") {
		t.Error("the request left undecided was not sent into the application again with its arguments")
	}
	for _, call := range []string{"DELETE /bridges/" + othersApp, "DELETE /bridges/queue-bridge", "DELETE /channels/agent1",
		"DELETE /channels/cust1", "DELETE /channels/else1", "DELETE /channels/req1", "POST /channels/else1/move"} {
		if f.called(call) {
			t.Errorf("the sweep ended what is not this application's orphan: %s", call)
		}
	}
	rec, err := recs.Recording(context.Background(), "000000000042")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != enforce.RecordingStopped || rec.StoppedAt.IsZero() {
		t.Errorf("orphaned recording left %q in the store, want stopped", rec.State)
	}
	got := map[string]enforce.AuditRecord{}
	for _, r := range audit.All() {
		if r.Source != "watchdog" || r.Reason != session.ReasonOrphaned || r.Outcome != enforce.OutcomeEnforced || r.Decision != "deny" {
			t.Errorf("orphan audited as %+v, want a watchdog deny orphaned_session, outcome enforced", r)
		}
		got[r.Channels[0]] = r
	}
	if r := got[snoop]; r.User != "alice" || r.Action != "monitor.whisper" || r.Target != "agent2001" {
		t.Errorf("orphaned session audited as %+v, want alice whispering to agent2001", r)
	}
	if r := got[recSnoop]; r.User != "alice" || r.Action != "recording.stop" {
		t.Errorf("orphaned recording audited as %+v, want alice's recording stopped", r)
	}
	if len(got) != 2 {
		t.Errorf("%d orphans audited, want 2 (the request is asked again, not ended): %+v", len(got), audit.All())
	}
}

func TestARequestThatCannotBeAskedAgainIsEnded(t *testing.T) {
	f := newFakeARI(t)
	listed := `{"id":"req1","name":"PJSIP/1003-00000004","state":"Up","caller":{"number":"1003"},"dialplan":{"app_name":"Stasis","app_data":"callwarden,check,monitor.listen,2001"}}`
	f.answer(http.MethodGet, "/channels", http.StatusOK, "["+listed+"]")
	f.answer(http.MethodGet, "/channels/req1", http.StatusOK, listed)
	f.answer(http.MethodPost, "/channels/req1/move", http.StatusInternalServerError, `{"message":"Internal Server Error"}`)
	audit := startAuditedAdapter(t, f, nil)
	if !f.called("DELETE /channels/req1") {
		t.Fatal("a request that could not be asked again was left waiting")
	}
	recs := audit.All()
	if len(recs) != 1 || recs[0].Reason != session.ReasonOrphaned || recs[0].User != "erin" || recs[0].Action != "monitor.listen" {
		t.Errorf("the ended request audited as %+v, want erin's monitor.listen ended as an orphan", recs)
	}
}
