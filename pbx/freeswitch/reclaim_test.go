package freeswitch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

func TestARestartConvergesWithWhatFreeSWITCHShows(t *testing.T) {
	const (
		up     = "11111111-1111-1111-1111-111111111111" // a channel still up
		gone   = "22222222-2222-2222-2222-222222222222" // hung up while no callwarden ran
		broken = "33333333-3333-3333-3333-333333333333" // FreeSWITCH cannot answer about it
	)
	ctx := context.Background()
	fake := newFakeESL(t, func(_ int, cmd string) (string, time.Duration) {
		switch cmd {
		case "uuid_exists " + up:
			return "true", 0
		case "uuid_exists " + broken:
			return "-ERR no reply", 0
		case "uuid_exists " + gone:
			return "false", 0
		}
		return "+OK", 0
	})
	recs, sessions := memory.NewRecordings(), memory.NewSessions()
	reg, err := session.NewRegistry(session.RegistryOptions{Store: sessions, Recordings: recs, Instance: "next-run"})
	if err != nil {
		t.Fatal(err)
	}
	log := &auditLog{}
	a, err := New(Options{ESLAddress: fake.addr(), ESLPassword: "ClueCon", OutboundListen: "127.0.0.1:0", PBX: "fs1",
		Timeout: time.Second, Snapshot: func() *enforce.Snapshot { return mustExampleSnapshot(t) }, Auditor: log,
		Recordings: recs, Sessions: reg, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(rctx) }()
	defer func() { cancel(); <-done }()

	started := time.Now().Add(-time.Minute)
	for id, channel := range map[string]string{"ms-up": up, "ms-gone": gone, "ms-broken": broken} {
		if err := sessions.PutSession(ctx, enforce.LiveSession{ID: id, User: "alice", ChannelID: channel, Target: "agent2001",
			Mode: "listen", PBX: "fs1", Instance: "dead-run", StartedAt: started, UpdatedAt: started}); err != nil {
			t.Fatal(err)
		}
	}
	for id, channel := range map[string]string{"111111111111": up, "222222222222": gone} {
		if err := recs.SaveRecording(ctx, enforce.Recording{ID: id, Name: "callwarden-" + id, PBX: "fs1", Target: "agent2001",
			Channel: channel, StartedBy: "alice", StartedAt: started, State: enforce.RecordingActive, Instance: "dead-run"}); err != nil {
			t.Fatal(err)
		}
	}
	// Converge as Run does once the inbound connection is up.
	eventually(2*time.Second, func() bool { // the assertions below say what is missing
		if err := reg.Converge(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := recs.Recording(ctx, "222222222222")
		return got.State == enforce.RecordingStopped
	})

	live, _ := sessions.LiveSessions(ctx)
	var ids []string
	for _, s := range live {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "ms-broken,ms-up" && strings.Join(ids, ",") != "ms-up,ms-broken" {
		t.Errorf("listed %v, want the session still up and the one FreeSWITCH could not answer about", ids)
	}
	if got, _ := recs.Recording(ctx, "111111111111"); got.State != enforce.RecordingActive || got.Instance != "next-run" {
		t.Errorf("recording on a channel still up: %+v, want re-attached", got)
	}
	if got, _ := recs.Recording(ctx, "222222222222"); got.State != enforce.RecordingStopped || got.StoppedBy != session.ByRestart {
		t.Errorf("recording on a channel hung up: %+v, want stopped by %s", got, session.ByRestart)
	}
	// The re-attached recording's RECORD_STOP is now this process's to
	// follow: it is live here.
	if id, ok := a.recs.Live("callwarden-111111111111"); !ok || id != "111111111111" {
		t.Errorf("Live = %q, %v: the recording's end would not be followed", id, ok)
	}
	var ends int
	for _, r := range log.All() {
		if r.Cause == enforce.CauseDaemonRestart {
			ends++
		}
	}
	if ends != 2 {
		t.Errorf("%d records with cause daemon_restart, want the session and the recording ended: %+v", ends, log.All())
	}
}
