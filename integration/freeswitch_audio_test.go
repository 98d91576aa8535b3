package integration

// Who hears whom in a FreeSWITCH monitor session, proven by audio rather than by
// callwarden's word. The lab's parties each speak their own tone (customer 1000 Hz,
// agent 440 Hz, supervisor 2000 Hz); for each mode, reached by a feature code or by a
// mode digit callwarden decides again, the test records what each party hears and
// measures each tone's level in the recording (lab.ToneLevel).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// freeswitchAudioProfiles: sup1001 may listen, whisper and barge on team-a; sup1002
// may listen and whisper there, not barge.
const freeswitchAudioProfiles = `version: 1
profiles:
  - name: every-mode-team-a
    grants:
      - actions: [monitor.listen, monitor.whisper, monitor.barge]
        teams: [team-a]
  - name: no-barge-team-a
    grants:
      - actions: [monitor.listen, monitor.whisper]
        teams: [team-a]
users:
  - id: sup1001
    profile: every-mode-team-a
    identities: [loopback/supervisor_1001]
  - id: sup1002
    profile: no-barge-team-a
    identities: [loopback/supervisor_1002]
  - id: agent2001
    teams: [team-a]
    identities: ["2001", 2001@lab.callwarden]
`

// The lab parties' tones.
const (
	customerHz   = 1000
	agentHz      = 440
	supervisorHz = 2000
	busyHz       = 620 // the refusal's upper tone (480+620 Hz, 500 ms on, 500 ms off)
)

// Levels (lab.ToneLevel, 1 = full scale) a heard tone must exceed and an unheard one
// must stay under; the test logs the measured ones. Measured on 1.10.12: a party's
// tone heard 0.30-0.31, the refusal (on half the time) about 0.11; unheard tones
// mostly under 0.001, up to 0.005 when the 2 cores are loaded (glitches spread a
// little energy everywhere). A leak would be heard at full level.
const (
	heardLevel   = 0.05
	silenceLevel = 0.02
)

// hearWindow is how long each party's hearing is recorded per check.
const hearWindow = time.Second

// ears are the channels whose read stream is what each party hears: the customer's
// leg (A) reads what the agent's leg (B) writes and the reverse; the supervisor's
// handset (its call's B leg) reads what the supervisor's channel (A, running
// eavesdrop) writes.
type ears struct {
	customer, agent, supervisor string
}

// heard is the level of each party's tone in what one party heard.
type heard map[int]float64

func (h heard) String() string {
	return fmt.Sprintf("customer %.4f, agent %.4f, supervisor %.4f, refusal %.4f", h[customerHz], h[agentHz], h[supervisorHz], h[busyHz])
}

// mustRecordReadOnly makes every recording of the channels record what they read
// (RECORD_READ_ONLY, read when uuid_record starts).
func mustRecordReadOnly(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, uuids ...string) {
	t.Helper()
	for _, u := range uuids {
		_, err := fs.API(ctx, "uuid_setvar "+u+" RECORD_READ_ONLY true")
		mustOK(t, err)
	}
}

// listen records what each of e's parties hears for hearWindow, all at once, and
// measures the three tones in each recording.
func listen(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, e ears) (customer, agent, supervisor heard) {
	t.Helper()
	uuids := []string{e.customer, e.agent, e.supervisor}
	paths := make([]string, len(uuids))
	for i, u := range uuids {
		paths[i] = "/tmp/" + fs.NewUUID("hear") + ".wav"
		_, err := fs.API(ctx, "uuid_record "+u+" start "+paths[i])
		mustOK(t, err)
	}
	time.Sleep(hearWindow)
	out := make([]heard, len(uuids))
	var wg sync.WaitGroup
	errs := make([]error, len(uuids))
	for i, u := range uuids {
		_, err := fs.API(ctx, "uuid_record "+u+" stop "+paths[i])
		mustOK(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = measure(ctx, fs, paths[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		mustOK(t, err)
	}
	return out[0], out[1], out[2]
}

// measure reads the recording at path (inside the container) and measures the
// parties' tones in it.
func measure(ctx context.Context, fs *lab.TestFreeSWITCH, path string) (heard, error) {
	b, err := fs.ReadFile(ctx, path)
	if err != nil {
		return nil, err
	}
	a, err := lab.ParseWAV(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if n := len(a.Channels[0]); n < a.Rate/2 {
		return nil, fmt.Errorf("%s: %d samples at %d Hz, want at least half a second", path, n, a.Rate)
	}
	h := heard{}
	for _, hz := range []int{customerHz, agentHz, supervisorHz, busyHz} {
		h[hz] = lab.ToneLevel(a.Channels[0], a.Rate, hz)
	}
	return h, nil
}

// wantHears checks that who heard (or did not hear) the tone of hz.
func wantHears(t *testing.T, phase, who string, h heard, hz int, hears bool) {
	t.Helper()
	switch lvl := h[hz]; {
	case hears && lvl < heardLevel:
		t.Errorf("%s: the %s does not hear the %d Hz tone (level %.4f < %.3f)", phase, who, hz, lvl, heardLevel)
	case !hears && lvl > silenceLevel:
		t.Errorf("%s: the %s hears the %d Hz tone (level %.4f > %.4f)", phase, who, hz, lvl, silenceLevel)
	}
}

// wantMode records who hears whom and checks it is mode's: the supervisor hears the
// agent and the customer; the agent hears the supervisor in whisper and barge, the
// customer only in barge; neither hears a refusal played to the supervisor. It
// returns what the supervisor heard.
func wantMode(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, e ears, phase, mode string) heard {
	t.Helper()
	customer, agent, supervisor := listen(ctx, t, fs, e)
	t.Logf("%s: the supervisor hears %s; the agent hears %s; the customer hears %s", phase, supervisor, agent, customer)
	wantHears(t, phase, "supervisor", supervisor, agentHz, true)
	wantHears(t, phase, "supervisor", supervisor, customerHz, true)
	wantHears(t, phase, "agent", agent, customerHz, true)
	wantHears(t, phase, "customer", customer, agentHz, true)
	wantHears(t, phase, "agent", agent, supervisorHz, mode == "whisper" || mode == "barge")
	wantHears(t, phase, "customer", customer, supervisorHz, mode == "barge")
	wantHears(t, phase, "agent", agent, busyHz, false)
	wantHears(t, phase, "customer", customer, busyHz, false)
	return supervisor
}

// fsMonitorSession is one supervisor monitoring agent 2001's call in the audio tests.
type fsMonitorSession struct {
	sup  string // the supervisor's channel (A leg: eavesdrop and digits)
	ears ears
	recs int // audit records of the session so far
}

// startFSMonitor makes a customer call agent 2001, supervisor dial code, waits
// until the eavesdrop runs and is audited (allow, enforced), and readies the three
// parties' recordings.
func startFSMonitor(ctx context.Context, t *testing.T, l *lab.TestLab, cw *fsDaemon, supervisor, code string) *fsMonitorSession {
	t.Helper()
	fs := cw.fs
	customer, agentLeg, err := fs.CustomerCall(ctx, "", "2001", "5550110")
	mustOK(t, err)
	waitListed(ctx, t, fs, agentLeg)
	call, err := fs.SupervisorCall(ctx, supervisor, code, cw.outbound)
	mustOK(t, err)
	// The next session must find its own call of agent 2001, not this one.
	t.Cleanup(func() {
		for _, u := range []string{call.A, customer} {
			if err := fs.Kill(context.WithoutCancel(ctx), u); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		for _, u := range []string{call.A, call.B, customer, agentLeg} {
			if err := fs.WaitGone(context.WithoutCancel(ctx), u); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	wantEavesdropping(ctx, t, fs, call.A, agentLeg)
	recs := fsMonitorRecords(ctx, t, l, call.A, 2)
	if recs[1].Outcome != enforce.OutcomeEnforced {
		t.Fatalf("result record %+v, want enforced", recs[1])
	}
	s := &fsMonitorSession{sup: call.A, ears: ears{customer: customer, agent: agentLeg, supervisor: call.B}, recs: 2}
	mustRecordReadOnly(ctx, t, fs, customer, agentLeg, call.B)
	return s
}

// press makes the supervisor's channel receive digit as a phone's keypad digit
// would (uuid_recv_dtmf with '~': without it FreeSWITCH marks the digit
// skip-process and it bypasses the channel's digit bindings, which an RTP digit
// goes through) and, when decided is set, waits for the switch's audit records (a
// decision, and its result on an allow) and returns the decision.
func (s *fsMonitorSession) press(ctx context.Context, t *testing.T, l *lab.TestLab, fs *lab.TestFreeSWITCH, digit string, decided int) enforce.AuditRecord {
	t.Helper()
	_, err := fs.API(ctx, "uuid_recv_dtmf "+s.sup+" ~"+digit)
	mustOK(t, err)
	if decided == 0 {
		time.Sleep(300 * time.Millisecond) // as long as a switch takes to be heard
		return enforce.AuditRecord{}
	}
	recs := fsMonitorRecords(ctx, t, l, s.sup, s.recs+decided)
	dec := recs[s.recs]
	s.recs += decided
	// The mode changes at the eavesdrop's next frame (20 ms).
	time.Sleep(100 * time.Millisecond)
	return dec
}

func TestFreeSWITCHMonitorAudio(t *testing.T) {
	l, fs, ctx := fsLab(t)
	// The harness's own recordings are a bypass callwarden's watchdog would stop:
	// this daemon only reports them.
	cw := serveFreeSWITCHPolicy(ctx, t, l, fs, "callwarden", freeswitchAudioProfiles, "CALLWARDEN_FREESWITCH_WATCHDOG=report-only")

	t.Run("listen, then mode digits decided again: FreeSWITCH's own 3 does nothing, 5 whispers, 6 barges, 4 listens", func(t *testing.T) {
		ctx := shortly(t, ctx)
		s := startFSMonitor(ctx, t, l, cw, "1001", "*2222001")
		wantMode(ctx, t, fs, s.ears, "*222 listen", "listen")

		// FreeSWITCH's own barge digit, through the digit machine (no binding: dropped)
		// and queued as the channel's DTMF (eavesdrop_enable_dtmf=false: not read).
		s.press(ctx, t, l, fs, "3", 0)
		_, err := fs.API(ctx, "uuid_recv_dtmf "+s.sup+" 3")
		mustOK(t, err)
		time.Sleep(300 * time.Millisecond)
		wantMode(ctx, t, fs, s.ears, "listen after FreeSWITCH's barge digit 3", "listen")

		for _, step := range []struct{ digit, mode string }{{"5", "whisper"}, {"6", "barge"}, {"4", "listen"}} {
			dec := s.press(ctx, t, l, fs, step.digit, 2)
			if dec.Action != "monitor."+step.mode || dec.Decision != "allow" || !strings.Contains(dec.Detail, "switch from ") {
				t.Errorf("digit %s: decision %+v, want monitor.%s allowed", step.digit, dec, step.mode)
			}
			wantMode(ctx, t, fs, s.ears, "digit "+step.digit+" "+step.mode, step.mode)
		}
		// The digits' inline event application leaves its name as the channel's
		// current application (docs/freeswitch.md); the eavesdrop goes on.
		d, err := fs.Dump(ctx, s.sup)
		mustOK(t, err)
		t.Logf("after the digits the supervisor's current_application is %s(%s)", d["variable_current_application"], d["variable_current_application_data"])
	})

	t.Run("barge by *224", func(t *testing.T) {
		ctx := shortly(t, ctx)
		s := startFSMonitor(ctx, t, l, cw, "1001", "*2242001")
		wantMode(ctx, t, fs, s.ears, "*224 barge", "barge")
	})

	t.Run("whisper by *223; a barge digit without the right is refused and the whisper goes on", func(t *testing.T) {
		ctx := shortly(t, ctx)
		s := startFSMonitor(ctx, t, l, cw, "1002", "*2232001")
		wantMode(ctx, t, fs, s.ears, "*223 whisper", "whisper")
		dec := s.press(ctx, t, l, fs, "6", 1)
		if dec.User != "sup1002" || dec.Action != "monitor.barge" || dec.Decision != "deny" || dec.Reason != "action_not_granted" {
			t.Errorf("decision %+v, want sup1002 denied monitor.barge action_not_granted", dec)
		}
		sup := wantMode(ctx, t, fs, s.ears, "whisper after a refused 6", "whisper")
		t.Logf("the refused supervisor hears the busy tone's %d Hz at %.4f", busyHz, sup[busyHz])
		wantHears(t, "whisper after a refused 6", "supervisor", sup, busyHz, true)
	})
}
