package integration

import (
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/session"
)

// TestGrantLimitsEndSessionsStopRecordingsAndResumePauses: alice's
// supervisor grant gets max_duration 3s and max_pause 2s. Her listen
// session ends after 3 s, a recording she starts stops after 3 s, and a
// pause she forgets on a recording the administrator started (no limit)
// resumes after 2 s; each audited with its cause.
func TestGrantLimitsEndSessionsStopRecordingsAndResumePauses(t *testing.T) {
	p := mustExampleProfiles(t)
	for i := range p.Profiles {
		if p.Profiles[i].Name == "supervisor-with-recording" {
			p.Profiles[i].Grants[0].MaxDuration = 3 * time.Second
			p.Profiles[i].Grants[0].MaxPause = 2 * time.Second
		}
	}
	l, ctx, cw, events := startMonitoringPolicy(t, p)
	agent, ext := salesCall(ctx, t, l, events, "5550100")
	agentUser := "agent" + ext
	within := func(what string, got, want time.Duration) {
		t.Helper()
		if got < want-time.Second || got > want+time.Second {
			t.Errorf("%s after %v, want %v ± 1s", what, got, want)
		} else {
			t.Logf("%s after %v (limit %v)", what, got, want)
		}
	}

	t.Run("a listen session ends at max_duration", func(t *testing.T) {
		sess := mustMonitor(ctx, t, l, events, "1001", "*222"+ext, agent.ID)
		bridged := time.Now()
		mustWait(ctx, t, events, "the supervisor out of the bridge", func(e lab.Event) bool {
			return (e.Type == "ChannelLeftBridge" && e.ChannelID() == sess.sup.First) ||
				(e.Type == "BridgeDestroyed" && e.Bridge != nil && e.Bridge.ID == sess.bridge)
		})
		within("the supervisor left the bridge", time.Since(bridged), 3*time.Second)
		end := cw.audit.wait(ctx, t, "the session's end", func(r enforce.AuditRecord) bool {
			return r.User == "alice" && r.Outcome == enforce.OutcomeEnded
		})
		if end.Cause != enforce.CauseMaxDuration || end.Duration < 2 || end.Duration > 4 {
			t.Errorf("end record %+v, want cause max_duration and about 3 s", end)
		}
		mustWait(ctx, t, events, "the supervisor hung up", lab.OnChannel("ChannelDestroyed", sess.sup.First))
	})

	dial := func(supervisor, exten string) { t.Helper(); dialDone(ctx, t, l, events, supervisor, exten) }
	liveState := func(name string) string { t.Helper(); return liveRecordingState(ctx, t, l, name) }

	t.Run("a recording started under max_duration stops after it", func(t *testing.T) {
		// From before the dial: the limit runs from the start, a little later.
		started := time.Now()
		dial("1001", "*225"+ext)
		cw.audit.wait(ctx, t, "alice starts", decision("alice", "recording.start", "allow"))
		rec, err := cw.recs.ActiveRecording(ctx, agentUser)
		if err != nil {
			t.Fatal(err)
		}
		stop := cw.audit.wait(ctx, t, "the max_duration stop", func(r enforce.AuditRecord) bool {
			return r.Cause == enforce.CauseMaxDuration && r.Action == "recording.stop"
		})
		within("the recording stopped", time.Since(started), 3*time.Second)
		if stop.User != session.ByMaxDuration || stop.Outcome != enforce.OutcomeEnforced || stop.Target != agentUser {
			t.Errorf("stop record %+v", stop)
		}
		if got, _ := cw.recs.Recording(ctx, rec.ID); got.State != enforce.RecordingStopped || got.StoppedBy != session.ByMaxDuration {
			t.Errorf("stored recording %+v, want stopped by %s", got, session.ByMaxDuration)
		}
		// Asterisk keeps a finished live recording a moment as "done".
		if s := liveState(rec.Name); s != "gone" && s != "done" {
			t.Errorf("ARI recording %s is %q, want done or gone", rec.Name, s)
		}
	})

	t.Run("a forgotten pause resumes after max_pause", func(t *testing.T) {
		dial("1000", "*225"+ext) // the administrator's grant has no limit
		cw.audit.wait(ctx, t, "admin starts", decision("admin", "recording.start", "allow"))
		rec, err := cw.recs.ActiveRecording(ctx, agentUser)
		if err != nil {
			t.Fatal(err)
		}
		paused := time.Now() // before the dial, as above
		dial("1001", "*228"+ext)
		cw.audit.wait(ctx, t, "alice pauses", decision("alice", "recording.pause", "allow"))
		if s := liveState(rec.Name); s != "paused" {
			t.Fatalf("after alice's pause ARI says %q, want paused", s)
		}
		resume := cw.audit.wait(ctx, t, "the max_pause resume", func(r enforce.AuditRecord) bool {
			return r.Cause == enforce.CauseMaxPause && r.Action == "recording.resume"
		})
		within("the pause resumed", time.Since(paused), 2*time.Second)
		if resume.User != session.ByMaxPause || resume.Outcome != enforce.OutcomeEnforced {
			t.Errorf("resume record %+v", resume)
		}
		if s := liveState(rec.Name); s != "recording" {
			t.Errorf("after max_pause ARI says %q, want recording", s)
		}
		got, _ := cw.recs.Recording(ctx, rec.ID)
		if got.State != enforce.RecordingActive || len(got.Pauses) != 1 || got.Pauses[0].ResumedBy != session.ByMaxPause {
			t.Errorf("stored recording %+v, want resumed by %s", got, session.ByMaxPause)
		}
	})
}
