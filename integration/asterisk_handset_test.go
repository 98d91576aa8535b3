package integration

// The handset suite: a scripted handset (the lab's cw-demo-handset context,
// in the cwdemo Stasis application) does what a person at a phone would, so
// that the tests can press keys while callwarden plays a recording back
// (5 pauses and resumes, 0 restarts, # stops and the line goes on in the
// dialplan) and move a channel into callwarden with `continue`, which goes
// back to the dialplan when refused.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
)

// handsetApp is the Stasis application the lab's cw-demo-handset context enters
// (Local/<phone>@cw-demo-handset/n answers, then Stasis(cwdemo)): a test that
// registers it can press keys on the handset with POST /channels/{id}/dtmf.
const handsetApp = "cwdemo"

// handsets registers handsetApp for the test. Call it before startCallwarden, so the
// application leaves only after callwarden's cleanup has hung the test's calls up.
func handsets(ctx context.Context, t *testing.T, l *lab.TestLab) *lab.EventStream {
	t.Helper()
	s, err := l.ARI.Events(ctx, handsetApp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the %s application: %v", handsetApp, err)
		}
	})
	return s
}

// dialFromHandset makes phone (e.g. "1001") dial exten in cw-supervisors from a
// scripted handset, and waits until the handset is in handsetApp. First is the line
// running the feature code, Second the handset.
func dialFromHandset(ctx context.Context, t *testing.T, l *lab.TestLab, hs *lab.EventStream, phone, exten string) lab.LocalCall {
	t.Helper()
	id := l.NewID("handset")
	call := lab.LocalCall{First: id, Second: id + "-handset"}
	if _, err := l.Originate(ctx, lab.OriginateParams{
		Endpoint: "Local/" + phone + "@cw-demo-handset/n", Context: "cw-supervisors", Extension: exten, Priority: 1,
		CallerID:  fmt.Sprintf("\"Supervisor %s\" <%s>", phone, phone),
		ChannelID: call.First, OtherChannelID: call.Second,
	}); err != nil {
		t.Fatal(err)
	}
	mustWait(ctx, t, hs, "the handset in "+handsetApp, lab.OnChannel("StasisStart", call.Second))
	return call
}

// press sends DTMF digits from a handset channel (in handsetApp).
func press(ctx context.Context, t *testing.T, l *lab.TestLab, channelID, digits string) {
	t.Helper()
	if err := ari(ctx, l, http.MethodPost, "/channels/"+url.PathEscape(channelID)+"/dtmf",
		url.Values{"dtmf": {digits}, "duration": {"120"}}, nil); err != nil {
		t.Fatalf("press %s: %v", digits, err)
	}
}

// playbackEvent is the playback of a Playback* event.
type playbackEvent struct {
	Playback struct {
		ID        string `json:"id"`
		TargetURI string `json:"target_uri"`
		MediaURI  string `json:"media_uri"`
		State     string `json:"state"`
	} `json:"playback"`
}

func decodePlayback(t *testing.T, e lab.Event) playbackEvent {
	t.Helper()
	var p playbackEvent
	if err := json.Unmarshal(e.Raw, &p); err != nil {
		t.Fatalf("decode %s: %v", e.Type, err)
	}
	return p
}

// playbackState is the playback's state as ARI shows it, or "gone".
func playbackState(ctx context.Context, t *testing.T, l *lab.TestLab, id string) string {
	t.Helper()
	var p struct {
		State string `json:"state"`
	}
	if err := ari(ctx, l, http.MethodGet, "/playbacks/"+url.PathEscape(id), nil, &p); err != nil {
		if errors.Is(err, lab.ErrNotFound) {
			return "gone"
		}
		t.Fatal(err)
	}
	return p.State
}

// waitPlaybackState polls ARI until the playback is in state want.
func waitPlaybackState(ctx context.Context, t *testing.T, l *lab.TestLab, id, want, after string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		got := playbackState(ctx, t, l, id)
		if got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after %s ARI shows playback %s %q, want %q", after, id, got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// recordForPlayback has alice record agent ext's call for about d and returns the
// recording id and its duration as Asterisk measured it.
func recordForPlayback(ctx context.Context, t *testing.T, l *lab.TestLab, cw *callwarden, events *lab.EventStream, ext string, d time.Duration) (string, time.Duration) {
	t.Helper()
	dial := func(exten string) {
		t.Helper()
		sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", exten)
		mustWait(ctx, t, events, "alice dialling "+exten+" done", lab.OnChannel("ChannelDestroyed", sup.First))
	}
	dial("*225" + ext)
	cw.audit.wait(ctx, t, "alice starts recording", decision("alice", "recording.start", "allow"))
	rec, err := cw.recs.ActiveRecording(ctx, "agent"+ext)
	if err != nil {
		t.Fatal(err)
	}
	// The recording has to last d of real time: there is nothing to wait on.
	time.Sleep(d)
	dial("*229" + ext)
	cw.audit.wait(ctx, t, "alice stops recording", decision("alice", "recording.stop", "allow"))
	finished := mustWait(ctx, t, events, "the live recording finished", func(e lab.Event) bool {
		return e.Type == "RecordingFinished" && strings.Contains(string(e.Raw), `"name":"`+rec.Name+`"`)
	})
	var f struct {
		Recording struct {
			Duration int `json:"duration"`
		} `json:"recording"`
	}
	mustOK(t, json.Unmarshal(finished.Raw, &f))
	return rec.ID, time.Duration(f.Recording.Duration) * time.Second
}

func TestPlaybackDTMFPausesResumesRestartsAndStopsThePlayback(t *testing.T) {
	l := suite.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hs := handsets(ctx, t, l)
	cw := startCallwarden(t, l, asterisk.WatchdogEnforce)
	events := mustEvents(ctx, t, l)
	_, ext := salesCall(ctx, t, l, events, "5550123")
	recID, length := recordForPlayback(ctx, t, l, cw, events, ext, 10*time.Second)
	if length < 7*time.Second {
		t.Fatalf("the recording lasts %v; the test needs at least 7s to tell a restart from the end", length)
	}
	t.Logf("recording %s lasts %v (Asterisk's RecordingFinished)", recID, length)

	// alice plays the recording back from a handset the test presses keys on.
	call := dialFromHandset(ctx, t, l, hs, "1001", "*227"+recID)
	startedEv := mustWait(ctx, t, events, "the playback on alice's line", func(e lab.Event) bool {
		return e.Type == "PlaybackStarted" && decodePlayback(t, e).Playback.TargetURI == "channel:"+call.First
	})
	started := decodePlayback(t, startedEv).Playback
	if started.MediaURI != "recording:callwarden-"+recID {
		t.Errorf("playing %q, want recording:callwarden-%s", started.MediaURI, recID)
	}
	pb := started.ID
	cw.audit.wait(ctx, t, "alice allowed to play back", decision("alice", "recording.playback", "allow"))
	playing := time.Now()

	// 5 pauses, 5 again resumes: ARI shows each state. A second of the
	// recording plays first (real-time playback: nothing to wait on).
	time.Sleep(time.Second)
	press(ctx, t, l, call.Second, "5")
	waitPlaybackState(ctx, t, l, pb, "paused", "pressing 5")
	paused := time.Now()
	// A negative check: the paused playback must stay paused for a second.
	time.Sleep(time.Second)
	if s := playbackState(ctx, t, l, pb); s != "paused" {
		t.Fatalf("a paused playback is %q a second later", s)
	}
	press(ctx, t, l, call.Second, "5")
	waitPlaybackState(ctx, t, l, pb, "playing", "pressing 5 again")
	heard := paused.Sub(playing) // at most this much was played before the pause

	// 0 restarts from the beginning: close to the end of the recording, press 0;
	// the playback then outlives its remaining length by far.
	// Asterisk rounds the duration down to the second: at most ~3.3s are left.
	// Real-time playback: the test sleeps until the end is near.
	untilNearEnd := length - heard - 2*time.Second
	time.Sleep(untilNearEnd)
	press(ctx, t, l, call.Second, "0")
	restarted := time.Now()
	// A negative check: 5s later, past the old end, it must still play.
	time.Sleep(5 * time.Second)
	if s := playbackState(ctx, t, l, pb); s != "playing" {
		t.Fatalf("%v after pressing 0 near the end the playback is %q, want still playing (restarted)", time.Since(restarted).Round(time.Millisecond), s)
	}
	for _, e := range events.Events() {
		if e.Type == "PlaybackFinished" && decodePlayback(t, e).Playback.ID == pb {
			t.Fatal("the playback finished although 0 restarted it")
		}
	}

	// # stops the playback, and the line goes on in the dialplan (the feature
	// code's next priority, Hangup) instead of being hung up by callwarden.
	press(ctx, t, l, call.Second, "#")
	stopped := mustWait(ctx, t, events, "the playback stopped", func(e lab.Event) bool {
		return e.Type == "PlaybackFinished" && decodePlayback(t, e).Playback.ID == pb
	})
	if d := eventTime(t, stopped).Sub(restarted); d >= length {
		t.Errorf("the playback ended %v after the restart, not on #", d)
	}
	next := mustWait(ctx, t, events, "alice's line back in the dialplan", func(e lab.Event) bool {
		return e.Type == "ChannelDialplan" && e.ChannelID() == call.First && e.DialplanApp == "Hangup"
	})
	if next.Channel.Dialplan.Exten != "*227"+recID {
		t.Errorf("the line went on at %s,%s,%d, want the *227 feature code's next priority",
			next.Channel.Dialplan.Context, next.Channel.Dialplan.Exten, next.Channel.Dialplan.Priority)
	}
	for _, e := range events.Events() {
		if e.Type == "ChannelVarset" && e.ChannelID() == call.First && e.Variable == "CALLWARDEN_DECISION" && e.Value != "allow" {
			t.Errorf("CALLWARDEN_DECISION set to %q on the playback line", e.Value)
		}
	}
	mustWait(ctx, t, events, "alice's line hung up by the dialplan", lab.OnChannel("ChannelDestroyed", call.First))
}

func TestRefusedRequesterWithContinueGoesOnInTheDialplan(t *testing.T) {
	// A channel in the dialplan's Stasis(cwdemo) (the lab's demo handset) is moved
	// by ARI into Stasis(callwarden,monitor,listen,<ext>,continue), as a dialplan line
	// ending in `continue` would put it there. carol's profile covers support only:
	// she is refused, hears the refusal, and her channel goes back to the dialplan
	// (the handset context's next priority) with the outcome in its variables,
	// instead of being hung up.
	l := suite.Lab(t)
	ctx := monitorContext(t)
	hs := handsets(ctx, t, l)
	cw := startCallwarden(t, l, asterisk.WatchdogEnforce)
	events := mustEvents(ctx, t, l)
	_, ext := salesCall(ctx, t, l, events, "5550100")

	id := l.NewID("carol")
	phone := lab.LocalCall{First: id, Second: id + "-handset"}
	if _, err := l.Originate(ctx, lab.OriginateParams{
		Endpoint: "Local/1002@cw-demo-handset/n", Context: "cw-customer-audio", Extension: "wait", Priority: 1,
		ChannelID: phone.First, OtherChannelID: phone.Second,
	}); err != nil {
		t.Fatal(err)
	}
	in, err := hs.Wait(ctx, "carol's handset in "+handsetApp, lab.OnChannel("StasisStart", phone.Second))
	if err != nil {
		t.Fatal(err)
	}
	stasisPriority := in.Channel.Dialplan.Priority
	if err := ari(ctx, l, http.MethodPost, "/channels/"+url.PathEscape(phone.Second)+"/variable",
		url.Values{"variable": {"CALLWARDEN_USER"}, "value": {"carol"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ari(ctx, l, http.MethodPost, "/channels/"+url.PathEscape(phone.Second)+"/move",
		url.Values{"app": {"callwarden"}, "appArgs": {"monitor,listen," + ext + ",continue"}}, nil); err != nil {
		t.Fatal(err)
	}

	back := mustWait(ctx, t, events, "carol's channel back in the dialplan", func(e lab.Event) bool {
		return e.Type == "ChannelDialplan" && e.ChannelID() == phone.Second && e.Channel.Dialplan.Priority > stasisPriority
	})
	if back.Channel.Dialplan.Context != "cw-demo-handset" || back.Channel.Dialplan.Priority != stasisPriority+1 {
		t.Errorf("carol's channel went on at %s,%s,%d (%s), want cw-demo-handset priority %d",
			back.Channel.Dialplan.Context, back.Channel.Dialplan.Exten, back.Channel.Dialplan.Priority, back.DialplanApp, stasisPriority+1)
	}
	want := map[string]string{"CALLWARDEN_DECISION": "deny", "CALLWARDEN_REASON": "out_of_scope"}
	got := map[string]string{}
	// What Asterisk showed of carol's channel until it went on in the dialplan.
	for _, e := range events.Events() {
		if e.ChannelID() != phone.Second {
			continue
		}
		if e.Type == "ChannelDialplan" && e.Channel.Dialplan.Priority > stasisPriority {
			break
		}
		switch e.Type {
		case "ChannelVarset":
			if _, ok := want[e.Variable]; ok {
				got[e.Variable] = e.Value
			}
		case "ChannelHangupRequest":
			t.Errorf("carol's channel was hung up (%s) before going back to the dialplan", e.Raw)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q when carol's channel left callwarden, want %q", k, got[k], v)
		}
	}
	played := false
	for _, e := range events.Events() {
		if e.Type == "PlaybackStarted" && decodePlayback(t, e).Playback.TargetURI == "channel:"+phone.Second {
			played = decodePlayback(t, e).Playback.MediaURI == "sound:ss-noservice"
		}
	}
	if !played {
		t.Error("carol did not hear the refusal before going on")
	}
	rec := cw.audit.wait(ctx, t, "carol refused", decision("carol", "monitor.listen", "deny"))
	if rec.Reason != "out_of_scope" {
		t.Errorf("audit reason = %q, want out_of_scope", rec.Reason)
	}
	for _, e := range events.Events() {
		if e.Type == "ChannelCreated" && e.Channel != nil && strings.HasPrefix(e.Channel.Name, "Snoop/") {
			t.Errorf("a snoop was created for a refused request: %s", e.Channel.Name)
		}
	}
}
