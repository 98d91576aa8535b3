package freeswitch

import (
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
)

const monitorTargetUUID = "7bafb6b1-7172-45c3-b03d-24ea9a5f311b"

// channelsJSON is `show channels as json` with one answered channel named name.
func channelsJSON(name string) string {
	return `{"row_count":2,"rows":[{"uuid":"` + uuid + `","name":"loopback/9198-a","callstate":"ACTIVE"},` +
		`{"uuid":"` + monitorTargetUUID + `","name":"` + name + `","presence_id":"","callstate":"ACTIVE"}]}`
}

// playMonitor is FreeSWITCH's socket application for a monitor request:
// show channels answers channels, uuid_dump a queue "sales"; the eavesdrop
// runs (CHANNEL_EXECUTE) when asked for, and ends (CHANNEL_EXECUTE_COMPLETE)
// once callwarden has set its reason; a hangup ends the call. It returns
// every command received.
func playMonitor(t *testing.T, addr, reply, channels string) []string {
	t.Helper()
	event := func(name, app string) string {
		return frameText("text/event-plain", "Event-Name: "+name+"\nUnique-ID: "+uuid+"\nApplication: "+app+"\n\n")
	}
	ok := "Content-Type: command/reply\nReply-Text: +OK\n\n"
	bye := "Content-Type: text/disconnect-notice\nContent-Length: 0\n\n"
	eavesdropping := false
	return fstest.PlaySocket(t, addr, func(cmd string) (string, bool) {
		var out string
		switch {
		case cmd == "connect":
			out = reply
		case cmd == "api show channels as json":
			out = frameText("api/response", channels)
		case strings.HasPrefix(cmd, "api uuid_dump "):
			out = frameText("api/response", "Unique-ID: "+monitorTargetUUID+"\nCaller-Caller-ID-Number: 0612345678\nvariable_callwarden_queue: sales\n")
		case strings.HasPrefix(cmd, "api uuid_setvar"):
			out = frameText("api/response", "+OK")
			if eavesdropping && strings.Contains(cmd, varReason) {
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

// monitorReply is the connect reply of admin (sip user 1000) asking mode on target.
func monitorReply(t *testing.T, mode, target string) string {
	return mustConnectReply(t, "variable_sip_from_user: 1000", "variable_callwarden_action: monitor",
		"variable_callwarden_mode: "+mode, "variable_callwarden_target: "+target)
}

// waitRecords waits for n audit records (the adapter writes them after its
// last command).
func waitRecords(t *testing.T, log *auditLog, n int) []enforce.AuditRecord {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if recs := log.All(); len(recs) >= n {
			return recs
		}
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
	})

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
