package asterisk

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

func TestARestartConvergesWithWhatAsteriskShows(t *testing.T) {
	const (
		running = "000000000007" // its snoop and live recording are still there
		ended   = "000000000008" // its call ended while no callwarden ran
		runSnp  = "cw-callwarden-recsnoop-" + running
		bridge  = "cw-callwarden-bridge-0123456789abcdef"
	)
	ctx := context.Background()
	f := newFakeARI(t)
	// A monitor bridge of this application holds sup9 (the sweep's DELETE
	// leaves the fake's listing as it is, as a bridge Asterisk failed to
	// destroy): that session still runs and stays listed.
	f.answer(http.MethodGet, "/bridges", http.StatusOK, `[{"id":"queue-bridge","channels":["agent1","cust1"]},
	 {"id":"`+bridge+`","channels":["sup9"]}]`)
	f.answer(http.MethodGet, "/channels", http.StatusOK, `[
	 {"id":"agent1","name":"PJSIP/2001-00000002","state":"Up","dialplan":{"app_name":"Queue","app_data":"sales"}},
	 {"id":"`+runSnp+`","name":"Snoop/agent1-00000002","state":"Up","dialplan":{"app_name":"Stasis","app_data":"callwarden,recording"}}
	]`)
	f.answer(http.MethodGet, "/recordings/live/callwarden-"+running, http.StatusOK, `{"name":"callwarden-`+running+`","state":"recording"}`)
	f.answer(http.MethodGet, "/recordings/live/callwarden-"+ended, http.StatusNotFound, `{"message":"Recording not found"}`)

	recs, sessions := memory.NewRecordings(), memory.NewSessions()
	for _, r := range []enforce.Recording{
		{ID: running, Channel: runSnp, Until: time.Now().Add(time.Hour)},
		{ID: ended, Channel: "cw-callwarden-recsnoop-" + ended},
	} {
		r.Name, r.PBX, r.Target, r.StartedBy, r.StartedAt, r.State, r.Instance =
			"callwarden-"+r.ID, "asterisk", "agent2001", "alice", time.Now().Add(-time.Minute), enforce.RecordingActive, "dead-run"
		mustOKT(t, recs.SaveRecording(ctx, r))
	}
	// The crashed run's listen session: the sweep ended its bridge (no
	// longer listed by Asterisk), its record stayed.
	mustOKT(t, sessions.PutSession(ctx, enforce.LiveSession{ID: "ms-1", User: "alice", Channel: "PJSIP/1001-00000003",
		Target: "agent2001", TargetChannel: "agent1", Mode: "listen", PBX: "asterisk", Instance: "dead-run",
		StartedAt: time.Now().Add(-time.Minute), UpdatedAt: time.Now().Add(-time.Minute)}))
	mustOKT(t, sessions.PutSession(ctx, enforce.LiveSession{ID: "ms-2", User: "bob", ChannelID: "sup9",
		Target: "agent2001", Mode: "barge", PBX: "asterisk", Instance: "dead-run", StartedAt: time.Now(), UpdatedAt: time.Now()}))
	reg, err := session.NewRegistry(session.RegistryOptions{Store: sessions, Recordings: recs, Instance: "next-run"})
	mustOKT(t, err)
	audit := &recordingAuditor{}
	snap := mustExampleSnapshot(t)
	a := startAdapterWith(t, f, func() *enforce.Snapshot { return snap }, nil, audit,
		func(o *Options) { o.Recordings, o.Sessions = recs, reg })

	if f.called("DELETE /channels/" + runSnp) {
		t.Fatal("the sweep hung up the snoop of a recording Asterisk still records")
	}
	rec, _ := recs.Recording(ctx, running)
	if rec.State != enforce.RecordingActive || rec.Instance != "next-run" {
		t.Fatalf("running recording %+v, want still recording, owned by the next run", rec)
	}

	mustOKT(t, reg.Converge(ctx))
	if got, _ := recs.Recording(ctx, ended); got.State != enforce.RecordingStopped || got.StoppedBy != session.ByRestart {
		t.Errorf("ended recording %+v, want stopped by %s", got, session.ByRestart)
	}
	if live, _ := sessions.LiveSessions(ctx); len(live) != 1 || live[0].ID != "ms-2" {
		t.Errorf("live sessions %+v, want the crashed run's ended, the one still bridged listed", live)
	}
	causes := map[string]string{}
	for _, r := range audit.All() {
		causes[r.Action+" "+r.Reason] = r.Cause
	}
	for what, cause := range map[string]string{
		"recording.start reattached":    "",
		"recording.stop daemon_restart": enforce.CauseDaemonRestart,
		"monitor.listen daemon_restart": enforce.CauseDaemonRestart,
	} {
		if c, ok := causes[what]; !ok || c != cause {
			t.Errorf("no %q record with cause %q; records: %v", what, cause, causes)
		}
	}

	// The re-attached recording is this run's: a stop goes to Asterisk.
	stopped, err := a.recs.Change(ctx, ariRecorder{a}, "alice", rec, session.RecStop, enforce.Decision{})
	mustOKT(t, err)
	if stopped.State != enforce.RecordingStopped || !f.called("POST /recordings/live/callwarden-"+running+"/stop") ||
		!f.called("DELETE /channels/"+runSnp) {
		t.Errorf("stop of the re-attached recording: %+v, calls %v", stopped, strings.Join(f.calls, "; "))
	}
}

func mustOKT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
