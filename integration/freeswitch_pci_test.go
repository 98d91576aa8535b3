package integration

// The FreeSWITCH side of a recording paused for a card number: the supervisors
// eavesdropping on the call hear neither party while it lasts, proven by audio with
// the lab's party tones (see freeswitch_audio_test.go), and hear them again after a
// manual resume and after the automatic resume of max_pause.

import (
	"errors"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// freeswitchPCIProfiles: sup1001 may listen, barge and record on team-a, a pause
// resuming by itself after 15 s (longer than the steps of the first pause take on
// a loaded machine: 6 s was once too short); sup1002 may listen there.
const freeswitchPCIProfiles = `version: 1
profiles:
  - name: pci-supervisor
    grants:
      - actions: [monitor.listen, monitor.barge, recording.start, recording.pause, recording.resume]
        teams: [team-a]
        max_pause: 15s
  - name: listener
    grants:
      - actions: [monitor.listen]
        teams: [team-a]
users:
  - id: sup1001
    profile: pci-supervisor
    identities: [loopback/supervisor_1001]
  - id: sup1002
    profile: listener
    identities: [loopback/supervisor_1002]
  - id: agent2001
    teams: [team-a]
    identities: ["2001", 2001@lab.callwarden]
`

// wantSupervisorHears checks that the supervisor hears both parties, or neither.
func wantSupervisorHears(t *testing.T, phase string, supervisor heard, hears bool) {
	t.Helper()
	t.Logf("%s: the supervisor hears %s", phase, supervisor)
	wantHears(t, phase, "supervisor", supervisor, agentHz, hears)
	wantHears(t, phase, "supervisor", supervisor, customerHz, hears)
}

func TestFreeSWITCHPausedRecordingMutesTheLiveSessionsOnTheCall(t *testing.T) {
	l, fs, ctx := fsLab(t)
	// The harness's own recordings are a bypass callwarden's watchdog would stop:
	// this daemon only reports them.
	cw := serveFreeSWITCHPolicy(ctx, t, l, fs, "callwarden", freeswitchPCIProfiles, "CALLWARDEN_FREESWITCH_WATCHDOG=report-only")
	s := startFSMonitor(ctx, t, l, cw, "1001", "*2222001")
	_, _, sup := listen(ctx, t, fs, s.ears)
	wantSupervisorHears(t, "listening, not recorded", sup, true)

	record := func(code, action string) {
		t.Helper()
		req := cw.supervisorCall(ctx, t, "1001", code)
		wantAllowed(t, wantRequestDone(ctx, t, l, cw, req, 2), "sup1001", action)
	}
	record("*2252001", "recording.start")
	record("*2282001", "recording.pause")
	customer, agent, sup := listen(ctx, t, fs, s.ears)
	wantSupervisorHears(t, "paused", sup, false)
	wantHears(t, "paused", "agent", agent, customerHz, true)
	wantHears(t, "paused", "customer", customer, agentHz, true)

	// Barging while muted: the supervisor still hears nothing, and both parties
	// hear the supervisor.
	s.press(ctx, t, l, fs, "6", 2)
	customer, agent, sup = listen(ctx, t, fs, s.ears)
	wantSupervisorHears(t, "paused, barging", sup, false)
	wantHears(t, "paused, barging", "agent", agent, supervisorHz, true)
	wantHears(t, "paused, barging", "customer", customer, supervisorHz, true)

	// sup1002 starts listening while the recording is paused: muted from the start.
	second, err := fs.SupervisorCall(ctx, "1002", "*2222001", cw.outbound)
	mustOK(t, err)
	wantEavesdropping(ctx, t, fs, second.A, s.ears.agent)
	fsMonitorRecords(ctx, t, l, second.A, 2)
	mustRecordReadOnly(ctx, t, fs, second.B)
	late := ears{customer: s.ears.customer, agent: s.ears.agent, supervisor: second.B}
	_, _, sup2 := listen(ctx, t, fs, late)
	wantSupervisorHears(t, "paused, sup1002 started meanwhile", sup2, false)

	record("*2282001", "recording.resume")
	_, _, sup = listen(ctx, t, fs, s.ears)
	wantSupervisorHears(t, "resumed, sup1001", sup, true)
	_, _, sup2 = listen(ctx, t, fs, late)
	wantSupervisorHears(t, "resumed, sup1002", sup2, true)

	paused := time.Now()
	record("*2282001", "recording.pause")
	_, _, sup = listen(ctx, t, fs, s.ears)
	wantSupervisorHears(t, "paused again", sup, false)
	waitFor(ctx, t, "the max_pause resume", func() error {
		recs, err := recentAudit(ctx, t, l)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Cause == enforce.CauseMaxPause && r.Action == "recording.resume" && r.Outcome == enforce.OutcomeEnforced {
				return nil
			}
		}
		return errors.New("no max_pause resume audited yet")
	})
	t.Logf("max_pause resumed after %v", time.Since(paused))
	_, _, sup = listen(ctx, t, fs, s.ears)
	wantSupervisorHears(t, "resumed by max_pause", sup, true)
}
