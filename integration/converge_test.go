package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// TestRestartAfterACrashConvergesTheRegistryWithAsterisk kills callwarden -9
// while alice listens to one agent's call, records it, and records a second
// agent's call; the second call ends while no callwarden runs. The next
// callwarden converges the registry with what Asterisk shows: the listen
// session (swept as an orphan) is no longer listed and its end is audited
// (daemon_restart), the recording of the ended call is stopped and audited,
// the recording Asterisk still records is re-attached, and a stop through
// the new callwarden stops it.
func TestRestartAfterACrashConvergesTheRegistryWithAsterisk(t *testing.T) {
	c := startCrashLab(t, 4*time.Minute)
	l, ctx, bin, cfg, store, first, events := c.l, c.ctx, c.bin, c.cfg, c.store, c.first, c.events
	dial := func(supervisor, exten string) { t.Helper(); dialDone(ctx, t, l, events, supervisor, exten) }

	agentA, extA := salesCall(ctx, t, l, events, "5550100")
	sess := mustMonitor(ctx, t, l, events, "1001", "*222"+extA, agentA.ID)
	dial("1001", "*225"+extA)
	agentB, extB := salesCall(ctx, t, l, events, "5550101")
	dial("1001", "*225"+extB)
	recA := mustActiveRecording(ctx, t, store, "agent"+extA)
	recB := mustActiveRecording(ctx, t, store, "agent"+extB)
	var live enforce.LiveSession
	waitFor(ctx, t, "the listen session listed", func() error {
		ls, err := store.LiveSessions(ctx)
		if err != nil || len(ls) != 1 {
			return fmt.Errorf("live sessions %+v, %v", ls, err)
		}
		live = ls[0]
		return nil
	})
	if recA.Instance != live.Instance || recA.Instance == "" {
		t.Fatalf("recording owned by %q, session by %q: want both the first daemon's", recA.Instance, live.Instance)
	}

	// kill -9: nothing is cleaned up, the records stay live.
	mustOK(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited
	crashed := time.Now()
	// Agent B's call ends while no callwarden runs: Asterisk finishes its
	// recording, and nobody hears of it.
	mustOK(t, l.ARI.Hangup(ctx, agentB.ID))
	waitFor(ctx, t, "agent B's recording finished in Asterisk", func() error {
		if s := liveRecordingState(ctx, t, l, recB.Name); s != "gone" {
			return fmt.Errorf("live recording %s is %q", recB.Name, s)
		}
		return nil
	})
	if got, _ := store.Recording(ctx, recB.ID); got.State != enforce.RecordingActive {
		t.Fatalf("recording B is %q before the restart: the stale record this test is about was not made", got.State)
	}

	serveAsterisk(ctx, t, l, bin, cfg, "second")
	// The first daemon's heartbeat lasts 10s; the registry converges every
	// 5s after it expired.
	wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
	defer wcancel()
	waitFor(wctx, t, "the registry converged with Asterisk", func() error {
		ls, err := store.LiveSessions(ctx)
		if err != nil || len(ls) != 0 {
			return fmt.Errorf("live sessions %+v, %v: want none (the orphan sweep ended alice's listen)", ls, err)
		}
		active, err := store.ActiveRecordings(ctx)
		if err != nil || len(active) != 1 || active[0].ID != recA.ID {
			return fmt.Errorf("active recordings %+v, %v: want only %s, which Asterisk still records", active, err, recA.ID)
		}
		if active[0].Instance == recA.Instance {
			return fmt.Errorf("recording %s still owned by the dead daemon %s", recA.ID, recA.Instance)
		}
		return nil
	})
	t.Logf("converged %s after the crash", time.Since(crashed).Round(time.Millisecond))
	for what, gone := range map[string]func() (bool, error){
		"the orphaned bridge " + sess.bridge:       bridgeGone(ctx, l, sess.bridge),
		"alice's listening line " + sess.sup.First: channelGone(ctx, l, sess.sup.First),
	} {
		if ok, err := gone(); err != nil || !ok {
			t.Errorf("%s still in Asterisk (%v) while the registry lists no session", what, err)
		}
	}
	if s := liveRecordingState(ctx, t, l, recA.Name); s != "recording" {
		t.Errorf("re-attached recording %s is %q in Asterisk, want recording", recA.Name, s)
	}
	if got, _ := store.Recording(ctx, recB.ID); got.State != enforce.RecordingStopped || got.StoppedBy != session.ByRestart || got.StoppedAt.Before(crashed) {
		t.Errorf("recording of the ended call %+v, want stopped by %s after the crash", got, session.ByRestart)
	}

	audit, err := store.ReadAudit(ctx, enforce.AuditFilter{Since: crashed.Add(-time.Second)})
	mustOK(t, err)
	wantAudit := map[string]func(enforce.AuditRecord) bool{
		"alice's listen ended (daemon_restart)": func(r enforce.AuditRecord) bool {
			return r.Session == live.ID && r.Outcome == enforce.OutcomeEnded && r.Cause == enforce.CauseDaemonRestart &&
				r.User == "alice" && r.Action == "monitor.listen" && r.Duration > 0
		},
		"recording B stopped (daemon_restart)": func(r enforce.AuditRecord) bool {
			return r.Action == "recording.stop" && r.Cause == enforce.CauseDaemonRestart && strings.Contains(r.Detail, recB.ID) && r.Duration > 0
		},
		"recording A re-attached": func(r enforce.AuditRecord) bool {
			return r.Action == "recording.start" && r.Reason == session.ReasonReattached && strings.Contains(r.Detail, recA.ID)
		},
	}
	for what, match := range wantAudit {
		found := false
		for _, r := range audit {
			found = found || match(r)
		}
		if !found {
			t.Errorf("no audit record of %s; records since the crash:\n%s", what, auditLines(audit))
		}
	}

	// The re-attached recording is the new daemon's: alice stops it.
	dial("1001", "*229"+extA)
	waitFor(wctx, t, "alice's stop of the re-attached recording", func() error {
		got, err := store.Recording(ctx, recA.ID)
		if err != nil || got.State != enforce.RecordingStopped || got.StoppedBy != "alice" {
			return fmt.Errorf("recording %+v, %v: want stopped by alice", got, err)
		}
		if s := liveRecordingState(ctx, t, l, recA.Name); s != "gone" {
			return fmt.Errorf("live recording %s is %q in Asterisk", recA.Name, s)
		}
		return nil
	})
}

func mustActiveRecording(ctx context.Context, t *testing.T, store enforce.RecordingStore, target string) enforce.Recording {
	t.Helper()
	rec, err := store.ActiveRecording(ctx, target)
	if errors.Is(err, enforce.ErrNotFound) {
		t.Fatalf("no active recording of %s", target)
	}
	mustOK(t, err)
	return rec
}

func auditLines(recs []enforce.AuditRecord) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  %s %s %s %s/%s outcome=%s cause=%s session=%s %s\n", r.Source, r.User, r.Action, r.Decision, r.Reason,
			r.Outcome, r.Cause, r.Session, r.Detail)
	}
	return b.String()
}
