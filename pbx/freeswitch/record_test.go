package freeswitch

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
)

// recordingsDir is the RecordingsDir of these tests.
const recordingsDir = "/var/rec"

// recLab is an adapter with a recording store, the FreeSWITCH socket
// application it is driven by, and what that application saw.
type recLab struct {
	a     *Adapter
	log   *auditLog
	store *memory.Recordings

	// digits are pressed (DTMF events) while the playback runs.
	digits []string
	// played is the Application-Response of a playback (default FILE PLAYED).
	played string
	// allowedAtStart says, for each uuid_record start, whether the watchdog
	// already held the allowance of the recorded channel when it came.
	allowedAtStart []bool
}

func newRecLab(t *testing.T) *recLab {
	l := &recLab{log: &auditLog{}, store: memory.NewRecordings()}
	l.a = MustAdapter(t, mustExampleSnapshot(t), l.log, func(o *Options) {
		o.Recordings, o.RecordingsDir = l.store, recordingsDir
	})
	return l
}

// dial plays FreeSWITCH's socket application for one request of the phone
// of sipUser: the agent's call is monitorTargetUUID (queue sales, caller
// 0612345678), uuid_record and uuid_setvar succeed, a playback plays its
// file to the end, a hangup ends the call. It returns every command.
func (l *recLab) dial(t *testing.T, sipUser, action, mode, target string) []string {
	t.Helper()
	vars := []string{"variable_sip_from_user: " + sipUser, "variable_callwarden_action: " + action, "variable_callwarden_mode: " + mode}
	if target != "" {
		vars = append(vars, "variable_callwarden_target: "+target)
	}
	event := func(name, app, response string) string {
		return frameText("text/event-plain", "Event-Name: "+name+"\nUnique-ID: "+uuid+"\nApplication: "+app+
			"\nApplication-Response: "+response+"\n\n")
	}
	ok := "Content-Type: command/reply\nReply-Text: +OK\n\n"
	return fstest.PlaySocket(t, l.a.Addr().String(), func(cmd string) (string, bool) {
		switch {
		case cmd == "connect":
			return mustConnectReply(t, vars...), false
		case cmd == "api show channels as json":
			return frameText("api/response", channelsJSON("PJSIP/2001-00000007")), false
		case strings.HasPrefix(cmd, "api uuid_dump "):
			return frameText("api/response", "Unique-ID: "+monitorTargetUUID+"\nCaller-Caller-ID-Number: 0612345678\nvariable_callwarden_queue: sales\n"), false
		case strings.HasPrefix(cmd, "api uuid_record "+monitorTargetUUID+" start "):
			l.allowedAtStart = append(l.allowedAtStart, l.a.wd.allowances.Consume(monitorTargetUUID, enforce.RecordingStart))
			return frameText("api/response", "+OK Success\n"), false
		case strings.HasPrefix(cmd, "api "):
			return frameText("api/response", "+OK\n"), false
		case strings.HasPrefix(cmd, "sendmsg ") && strings.Contains(cmd, "execute-app-name: hangup"):
			return ok + "Content-Type: text/disconnect-notice\nContent-Length: 0\n\n", false
		case strings.HasPrefix(cmd, "sendmsg ") && strings.Contains(cmd, "execute-app-name: playback\nevent-lock: true\nexecute-app-arg: "+recordingsDir):
			played := l.played
			if played == "" {
				played = filePlayed
			}
			out := ok + event("CHANNEL_EXECUTE", "playback", "")
			for _, d := range l.digits {
				out += frameText("text/event-plain", "Event-Name: DTMF\nUnique-ID: "+uuid+"\nDTMF-Digit: "+url.QueryEscape(d)+"\n\n")
			}
			return out + event("CHANNEL_EXECUTE_COMPLETE", "playback", played), false
		case strings.HasPrefix(cmd, "sendmsg "), strings.HasPrefix(cmd, "filter "), strings.HasPrefix(cmd, "event "):
			return ok, false
		default:
			t.Errorf("unexpected command %q", cmd)
			return "", true
		}
	})
}

// uuidRecords are the uuid_record commands among cmds.
func uuidRecords(cmds []string) []string {
	var out []string
	for _, c := range cmds {
		if strings.HasPrefix(c, "api uuid_record ") {
			out = append(out, strings.TrimPrefix(c, "api "))
		}
	}
	return out
}

// has reports whether one of cmds contains want.
func has(cmds []string, want string) bool {
	return strings.Contains(strings.Join(cmds, "|"), want)
}

// wantEnforced checks the first two audit records: user allowed action,
// then enforced; it returns the decision.
func wantEnforced(t *testing.T, log *auditLog, user, action string) enforce.AuditRecord {
	t.Helper()
	dec := wantDecision(t, log, 1, user, action, "allow", "granted")
	if res := waitRecords(t, log, 2)[1]; res.Outcome != enforce.OutcomeEnforced {
		t.Errorf("result record %+v, want enforced", res)
	}
	return dec
}

// wantDecision waits for the n-th audit record and checks its decision.
func wantDecision(t *testing.T, log *auditLog, n int, user, action, decision, reason string) enforce.AuditRecord {
	t.Helper()
	r := waitRecords(t, log, n)[n-1]
	if r.User != user || r.Action != action || r.Decision != decision || r.Reason != reason {
		t.Fatalf("record %d: %+v, want %s %s %s (%s)", n, r, user, action, decision, reason)
	}
	return r
}

func TestRecordOverTheOutboundSocket(t *testing.T) {
	ctx := context.Background()

	t.Run("alice starts, pauses, resumes and stops agent 2001's recording", func(t *testing.T) {
		l := newRecLab(t)
		got := l.dial(t, "1001", "record", "start", "2001")
		rec, err := l.store.ActiveRecording(ctx, "agent2001")
		if err != nil {
			t.Fatalf("no active recording after an allowed start: %v", err)
		}
		path := recordingsDir + "/" + rec.Name + ".wav"
		if u := uuidRecords(got); len(u) != 1 || u[0] != "uuid_record "+monitorTargetUUID+" start "+path {
			t.Fatalf("uuid_record commands %q, want one start of %s", u, path)
		}
		if len(l.allowedAtStart) != 1 || !l.allowedAtStart[0] {
			t.Errorf("the watchdog held no allowance when uuid_record start came: it would stop callwarden's own recording")
		}
		if rec.Channel != monitorTargetUUID || rec.Queue != "sales" || rec.StartedBy != "alice" || rec.Caller != "0612345678" {
			t.Errorf("metadata %+v", rec)
		}
		for _, want := range []string{"api uuid_setvar " + uuid + " callwarden_recording " + rec.ID,
			"execute-app-arg: tone_stream://%(200,0,800)", "execute-app-arg: NORMAL_CLEARING"} {
			if !has(got, want) {
				t.Errorf("no %q among the commands:\n%q", want, got)
			}
		}
		dec := wantEnforced(t, l.log, "alice", "recording.start")
		if dec.Queue != "sales" || dec.Target != "agent2001" || len(dec.Channels) != 2 || dec.Channels[1] != monitorTargetUUID {
			t.Errorf("decision record %+v", dec)
		}

		for i, step := range []struct {
			mode, cmd, action string
			state             enforce.RecordingState
		}{
			{"toggle", "mask", "recording.pause", enforce.RecordingPaused},
			{"toggle", "unmask", "recording.resume", enforce.RecordingActive},
			{"stop", "stop", "recording.stop", enforce.RecordingStopped},
		} {
			got := l.dial(t, "1001", "record", step.mode, "2001")
			if u := uuidRecords(got); len(u) != 1 || u[0] != "uuid_record "+monitorTargetUUID+" "+step.cmd+" "+path {
				t.Fatalf("%s: uuid_record commands %q, want %s of %s", step.action, u, step.cmd, path)
			}
			r := wantDecision(t, l.log, 3+2*i, "alice", step.action, "allow", "granted")
			if r.Detail == "" || !strings.Contains(r.Detail, "recording "+rec.ID) {
				t.Errorf("%s record detail %q does not name the recording", step.action, r.Detail)
			}
			if stored, _ := l.store.Recording(ctx, rec.ID); stored.State != step.state {
				t.Errorf("after %s the metadata says %q, want %q", step.action, stored.State, step.state)
			}
		}
		// The RECORD_STOP of alice's stop is not FreeSWITCH ending it.
		l.a.onEvent(Event{Name: "RECORD_STOP", Headers: map[string]string{"Unique-Id": monitorTargetUUID, "Record-File-Path": path}})
		l.a.bg.Wait() // the event's handling is done
		if stored, _ := l.store.Recording(ctx, rec.ID); stored.StoppedBy != "alice" || len(stored.Pauses) != 1 {
			t.Errorf("stopped metadata %+v, want stopped by alice after one pause", stored)
		}
	})

	t.Run("erin (listen only) is refused and nothing records", func(t *testing.T) {
		l := newRecLab(t)
		got := l.dial(t, "1003", "record", "start", "2001")
		if u := uuidRecords(got); len(u) != 0 {
			t.Errorf("a refused start sent %q", u)
		}
		if !has(got, "execute-app-arg: tone_stream://%(500,500,480,620);loops=3") || !has(got, "execute-app-arg: CALL_REJECTED") {
			t.Errorf("no refusal tone and hang-up among %q", got)
		}
		wantDecision(t, l.log, 1, "erin", "recording.start", "deny", "action_not_granted")
		if _, err := l.store.ActiveRecording(ctx, "agent2001"); !errors.Is(err, enforce.ErrNotFound) {
			t.Errorf("a refused start left a recording: %v", err)
		}
	})

	t.Run("a second start on a recorded agent is refused already_recording", func(t *testing.T) {
		l := newRecLab(t)
		l.dial(t, "1001", "record", "start", "2001")
		got := l.dial(t, "1001", "record", "start", "2001")
		if u := uuidRecords(got); len(u) != 0 {
			t.Errorf("the second start sent %q", u)
		}
		wantDecision(t, l.log, 3, "alice", "recording.start", "deny", "already_recording")
	})

	t.Run("a toggle without a recording is refused no_recording", func(t *testing.T) {
		l := newRecLab(t)
		if u := uuidRecords(l.dial(t, "1001", "record", "toggle", "2001")); len(u) != 0 {
			t.Errorf("sent %q", u)
		}
		// A toggle names no right until a recording's state resolves it
		// (as on Asterisk).
		wantDecision(t, l.log, 1, "alice", "invalid", "deny", "no_recording")
	})

	t.Run("without a target the requester toggles its own recording", func(t *testing.T) {
		l := newRecLab(t)
		own := enforce.Recording{ID: "222222222222", Name: "callwarden-222222222222", PBX: "fs1", Target: "alice", Queue: "sales",
			Channel: monitorTargetUUID, StartedBy: "admin", StartedAt: testNow, State: enforce.RecordingActive}
		if err := l.store.SaveRecording(ctx, own); err != nil {
			t.Fatal(err)
		}
		got := l.dial(t, "1001", "record", "toggle", "")
		if u := uuidRecords(got); len(u) != 1 || u[0] != "uuid_record "+monitorTargetUUID+" mask "+recordingsDir+"/"+own.Name+".wav" {
			t.Fatalf("uuid_record commands %q, want a mask of alice's own recording", u)
		}
		if r := wantDecision(t, l.log, 1, "alice", "recording.pause", "allow", "granted"); r.Target != "alice" {
			t.Errorf("record %+v, want alice's own recording as the target", r)
		}
	})

	t.Run("without a store record and playback are refused store_unavailable", func(t *testing.T) {
		log := &auditLog{}
		a := MustAdapter(t, mustExampleSnapshot(t), log)
		l := &recLab{a: a, log: log}
		if u := uuidRecords(l.dial(t, "1001", "record", "start", "2001")); len(u) != 0 {
			t.Errorf("sent %q", u)
		}
		l.dial(t, "1004", "playback", "play", "123456789012")
		wantDecision(t, log, 1, "", "recording.start", "deny", "store_unavailable")
		wantDecision(t, log, 2, "", "recording.playback", "deny", "store_unavailable")
	})
}

func TestRecordingEndedByFreeSWITCHIsMarkedStopped(t *testing.T) {
	ctx := context.Background()
	l := newRecLab(t)
	l.dial(t, "1001", "record", "start", "2001")
	rec, err := l.store.ActiveRecording(ctx, "agent2001")
	if err != nil {
		t.Fatal(err)
	}
	l.a.onEvent(Event{Name: "RECORD_STOP", Headers: map[string]string{"Unique-Id": monitorTargetUUID,
		"Record-File-Path": recordingsDir + "/" + rec.Name + ".wav"}})
	waitStopped(t, l.store, rec.ID)
}

func TestRecordingOfAnEarlierProcessIsMarkedStoppedOnlyWhenItIsThisPBXs(t *testing.T) {
	ctx := context.Background()
	l := newRecLab(t) // a fresh process: nothing is live
	save := func(id, pbx, channel string) {
		rec := enforce.Recording{ID: id, Name: "callwarden-" + id, PBX: pbx, Target: "agent2001", Channel: channel,
			StartedAt: testNow, State: enforce.RecordingActive}
		if err := l.store.SaveRecording(ctx, rec); err != nil {
			t.Fatal(err)
		}
		l.a.onEvent(Event{Name: "RECORD_STOP", Headers: map[string]string{"Unique-Id": monitorTargetUUID,
			"Record-File-Path": recordingsDir + "/" + rec.Name + ".wav"}})
	}
	save("333333333333", "fs1", monitorTargetUUID)
	save("444444444444", "other", monitorTargetUUID)
	save("555555555555", "fs1", uuid)
	waitStopped(t, l.store, "333333333333")
	l.a.bg.Wait() // every RECORD_STOP handled
	for _, id := range []string{"444444444444", "555555555555"} {
		if got, _ := l.store.Recording(ctx, id); got.State != enforce.RecordingActive {
			t.Errorf("recording %s of another PBX or channel was marked %s", id, got.State)
		}
	}
}

// waitStopped waits until recording id's metadata says stopped by
// freeswitch:finished.
func waitStopped(t *testing.T, store *memory.Recordings, id string) {
	t.Helper()
	var got enforce.Recording
	if !eventually(2*time.Second, func() bool {
		got, _ = store.Recording(context.Background(), id)
		return got.State == enforce.RecordingStopped && got.StoppedBy == "freeswitch:finished"
	}) {
		t.Fatalf("metadata %+v, want stopped by freeswitch:finished", got)
	}
}

func TestRecordRequestsWithControlCharactersAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, target string }{
		{"a CR/LF in the target", "2001\r\napi uuid_kill x"},
		{"a space in the recording id", "1234 56789012"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseRequest(map[string]string{varAction: "record", varMode: "start", varTarget: tc.target}); !errors.Is(err, errBadRequest) {
				t.Errorf("record target %q: %v, want errBadRequest", tc.target, err)
			}
			if _, err := parseRequest(map[string]string{varAction: "playback", varMode: "play", varTarget: tc.target}); !errors.Is(err, errBadRequest) {
				t.Errorf("playback target %q: %v, want errBadRequest", tc.target, err)
			}
		})
	}
	r := &eslRecorder{a: &Adapter{o: Options{RecordingsDir: recordingsDir}}}
	var unsafe *UnsafeValueError
	if _, err := r.StartRecording(context.Background(), monitorTargetUUID+"\nuuid_kill x", "1", "callwarden-1"); !errors.As(err, &unsafe) {
		t.Errorf("a target with a LF: %v, want UnsafeValueError before anything is sent", err)
	}
	if _, err := New(Options{ESLAddress: "x:1", ESLPassword: "p", Snapshot: func() *enforce.Snapshot { return nil },
		Auditor: &auditLog{}, RecordingsDir: "/rec with space"}); err == nil {
		t.Error("a RecordingsDir with a space was accepted")
	}
}

func TestPlaybackOverTheOutboundSocket(t *testing.T) {
	ctx := context.Background()
	save := func(t *testing.T, l *recLab, id string, age time.Duration) enforce.Recording {
		rec := enforce.Recording{ID: id, Name: "callwarden-" + id, PBX: "fs1", Target: "agent2001", Queue: "sales",
			Channel: monitorTargetUUID, StartedBy: "alice", StartedAt: testNow.Add(-age), State: enforce.RecordingStopped}
		if err := l.store.SaveRecording(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}

	t.Run("bob the teacher plays a fresh recording of his queue", func(t *testing.T) {
		l := newRecLab(t)
		rec := save(t, l, "123456789012", time.Hour)
		got := l.dial(t, "1004", "playback", "play", rec.ID)
		play := "execute-app-name: playback\nevent-lock: true\nexecute-app-arg: " + recordingsDir + "/" + rec.Name + ".wav"
		if i, j := strings.Index(strings.Join(got, "|"), "execute-app-name: answer"), strings.Index(strings.Join(got, "|"), play); i < 0 || j < i {
			t.Fatalf("want answer then %q among\n%q", play, got)
		}
		if !has(got, "execute-app-arg: NORMAL_CLEARING") {
			t.Errorf("not hung up after the playback: %q", got)
		}
		if dec := wantEnforced(t, l.log, "bob", "recording.playback"); dec.Target != "agent2001" || dec.Queue != "sales" ||
			!strings.Contains(dec.Detail, "recording "+rec.ID) || !dec.RecordedAt.Equal(rec.StartedAt) {
			t.Errorf("decision record %+v", dec)
		}
	})

	t.Run("digits during the playback pause, seek (uuid_fileman) and stop it (uuid_break)", func(t *testing.T) {
		l := newRecLab(t)
		l.digits = []string{"5", "4", "1", "6", "#"}
		rec := save(t, l, "123456789012", time.Hour)
		got := l.dial(t, "1004", "playback", "play", rec.ID)
		var controls []string
		for _, c := range got {
			if strings.HasPrefix(c, "api uuid_fileman ") || strings.HasPrefix(c, "api uuid_break ") {
				controls = append(controls, strings.TrimPrefix(c, "api "))
			}
		}
		want := []string{"uuid_fileman " + uuid + " pause", "uuid_fileman " + uuid + " seek:-5000",
			"uuid_fileman " + uuid + " seek:+5000", "uuid_break " + uuid}
		if strings.Join(controls, "|") != strings.Join(want, "|") {
			t.Errorf("controls %q, want %q (1 does nothing)", controls, want)
		}
		if !has(got, "api uuid_setvar "+uuid+" playback_terminators none") {
			t.Errorf("playback_terminators not turned off: a digit would end the playback by itself: %q", got)
		}
	})

	t.Run("a file FreeSWITCH cannot find is audited failed and the requester refused", func(t *testing.T) {
		l := newRecLab(t)
		l.played = "FILE NOT FOUND"
		rec := save(t, l, "123456789012", time.Hour)
		got := l.dial(t, "1004", "playback", "play", rec.ID)
		if !has(got, "execute-app-arg: CALL_REJECTED") || !has(got, "api uuid_setvar "+uuid+" callwarden_reason pbx_error") {
			t.Errorf("no refusal (pbx_error) after a failed playback: %q", got)
		}
		wantDecision(t, l.log, 1, "bob", "recording.playback", "allow", "granted")
		if res := waitRecords(t, l.log, 2)[1]; res.Outcome != enforce.OutcomeFailed || !strings.Contains(res.Detail, "FILE NOT FOUND") {
			t.Errorf("result record %+v, want failed with FreeSWITCH's answer", res)
		}
	})

	for _, tc := range []struct {
		name, sipUser, id string
		age               time.Duration
		user, reason      string
	}{
		{"a recording older than bob's recorded_within is refused", "1004", "900000000001", 800 * time.Hour, "bob", "recording_too_old"},
		{"an unknown recording is refused no_recording", "1004", "111111111111", 0, "bob", "no_recording"},
		{"an unknown phone is told unknown_user, not whether the recording exists", "1999", "111111111111", 0, "", "unknown_user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRecLab(t)
			if tc.age > 0 {
				save(t, l, tc.id, tc.age)
			}
			got := l.dial(t, tc.sipUser, "playback", "play", tc.id)
			if has(got, "execute-app-arg: "+recordingsDir) {
				t.Errorf("a refused playback played the file: %q", got)
			}
			if !has(got, "execute-app-arg: CALL_REJECTED") {
				t.Errorf("no refusal among %q", got)
			}
			wantDecision(t, l.log, 1, tc.user, "recording.playback", "deny", tc.reason)
		})
	}
}
