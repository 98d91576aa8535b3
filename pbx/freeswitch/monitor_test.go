package freeswitch

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
	"github.com/callwarden/callwarden/pbx/session"
)

const monitorTargetUUID = "7bafb6b1-7172-45c3-b03d-24ea9a5f311b"

// channelsJSON is `show channels as json` with one answered channel named name.
func channelsJSON(name string) string {
	return `{"row_count":2,"rows":[{"uuid":"` + uuid + `","name":"loopback/9198-a","callstate":"ACTIVE"},` +
		`{"uuid":"` + monitorTargetUUID + `","name":"` + name + `","presence_id":"","callstate":"ACTIVE"}]}`
}

// playMonitor is FreeSWITCH's socket application for a monitor request:
// show channels answers channels (its first line; its second line, if
// any, answers the later lookups), uuid_dump a queue "sales", uuid_exists
// that only the agent's call monitorTargetUUID exists; the eavesdrop
// runs (CHANNEL_EXECUTE) when asked for; once callwarden has set its reason
// the supervisor presses digits (the CHANNEL_APPLICATION event of each
// digit's binding) and the eavesdrop ends (CHANNEL_EXECUTE_COMPLETE); a
// hangup ends the call. It returns every command received. With the digit
// holdOn the eavesdrop never ends by itself (someone else ends the session).
func playMonitor(t *testing.T, addr, reply, channels string, digits ...string) []string {
	t.Helper()
	event := func(name, app string) string {
		return frameText("text/event-plain", "Event-Name: "+name+"\nUnique-ID: "+uuid+"\nApplication: "+app+"\n\n")
	}
	ok := "Content-Type: command/reply\nReply-Text: +OK\n\n"
	bye := "Content-Type: text/disconnect-notice\nContent-Length: 0\n\n"
	eavesdropping := false
	answers := strings.Split(channels, "\n")
	return fstest.PlaySocket(t, addr, func(cmd string) (string, bool) {
		var out string
		switch {
		case cmd == "connect":
			out = reply
		case cmd == "api show channels as json":
			out = frameText("api/response", answers[0])
			answers = answers[min(1, len(answers)-1):]
		case strings.HasPrefix(cmd, "api uuid_dump "):
			out = frameText("api/response", "Unique-ID: "+monitorTargetUUID+"\nCaller-Caller-ID-Number: 0612345678\nvariable_callwarden_queue: sales\n")
		case strings.HasPrefix(cmd, "api uuid_exists "):
			out = frameText("api/response", strconv.FormatBool(cmd == "api uuid_exists "+monitorTargetUUID))
		case strings.HasPrefix(cmd, "api uuid_setvar"):
			out = frameText("api/response", "+OK")
			if eavesdropping && strings.Contains(cmd, varReason) && !slices.Contains(digits, holdOn) {
				for _, d := range digits {
					out += frameText("text/event-plain", "Event-Name: CHANNEL_APPLICATION\nUnique-ID: "+uuid+"\ncallwarden_digit: "+d+"\n\n")
				}
				out += event("CHANNEL_EXECUTE_COMPLETE", "eavesdrop")
			}
		case strings.HasPrefix(cmd, "api uuid_kill "):
			return "", true
		case strings.HasPrefix(cmd, "api "):
			out = frameText("api/response", "+OK")
		case strings.HasPrefix(cmd, "sendmsg "):
			out = ok
			if strings.Contains(cmd, "execute-app-name: eavesdrop") {
				eavesdropping = true
				out += event("CHANNEL_EXECUTE", "eavesdrop")
			}
			if strings.Contains(cmd, "execute-app-name: hangup") {
				out += bye
			}
		case strings.HasPrefix(cmd, "filter "), strings.HasPrefix(cmd, "event "), strings.HasPrefix(cmd, "sendevent "):
			out = ok
		default:
			t.Errorf("unexpected command %q", cmd)
			return "", true
		}
		return out, false
	})
}

// holdOn, as playMonitor's digit, keeps the eavesdrop running.
const holdOn = "hold"

// monitorReply is the connect reply of admin (sip user 1000) asking mode on target.
func monitorReply(t *testing.T, mode, target string) string {
	return monitorReplyFrom(t, "1000", mode, target)
}

// monitorReplyFrom is the connect reply of sip user user asking mode on target.
func monitorReplyFrom(t *testing.T, user, mode, target string) string {
	return mustConnectReply(t, "variable_sip_from_user: "+user, "variable_callwarden_action: monitor",
		"variable_callwarden_mode: "+mode, "variable_callwarden_target: "+target)
}

// waitRecords waits for n audit records (the adapter writes them after its
// last command).
func waitRecords(t *testing.T, log *auditLog, n int) []enforce.AuditRecord {
	t.Helper()
	if eventually(2*time.Second, func() bool { return len(log.All()) >= n }) {
		return log.All()
	}
	t.Fatalf("%d audit records, want %d", len(log.All()), n)
	return nil
}

func TestMonitorOverTheOutboundSocket(t *testing.T) {
	snap := mustExampleSnapshot(t)

	t.Run("an allowed listen eavesdrops on the agent's channel with FreeSWITCH's DTMF off", func(t *testing.T) {
		log := &auditLog{}
		a := MustAdapter(t, snap, log)
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"))
		joined := strings.Join(got, "|")
		for _, want := range []string{
			"api uuid_dump " + monitorTargetUUID,
			"api uuid_setvar_multi " + uuid + " eavesdrop_enable_dtmf=false;eavesdrop_whisper_aleg=false;eavesdrop_whisper_bleg=false",
			"sendmsg " + uuid + "\ncall-command: execute\nexecute-app-name: eavesdrop\nevent-lock: true\nexecute-app-arg: " + monitorTargetUUID,
			"api uuid_setvar " + uuid + " callwarden_decision allow",
			"api uuid_kill " + uuid,
		} {
			if !strings.Contains(joined, want) {
				t.Errorf("no %q among the commands:\n%q", want, got)
			}
		}
		if strings.Contains(joined, "sendevent") {
			t.Errorf("a listen sent an eavesdrop-command: %q", got)
		}
		recs := waitRecords(t, log, 2)
		dec, res := recs[0], recs[1]
		if dec.User != "admin" || dec.Action != "monitor.listen" || dec.Target != "agent2001" || dec.Queue != "sales" ||
			dec.Decision != "allow" || dec.AskedBy != "freeswitch:fs1" || len(dec.Channels) != 2 || dec.Channels[1] != monitorTargetUUID {
			t.Errorf("decision record %+v", dec)
		}
		if res.Outcome != enforce.OutcomeEnforced {
			t.Errorf("result record %+v, want enforced", res)
		}
		if dec.Session == "" || dec.Session != res.Session {
			t.Errorf("decision record names session %q, the result %q: want the same, so the session's audit starts at its decision", dec.Session, res.Session)
		}
		end := waitRecords(t, log, 3)[2]
		if end.Outcome != enforce.OutcomeEnded || end.Cause != enforce.CauseTargetHangup || end.Session == "" || end.Session != res.Session {
			t.Errorf("end record %+v, want the session's end, cause target_hangup", end)
		}
	})

	// A live session ends when an administrator asks, or when the policy
	// changes and a re-decision denies it (the requester revoked): the
	// eavesdrop is broken and the supervisor hung up, a re-decision's end
	// after the refusal tone.
	adminOff := func(tb testing.TB) *enforce.Snapshot {
		u, _ := snap.User("admin")
		u.Profile, u.Queues = "", nil
		next, err := snap.Patch(enforce.PolicyPatch{Users: []enforce.User{u}}, snap.Generation()+1)
		if err != nil {
			tb.Fatal(err)
		}
		return next
	}
	for _, tc := range []struct {
		name, cause, detail, tone string
		end                       func(t *testing.T, reg *session.Registry, id string) error
	}{
		{"an administrator's end breaks the eavesdrop and hangs the supervisor up", enforce.CauseAdministrator, "administrator root", "",
			func(_ *testing.T, reg *session.Registry, id string) error {
				return reg.End(context.Background(), id, "root")
			}},
		{"a revoke re-decided ends the session after the refusal tone", enforce.CauseRevoked, "session ended: revoked", "api uuid_displace " + uuid + " start ",
			func(t *testing.T, reg *session.Registry, _ string) error { reg.Redecide(adminOff(t)); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &auditLog{}
			reg, err := session.NewRegistry(session.RegistryOptions{Notice: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			a := MustAdapter(t, snap, log, func(o *Options) { o.Sessions = reg })
			ended := make(chan error, 1)
			go func() {
				var live []enforce.LiveSession
				if !eventually(3*time.Second, func() bool { live, _ = reg.List(context.Background()); return len(live) == 1 }) {
					ended <- errors.New("the session was never listed")
					return
				}
				ended <- tc.end(t, reg, live[0].ID)
			}()
			got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"), holdOn)
			if err := <-ended; err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(got, "|")
			if !strings.Contains(joined, "api uuid_break "+uuid+" all") || !strings.Contains(joined, "api uuid_kill "+uuid) ||
				!strings.Contains(joined, tc.tone) {
				t.Errorf("commands %q, want the eavesdrop broken, %q and the supervisor hung up", got, tc.tone)
			}
			end := waitRecords(t, log, 3)[2]
			if end.Outcome != enforce.OutcomeEnded || end.Cause != tc.cause || !strings.Contains(end.Detail, tc.detail) {
				t.Errorf("end record %+v, want cause %s", end, tc.cause)
			}
			if live, _ := reg.List(context.Background()); len(live) != 0 {
				t.Errorf("still listed: %+v", live)
			}
		})
	}

	t.Run("a whisper is set by eavesdrop-command 2 once eavesdrop runs", func(t *testing.T) {
		log := &auditLog{}
		a := MustAdapter(t, snap, log)
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "whisper", "2001"), channelsJSON("PJSIP/2001-00000007"))
		joined := strings.Join(got, "|")
		i, j := strings.Index(joined, "execute-app-name: eavesdrop"), strings.Index(joined, "sendevent CUSTOM\nunique-id: "+uuid+"\neavesdrop-command: 2")
		if i < 0 || j < i {
			t.Errorf("want eavesdrop then eavesdrop-command 2:\n%q", got)
		}
		if recs := waitRecords(t, log, 2); recs[0].Action != "monitor.whisper" || recs[1].Outcome != enforce.OutcomeEnforced {
			t.Errorf("records %+v", recs)
		}
	})

	for _, tc := range []struct {
		name, target, channel, reason string
	}{
		{"a protected target is refused", "2005", "PJSIP/2005-00000001", "protected_target"},
		{"a target without a call is refused", "2001", "PJSIP/2003-00000001", "target_not_in_call"},
		{"an unknown target is refused", "2999", "PJSIP/2001-00000001", "unknown_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &auditLog{}
			a := MustAdapter(t, snap, log)
			got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", tc.target), channelsJSON(tc.channel))
			joined := strings.Join(got, "|")
			if strings.Contains(joined, "eavesdrop") {
				t.Errorf("a refusal sent eavesdrop commands: %q", got)
			}
			for _, want := range []string{
				"api uuid_setvar " + uuid + " callwarden_reason " + tc.reason,
				"execute-app-name: playback\nevent-lock: true\nexecute-app-arg: tone_stream://%(500,500,480,620);loops=3",
				"execute-app-name: hangup\nevent-lock: true\nexecute-app-arg: CALL_REJECTED",
			} {
				if !strings.Contains(joined, want) {
					t.Errorf("no %q among the commands:\n%q", want, got)
				}
			}
			recs := waitRecords(t, log, 1)
			if r := recs[0]; r.Decision != "deny" || r.Reason != tc.reason || r.Outcome != "" {
				t.Errorf("record %+v, want deny %s, nothing enforced", r, tc.reason)
			}
		})
	}
}

// commandIndex is the index of the first command containing want, or -1.
func commandIndex(cmds []string, want string) int {
	for i, c := range cmds {
		if strings.Contains(c, want) {
			return i
		}
	}
	return -1
}

func TestMonitorModeDigits(t *testing.T) {
	snap := mustExampleSnapshot(t)
	const sendWhisper = "sendevent CUSTOM\nunique-id: " + uuid + "\neavesdrop-command: "

	t.Run("the mode digits are bound to an event on the supervisor's channel before eavesdrop starts", func(t *testing.T) {
		a := MustAdapter(t, snap, &auditLog{})
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"))
		eavesdrop := commandIndex(got, "execute-app-name: eavesdrop\n")
		if sub := commandIndex(got, "event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_APPLICATION"); sub < 0 || sub > eavesdrop {
			t.Errorf("no CHANNEL_APPLICATION subscription before eavesdrop:\n%q", got)
		}
		for _, d := range []string{"4", "5", "6"} {
			want := "execute-app-name: bind_digit_action\nevent-lock: true\nexecute-app-arg: callwarden," + d + ",exec[i]:event,callwarden_digit=" + d
			if i := commandIndex(got, want); i < 0 || i > eavesdrop {
				t.Errorf("digit %s: no %q before eavesdrop (at %d):\n%q", d, want, eavesdrop, got)
			}
		}
		if i := commandIndex(got, "callwarden,3,"); i >= 0 {
			t.Errorf("FreeSWITCH's own digit 3 is bound: %q", got[i])
		}
	})

	t.Run("an allowed digit is decided again and sets the mode; FreeSWITCH's digits and the current mode's do nothing", func(t *testing.T) {
		log := &auditLog{}
		a := MustAdapter(t, snap, log)
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"), "3", "4", "6")
		if n := strings.Count(strings.Join(got, "|"), "sendevent CUSTOM"); n != 1 || commandIndex(got, sendWhisper+"3") < 0 {
			t.Errorf("%d eavesdrop-commands, want one: 3 (barge):\n%q", n, got)
		}
		if n := strings.Count(strings.Join(got, "|"), "api show channels as json"); n != 2 {
			t.Errorf("the target's call looked up %d times, want 2 (the request, the switch)", n)
		}
		recs := waitRecords(t, log, 4)
		sw, res := recs[2], recs[3]
		if sw.User != "admin" || sw.Action != "monitor.barge" || sw.Decision != "allow" || sw.Queue != "sales" ||
			!strings.Contains(sw.Detail, "switch from listen to barge") || res.Outcome != enforce.OutcomeEnforced {
			t.Errorf("switch records %+v / %+v, want admin allowed monitor.barge from listen, enforced", sw, res)
		}
	})

	t.Run("a whisper to a loopback leg goes into its read stream", func(t *testing.T) {
		a := MustAdapter(t, snap, &auditLog{})
		// The example policy names agent 2001 by "2001": the presence id finds it.
		channels := strings.Replace(channelsJSON("loopback/agent_2001-b"), `"presence_id":""`, `"presence_id":"2001"`, 1)
		got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channels, "5")
		if commandIndex(got, sendWhisper+"1") < 0 || commandIndex(got, sendWhisper+"2") >= 0 {
			t.Errorf("want eavesdrop-command 1 (the loopback leg's read stream), never 2:\n%q", got)
		}
	})

	t.Run("a refused digit sends no eavesdrop-command, plays the refusal and is audited", func(t *testing.T) {
		log := &auditLog{}
		a := MustAdapter(t, snap, log)
		// erin may only listen to queue sales.
		got := playMonitor(t, a.Addr().String(), monitorReplyFrom(t, "1003", "listen", "2001"), channelsJSON("PJSIP/2001-00000007"), "5")
		if i := commandIndex(got, "sendevent"); i >= 0 {
			t.Errorf("a refused whisper sent %q", got[i])
		}
		if commandIndex(got, "api uuid_displace "+uuid+" start tone_stream://%(500,500,480,620);loops=3 3 mux") < 0 {
			t.Errorf("no refusal played to the supervisor:\n%q", got)
		}
		recs := waitRecords(t, log, 3)
		if r := recs[2]; r.User != "erin" || r.Action != "monitor.whisper" || r.Decision != "deny" || r.Reason != "action_not_granted" {
			t.Errorf("switch record %+v, want erin denied monitor.whisper action_not_granted", r)
		}
	})
}

func TestMonitorSwitchAfterTheCallMoved(t *testing.T) {
	log := &auditLog{}
	a := MustAdapter(t, mustExampleSnapshot(t), log)
	// When the supervisor presses 6, agent 2001 is in another call.
	moved := strings.Replace(channelsJSON("PJSIP/2001-00000009"), monitorTargetUUID, "0d1e5a0c-9d7e-4d36-9a52-3c1f5f3b8e11", 1)
	got := playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007")+"\n"+moved, "6")
	if i := commandIndex(got, "sendevent"); i >= 0 {
		t.Errorf("a switch decided on another call sent %q", got[i])
	}
	if r := waitRecords(t, log, 3)[2]; r.Action != "monitor.barge" || r.Decision != "deny" || r.Reason != "target_not_in_call" {
		t.Errorf("switch record %+v, want monitor.barge denied target_not_in_call", r)
	}
}

func TestMuteSilencesWhatTheSupervisorHears(t *testing.T) {
	var sent []string
	fail := error(nil)
	tap := &eslTap{sup: uuid, api: func(_ context.Context, cmd string, args ...string) (string, error) {
		sent = append(sent, strings.Join(append([]string{cmd}, args...), " "))
		return "+OK Success\n", fail
	}}
	ctx := context.Background()
	if err := tap.Mute(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := tap.Mute(ctx, false); err != nil {
		t.Fatal(err)
	}
	// The channel's write stream is what eavesdrop sends the supervisor;
	// its read stream (the supervisor's voice) stays.
	want := []string{"uuid_audio " + uuid + " start write mute 1", "uuid_audio " + uuid + " stop"}
	if !slices.Equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
	fail = ErrCommandFailed
	if err := tap.Mute(ctx, true); !errors.Is(err, ErrCommandFailed) {
		t.Errorf("a failed uuid_audio: %v, want %v", err, ErrCommandFailed)
	}
}

func TestMonitorSetUpRefusedBreaksTheEavesdropOff(t *testing.T) {
	log := &auditLog{}
	a := MustAdapter(t, mustExampleSnapshot(t), log)
	ok := "Content-Type: command/reply\nReply-Text: +OK\n\n"
	// The set-up goes in one write with eavesdrop: the supervisor's channel
	// refuses its variables (it hung up meanwhile, say).
	got := fstest.PlaySocket(t, a.Addr().String(), func(cmd string) (string, bool) {
		switch {
		case cmd == "connect":
			return monitorReply(t, "listen", "2001"), false
		case cmd == "api show channels as json":
			return frameText("api/response", channelsJSON("PJSIP/2001-00000007")), false
		case strings.HasPrefix(cmd, "api uuid_dump "):
			return frameText("api/response", "Unique-ID: "+monitorTargetUUID+"\nvariable_callwarden_queue: sales\n"), false
		case strings.HasPrefix(cmd, "api uuid_setvar_multi "):
			return frameText("api/response", "-ERR No such channel!\n"), false
		case strings.HasPrefix(cmd, "api uuid_kill "):
			return "", true
		case strings.HasPrefix(cmd, "api "):
			return frameText("api/response", "+OK"), false
		default:
			return ok, false
		}
	})
	brk, kill := commandIndex(got, "api uuid_break "+uuid+" all"), commandIndex(got, "api uuid_kill "+uuid)
	if brk < 0 || kill < brk {
		t.Errorf("want the eavesdrop broken off, then the supervisor hung up:\n%q", got)
	}
	if res := waitRecords(t, log, 2)[1]; res.Outcome != enforce.OutcomeFailed || res.Cause != enforce.CauseSetupFailed {
		t.Errorf("result record %+v, want failed at set-up", res)
	}
}
