package integration

// A recording paused for a card number must hide the call from the live
// monitor sessions too, proven by audio: the agent's handset plays a 1000 Hz
// tone into the call (a silent customer), and the test records what each
// supervisor's handset hears, before the pause, during it (a session started
// meanwhile and a mode switch included), after a manual resume and after the
// automatic resume of max_pause.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
)

// agentToneHz is the tone the agent's handset plays into the call.
const agentToneHz = 1000

// agentVoiceContext is a dialplan context the test adds at run time (the
// Asterisk CLI, nothing in the image): a channel sent there enters the
// handset application, where the test plays media on it.
const agentVoiceContext = "cw-test-agent-voice"

// agentSpeaks moves the agent's handset (the other half of the queue
// member's Local channel agent) into handsetApp and plays a continuous
// tone of hz on it: what the agent's phone sends into the call.
func agentSpeaks(ctx context.Context, t *testing.T, l *lab.TestLab, hs *lab.EventStream, agent lab.Channel, hz int) {
	t.Helper()
	handsetName, ok := strings.CutSuffix(agent.Name, ";1")
	if !ok {
		t.Fatalf("agent channel %s is not the first half of a Local channel", agent.Name)
	}
	handsetName += ";2"
	chans, err := l.ARI.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var handset string
	for _, ch := range chans {
		if ch.Name == handsetName {
			handset = ch.ID
		}
	}
	if handset == "" {
		t.Fatalf("no channel %s", handsetName)
	}
	for _, cmd := range []string{
		"dialplan add extension voice,1,Stasis(" + handsetApp + ") into " + agentVoiceContext + " replace",
		"channel redirect " + handsetName + " " + agentVoiceContext + ",voice,1",
	} {
		if out, err := l.AsteriskCLI(ctx, cmd); err != nil {
			t.Fatalf("asterisk -rx %q: %v\n%s", cmd, err, out)
		}
	}
	mustWait(ctx, t, hs, "the agent's handset in "+handsetApp, lab.OnChannel("StasisStart", handset))
	if err := ari(ctx, l, http.MethodPost, "/channels/"+url.PathEscape(handset)+"/play",
		url.Values{"media": {"tone:" + strconv.Itoa(hz)}}, nil); err != nil {
		t.Fatalf("play a tone on the agent's handset: %v", err)
	}
}

// hearing records, for d, what each handset (a channel in handsetApp)
// hears, and returns the level of hz in each recording, in order.
func hearing(ctx context.Context, t *testing.T, l *lab.TestLab, hz int, d time.Duration, handsets ...string) []float64 {
	t.Helper()
	names := make([]string, len(handsets))
	for i, h := range handsets {
		names[i] = l.NewID("hears")
		if err := ari(ctx, l, http.MethodPost, "/channels/"+url.PathEscape(h)+"/record", url.Values{
			"name": {names[i]}, "format": {"wav"}, "ifExists": {"overwrite"}, "maxDurationSeconds": {"30"},
		}, nil); err != nil {
			t.Fatalf("record what %s hears: %v", h, err)
		}
	}
	time.Sleep(d)
	levels := make([]float64, len(handsets))
	var wg sync.WaitGroup
	for i, name := range names {
		if err := ari(ctx, l, http.MethodPost, "/recordings/live/"+url.PathEscape(name)+"/stop", nil, nil); err != nil {
			t.Fatalf("stop recording %s: %v", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := l.ReadAsteriskFile(ctx, "/var/spool/asterisk/recording/"+name+".wav")
			if err != nil {
				t.Errorf("read recording %s: %v", name, err)
				return
			}
			a, err := lab.ParseWAV(b)
			if err != nil || len(a.Channels) == 0 {
				t.Errorf("recording %s: %v", name, err)
				return
			}
			levels[i] = lab.ToneLevel(a.Channels[0], a.Rate, hz)
		}()
	}
	wg.Wait()
	return levels
}

// recordingOp matches the result record of user's action on a recording.
func recordingOp(user, action string) func(enforce.AuditRecord) bool {
	return func(r enforce.AuditRecord) bool {
		return r.User == user && r.Action == action && r.Outcome == enforce.OutcomeEnforced
	}
}

func TestPausedRecordingMutesTheLiveSessionsOnTheCall(t *testing.T) {
	// alice's grant gets max_pause 15s, for the automatic resume: longer than the manual pause below takes even on a loaded CI machine.
	p := mustExampleProfiles(t)
	for i := range p.Profiles {
		if p.Profiles[i].Name == "supervisor-with-recording" {
			p.Profiles[i].Grants[0].MaxPause = 15 * time.Second
		}
	}
	snap, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	l := suite.Lab(t)
	ctx := contextFor(t, 2*time.Minute)
	hs := handsets(ctx, t, l)
	cw := startCallwardenWith(t, l, asterisk.WatchdogEnforce, snap)
	events := mustEvents(ctx, t, l)
	agent, ext := queueCallWith(ctx, t, l, events, "sales", "5550100", "wait")
	agentSpeaks(ctx, t, l, hs, agent, agentToneHz)

	alice := dialFromHandset(ctx, t, l, hs, "1001", "*222"+ext)
	cw.audit.wait(ctx, t, "alice listens", recordingOp("alice", "monitor.listen"))
	heard := func(phase string, want bool, handsets ...string) {
		t.Helper()
		levels := hearing(ctx, t, l, agentToneHz, 1500*time.Millisecond, handsets...)
		for i, level := range levels {
			t.Logf("%s: handset %d hears the agent's tone at %.4f", phase, i+1, level)
			if want && level < heardLevel {
				t.Errorf("%s: handset %d hears the agent's tone at %.4f, want at least %.2f", phase, i+1, level, heardLevel)
			}
			if !want && level > silenceLevel {
				t.Errorf("%s: handset %d hears the agent's tone at %.4f, want under %.2f", phase, i+1, level, silenceLevel)
			}
		}
	}
	heard("before any recording", true, alice.Second)

	dialDone(ctx, t, l, events, "1001", "*225"+ext)
	cw.audit.wait(ctx, t, "alice starts recording", recordingOp("alice", "recording.start"))
	dialDone(ctx, t, l, events, "1001", "*228"+ext)
	cw.audit.wait(ctx, t, "alice pauses", recordingOp("alice", "recording.pause"))
	heard("paused", false, alice.Second)

	// admin starts listening while the recording is paused: muted from the
	// start.
	admin := dialFromHandset(ctx, t, l, hs, "1000", "*222"+ext)
	cw.audit.wait(ctx, t, "admin listens", recordingOp("admin", "monitor.listen"))
	heard("paused, a session started meanwhile", false, alice.Second, admin.Second)

	dialDone(ctx, t, l, events, "1001", "*228"+ext)
	cw.audit.wait(ctx, t, "alice resumes", recordingOp("alice", "recording.resume"))
	heard("resumed", true, alice.Second, admin.Second)

	paused := time.Now()
	dialDone(ctx, t, l, events, "1001", "*228"+ext)
	// Audited before alice's line hears the confirmation and is hung up.
	if n := cw.audit.count(recordingOp("alice", "recording.pause")); n != 2 {
		t.Fatalf("%d pauses audited as done, want 2", n)
	}
	heard("paused again", false, alice.Second, admin.Second)
	// alice switches to barge: the new mode's snoop is muted before it is
	// bridged.
	press(ctx, t, l, alice.Second, "6")
	cw.audit.wait(ctx, t, "alice barges", recordingOp("alice", "monitor.barge"))
	heard("paused again, alice barging", false, alice.Second, admin.Second)
	cw.audit.wait(ctx, t, "the max_pause resume", func(r enforce.AuditRecord) bool {
		return r.Cause == enforce.CauseMaxPause && r.Action == "recording.resume" && r.Outcome == enforce.OutcomeEnforced
	})
	t.Logf("max_pause resumed after %v", time.Since(paused))
	heard("resumed by max_pause", true, alice.Second, admin.Second)
}
