package integration

// The record and playback verbs against the real FreeSWITCH of the lab: `callwarden
// serve` decides the dialplan's *225/*228/*229<ext> and *227<id> codes
// (deploy/lab/freeswitch/conf/dialplan/callwarden.xml), records the agent's call with
// uuid_record (its own watchdog letting it through), keeps the metadata in the lab's
// Redis and plays a recording back to an allowed user.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// freeswitchRecordProfiles: sup1001 may record and play back sales calls, sup1002
// only listen to them, sup1003 (a teacher) play back sales recordings less than an
// hour old. Agent 2001's phone is known by its presence id, which the lab's agent
// extension sets on the agent's leg only: both legs of a loopback call are named
// after the extension dialled (loopback/queue_sales_2001-a is the customer's).
const freeswitchRecordProfiles = `version: 1
profiles:
  - name: recorder
    grants:
      - actions: [recording.start, recording.stop, recording.pause, recording.resume, recording.playback]
        queues: [sales]
  - name: listener
    grants:
      - actions: [monitor.listen]
        queues: [sales]
  - name: teacher
    grants:
      - actions: [recording.playback]
        queues: [sales]
        recorded_within: 1h
users:
  - id: sup1001
    profile: recorder
    identities: [loopback/supervisor_1001]
  - id: sup1002
    profile: listener
    identities: [loopback/supervisor_1002]
  - id: sup1003
    profile: teacher
    identities: [loopback/supervisor_1003]
  - id: agent2001
    identities: ["2001", 2001@lab.callwarden]
`

// fsRecordingsDir is the lab image's $${recordings_dir}, callwarden's default.
const fsRecordingsDir = "/usr/local/freeswitch/recordings"

// wantRecordingBug fails unless FreeSWITCH still records path on channel uuid
// (uuid_buglist lists its session_record media bug). The file itself does not
// show it: FreeSWITCH buffers a recording's writes (64 KiB, about 4 s of the lab's
// 8 kHz audio) unless enable_file_write_buffering says otherwise.
func wantRecordingBug(ctx context.Context, t *testing.T, fs *lab.TestFreeSWITCH, uuid, path string) {
	t.Helper()
	out, err := fs.API(ctx, "uuid_buglist "+uuid)
	mustOK(t, err)
	if !strings.Contains(out, "session_record") || !strings.Contains(out, path) {
		t.Errorf("%s records %s no more; uuid_buglist says:\n%s", uuid, path, out)
	}
}

// wantRequestDone waits until the requester's channel is gone (callwarden hung it up
// after its tone) and returns the n audit records of its request.
func wantRequestDone(ctx context.Context, t *testing.T, l *lab.TestLab, cw *fsDaemon, sup string, n int) []enforce.AuditRecord {
	t.Helper()
	mustOK(t, cw.fs.WaitGone(ctx, sup))
	return waitAuditOn(ctx, t, l, fmt.Sprintf("%d audit records of the request on %s", n, sup), "freeswitch", sup, n)
}

// wantAllowed checks the decision and result records of an allowed request.
func wantAllowed(t *testing.T, recs []enforce.AuditRecord, user, action string) {
	t.Helper()
	if dec, res := recs[0], recs[1]; dec.User != user || dec.Action != action || dec.Decision != "allow" ||
		res.Outcome != enforce.OutcomeEnforced {
		t.Errorf("records %+v / %+v, want %s allowed %s and enforced", dec, res, user, action)
	}
}

// wavZeroRun returns the sample rate of a 16-bit mono WAV, its number of samples that
// are not zero and its longest run of zero samples.
func wavZeroRun(b []byte) (rate, nonZero, longestZeros int, err error) {
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, 0, 0, errors.New("not a RIFF/WAVE file")
	}
	i := bytes.Index(b, []byte("fmt "))
	if i < 0 || len(b) < i+16 {
		return 0, 0, 0, errors.New("no fmt chunk")
	}
	rate = int(binary.LittleEndian.Uint32(b[i+12:]))
	d := bytes.Index(b, []byte("data"))
	if d < 0 {
		return 0, 0, 0, errors.New("no data chunk")
	}
	run := 0
	for p := d + 8; p+1 < len(b); p += 2 {
		if binary.LittleEndian.Uint16(b[p:]) == 0 {
			run++
			longestZeros = max(longestZeros, run)
			continue
		}
		nonZero, run = nonZero+1, 0
	}
	return rate, nonZero, longestZeros, nil
}

// recordLab is the lab of a recording test: callwarden deciding from
// freeswitchRecordProfiles, the lab's Redis read as the recording store, and a
// customer's sales call answered by agent 2001.
type recordLab struct {
	l                  *lab.TestLab
	fs                 *lab.TestFreeSWITCH
	cw                 *fsDaemon
	store              enforce.RecordingStore
	customer, agentLeg string
}

func newRecordLab(ctx context.Context, t *testing.T) recordLab {
	l, fs := suite.Lab(t), suite.FreeSWITCH(t)
	r := recordLab{l: l, fs: fs, cw: serveFreeSWITCHPolicy(ctx, t, l, fs, "callwarden", freeswitchRecordProfiles),
		store: newRedisStore(t, l, nil)}
	var err error
	r.customer, r.agentLeg, err = fs.CustomerCall(ctx, "sales", "2001", "5550100")
	mustOK(t, err)
	waitListed(ctx, t, fs, r.agentLeg)
	return r
}

func TestFreeSWITCHRecordingIsControlledAndPlayedBack(t *testing.T) {
	ctx := contextFor(t, 3*time.Minute)
	r := newRecordLab(ctx, t)
	l, fs, cw, store, agentLeg := r.l, r.fs, r.cw, r.store, r.agentLeg
	var err error

	t.Run("sup1002 without recording.start is refused and nothing records", func(t *testing.T) {
		ctx := shortly(t, ctx)
		sup := cw.supervisorCall(ctx, t, "1002", "*2252001")
		wantRefused(ctx, t, fs, sup)
		if r := fsMonitorRecords(ctx, t, l, sup, 1)[0]; r.User != "sup1002" || r.Action != "recording.start" || r.Reason != "action_not_granted" {
			t.Errorf("record %+v, want sup1002 denied recording.start action_not_granted", r)
		}
		if _, err := store.ActiveRecording(ctx, "agent2001"); !errors.Is(err, enforce.ErrNotFound) {
			t.Fatalf("a refused start left a recording: %v", err)
		}
	})

	var rec enforce.Recording
	var recLength time.Duration // the recording's audio, once stopped
	t.Run("sup1001 records agent 2001's call and the watchdog lets it run", func(t *testing.T) {
		ctx := shortly(t, ctx)
		asked := time.Now()
		sup := cw.supervisorCall(ctx, t, "1001", "*2252001")
		recs := wantRequestDone(ctx, t, l, cw, sup, 2)
		wantAllowed(t, recs, "sup1001", "recording.start")
		if dec := recs[0]; dec.Queue != "sales" || dec.Target != "agent2001" || !slices.Contains(dec.Channels, agentLeg) {
			t.Errorf("decision record %+v, want agent2001's leg %s in queue sales", dec, agentLeg)
		}
		t.Logf("originate of *2252001 to its result record: %s", time.Since(asked).Round(time.Millisecond))
		rec, err = store.ActiveRecording(ctx, "agent2001")
		mustOK(t, err)
		if rec.State != enforce.RecordingActive || rec.Queue != "sales" || rec.StartedBy != "sup1001" || rec.Channel != agentLeg || rec.Caller != "5550100" {
			t.Errorf("metadata %+v", rec)
		}
		path := fsRecordingsDir + "/" + rec.Name + ".wav"
		b, err := fs.ReadFile(ctx, path)
		mustOK(t, err)
		if len(b) < 44 || string(b[:4]) != "RIFF" {
			t.Errorf("%s is %d bytes, not a WAV being written", path, len(b))
		}
		// callwarden's own watchdog stops every recording no decision allowed:
		// this one must still run past its reaction time (under 200 ms).
		time.Sleep(1500 * time.Millisecond)
		wantRecordingBug(ctx, t, fs, agentLeg, path)
		noWatchdogRecord(ctx, t, l, agentLeg)
	})
	if rec.ID == "" {
		t.Fatal("no recording to go on with")
	}

	step := func(t *testing.T, exten, action string, want enforce.RecordingState) {
		t.Helper()
		ctx := shortly(t, ctx)
		sup := cw.supervisorCall(ctx, t, "1001", exten)
		recs := wantRequestDone(ctx, t, l, cw, sup, 2)
		wantAllowed(t, recs, "sup1001", action)
		if !strings.Contains(recs[0].Detail, "recording "+rec.ID) {
			t.Errorf("detail %q does not name recording %s", recs[0].Detail, rec.ID)
		}
		got, err := store.Recording(ctx, rec.ID)
		mustOK(t, err)
		if got.State != want {
			t.Errorf("after %s the metadata says %q, want %q", action, got.State, want)
		}
	}
	t.Run("*2282001 pauses (mask), again resumes, *2292001 stops: a WAV with audio and the masked stretch silent", func(t *testing.T) {
		step(t, "*2282001", "recording.pause", enforce.RecordingPaused)
		time.Sleep(1500 * time.Millisecond)
		step(t, "*2282001", "recording.resume", enforce.RecordingActive)
		time.Sleep(time.Second)
		step(t, "*2292001", "recording.stop", enforce.RecordingStopped)
		got, err := store.Recording(ctx, rec.ID)
		mustOK(t, err)
		if got.StoppedBy != "sup1001" || len(got.Pauses) != 1 || got.Pauses[0].ResumedBy != "sup1001" {
			t.Errorf("metadata %+v, want one pause resumed and stopped by sup1001", got)
		}
		b, err := fs.ReadFile(ctx, fsRecordingsDir+"/"+rec.Name+".wav")
		mustOK(t, err)
		rate, nonZero, zeros, err := wavZeroRun(b)
		mustOK(t, err)
		recLength = time.Duration(len(b)/2) * time.Second / time.Duration(rate)
		t.Logf("recording %s: %d bytes, %d Hz, %d samples with audio, longest silence %d samples", rec.Name, len(b), rate, nonZero, zeros)
		if len(b) < 3*2*rate || nonZero < rate || zeros < rate {
			t.Errorf("want at least 1 s of audio and 1 s of exact silence (the mask); got %d and %d samples at %d Hz", nonZero, zeros, rate)
		}
		noWatchdogRecord(ctx, t, l, agentLeg)
	})

	t.Run("*227<id> plays the recording to sup1003 (5 pauses, # stops); one older than its recorded_within is refused", func(t *testing.T) {
		ctx := shortly(t, ctx)
		sup := cw.supervisorCall(ctx, t, "1003", "*227"+rec.ID)
		playing := func() error {
			d, err := fs.Dump(ctx, sup)
			if err != nil {
				return err
			}
			if app, data := d["variable_current_application"], d["variable_current_application_data"]; app != "playback" || !strings.Contains(data, rec.Name) {
				return fmt.Errorf("sup1003 runs %s(%s), want playback of %s", app, data, rec.Name)
			}
			return nil
		}
		waitFor(ctx, t, "sup1003 hearing the recording", playing)
		// 5 pauses: the playback still runs after the whole recording's length;
		// # stops it and callwarden hangs up.
		_, err := fs.API(ctx, "uuid_recv_dtmf "+sup+" 5")
		mustOK(t, err)
		time.Sleep(recLength + time.Second)
		if err := playing(); err != nil {
			t.Errorf("%s after 5 and the recording's length (%s): paused playback should still run", err, recLength)
		}
		_, err = fs.API(ctx, "uuid_recv_dtmf "+sup+" #")
		mustOK(t, err)
		recs := wantRequestDone(ctx, t, l, cw, sup, 2)
		wantAllowed(t, recs, "sup1003", "recording.playback")

		old := rec
		old.ID, old.Name = "900000000001", "callwarden-900000000001"
		old.StartedAt, old.State = time.Now().Add(-2*time.Hour), enforce.RecordingStopped
		mustOK(t, store.SaveRecording(ctx, old))
		sup = cw.supervisorCall(ctx, t, "1003", "*227"+old.ID)
		wantRefused(ctx, t, fs, sup)
		if r := fsMonitorRecords(ctx, t, l, sup, 1)[0]; r.Action != "recording.playback" || r.Decision != "deny" || r.Reason != "recording_too_old" {
			t.Errorf("record %+v, want playback denied recording_too_old", r)
		}

		// A recording whose file FreeSWITCH cannot find: allowed, then failed.
		missing := rec
		missing.ID, missing.Name = "900000000002", "callwarden-900000000002"
		mustOK(t, store.SaveRecording(ctx, missing))
		sup = cw.supervisorCall(ctx, t, "1003", "*227"+missing.ID)
		wantRefused(ctx, t, fs, sup)
		if res := fsMonitorRecords(ctx, t, l, sup, 2)[1]; res.Outcome != enforce.OutcomeFailed || !strings.Contains(res.Detail, "FILE NOT FOUND") {
			t.Errorf("result record %+v, want failed: FILE NOT FOUND", res)
		}
	})
}

func TestFreeSWITCHRecordingEndsWithTheCall(t *testing.T) {
	ctx := contextFor(t, 3*time.Minute)
	r := newRecordLab(ctx, t)
	sup := r.cw.supervisorCall(ctx, t, "1001", "*2252001")
	wantRequestDone(ctx, t, r.l, r.cw, sup, 2)
	live, err := r.store.ActiveRecording(ctx, "agent2001")
	mustOK(t, err)
	// The customer hangs up: FreeSWITCH ends the recording (RECORD_STOP) and
	// callwarden marks it stopped, so the store never says it records forever.
	mustOK(t, r.fs.Kill(ctx, r.customer))
	waitFor(ctx, t, "the recording's metadata stopped", func() error {
		got, err := r.store.Recording(ctx, live.ID)
		if err != nil {
			return err
		}
		if got.State != enforce.RecordingStopped || got.StoppedBy != "freeswitch:finished" {
			return fmt.Errorf("metadata says %s (stopped by %q)", got.State, got.StoppedBy)
		}
		return nil
	})
}
