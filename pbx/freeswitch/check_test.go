package freeswitch

import (
	"bufio"
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwarden/callwarden/config/configtest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch/fstest"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// mustExampleSnapshot compiles deploy/examples/profiles.yaml.
func mustExampleSnapshot(tb testing.TB) *enforce.Snapshot {
	tb.Helper()
	return configtest.MustSnapshot(tb, "../../deploy/examples/profiles.yaml")
}

// auditLog keeps the records the adapter audits.
type auditLog = sessiontest.AuditLog

var testNow = time.Date(2026, 11, 23, 10, 37, 53, 0, time.UTC)

// MustAdapter is an adapter on 127.0.0.1:0 whose ESL peer is fake, run
// until the test ends; mods change its options first. Its FreeSWITCH has
// no channel.
func MustAdapter(tb testing.TB, snap *enforce.Snapshot, log enforce.Auditor, mods ...func(*Options)) *Adapter {
	tb.Helper()
	fake := newFakeESL(tb, func(_ int, cmd string) (string, time.Duration) {
		if cmd == "show channels as json" {
			return noChannels, 0
		}
		return "+OK", 0
	})
	return mustAdapterOn(tb, fake, snap, log, mods...)
}

// mustAdapterOn is MustAdapter with the inbound ESL peer fake.
func mustAdapterOn(tb testing.TB, fake *fakeESL, snap *enforce.Snapshot, log enforce.Auditor, mods ...func(*Options)) *Adapter {
	tb.Helper()
	o := Options{ESLAddress: fake.addr(), ESLPassword: "ClueCon", OutboundListen: "127.0.0.1:0", PBX: "fs1",
		Timeout: time.Second, Snapshot: func() *enforce.Snapshot { return snap }, Auditor: log,
		Now: func() time.Time { return testNow }, Registerer: prometheus.NewRegistry()}
	for _, mod := range mods {
		mod(&o)
	}
	a, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return a
}

// noChannels is `show channels as json` when no call is up.
const noChannels = `{"row_count":0}`

// playFreeSWITCH connects to the outbound socket as FreeSWITCH's socket
// application does: it answers connect with reply, uuid_setvar with +OK,
// exit with "+OK bye" and a disconnect notice, and returns every command
// it received. No call is up.
func playFreeSWITCH(t *testing.T, addr, reply string) []string {
	t.Helper()
	return playCheck(t, addr, reply, noChannels)
}

// playCheck is playFreeSWITCH with channels as `show channels as json`;
// uuid_dump gives a call in queue "sales".
func playCheck(t *testing.T, addr, reply, channels string) []string {
	t.Helper()
	return fstest.PlaySocket(t, addr, func(cmd string) (string, bool) {
		switch {
		case cmd == "connect":
			return reply, false
		case cmd == "api show channels as json":
			return frameText("api/response", channels), false
		case strings.HasPrefix(cmd, "api uuid_dump "):
			return frameText("api/response", "Unique-ID: "+monitorTargetUUID+"\nCaller-Caller-ID-Number: 0612345678\nvariable_callwarden_queue: sales\n"), false
		case strings.HasPrefix(cmd, "api uuid_setvar "):
			return frameText("api/response", "+OK"), false
		case cmd == "exit":
			return "Content-Type: command/reply\nReply-Text: +OK bye\n\n" +
				"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n", true
		default:
			t.Errorf("unexpected command %q", cmd)
			return "", true
		}
	})
}

// withoutLookup drops the commands that look up a target's live call
// (TestCheckReadsTheTargetsQueue tests them).
func withoutLookup(cmds []string) []string {
	return slices.DeleteFunc(cmds, func(c string) bool {
		return c == "api show channels as json" || strings.HasPrefix(c, "api uuid_dump ")
	})
}

const uuid = "cf537d4e-823b-4cda-9349-194bda03edc2"

func TestCheckOverTheOutboundSocket(t *testing.T) {
	snap := mustExampleSnapshot(t)
	for _, tc := range []struct {
		name                 string
		vars                 []string
		decision, reason     string
		user, action, target string
	}{
		{"admin may listen to an agent", []string{"variable_sip_from_user: 1000", "variable_callwarden_action: check",
			"variable_callwarden_mode: listen", "variable_callwarden_target: 2001"}, "allow", "granted", "admin", "monitor.listen", "agent2001"},
		{"unknown phone is denied", []string{"variable_callwarden_action: check",
			"variable_callwarden_mode: monitor.listen", "variable_callwarden_target: 2001"}, "deny", "unknown_user", "", "monitor.listen", "agent2001"},
		{"a user variable cannot name the requester", []string{"variable_callwarden_user: admin", "variable_callwarden_action: check",
			"variable_callwarden_mode: listen", "variable_callwarden_target: 2001"}, "deny", "unknown_user", "", "monitor.listen", "agent2001"},
		{"unknown verb is refused", []string{"variable_sip_from_user: 1000", "variable_callwarden_action: spy"},
			"deny", "invalid_request", "", "invalid", ""},
		{"monitor in an unknown mode is refused", []string{"variable_sip_from_user: 1000", "variable_callwarden_action: monitor",
			"variable_callwarden_mode: spy", "variable_callwarden_target: 2001"}, "deny", "invalid_request", "", "invalid", ""},
		{"unknown target", []string{"variable_sip_from_user: 1000", "variable_callwarden_action: check",
			"variable_callwarden_mode: listen", "variable_callwarden_target: 9999"}, "deny", "unknown_target", "admin", "monitor.listen", "9999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &auditLog{}
			a := MustAdapter(t, snap, log)
			got := withoutLookup(playFreeSWITCH(t, a.Addr().String(), mustConnectReply(t, tc.vars...)))
			want := []string{"connect",
				"api uuid_setvar " + uuid + " callwarden_decision " + tc.decision,
				"api uuid_setvar " + uuid + " callwarden_reason " + tc.reason,
				"exit"}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("commands:\n%q\nwant\n%q", got, want)
			}
			recs := log.All()
			if len(recs) != 1 {
				t.Fatalf("%d audit records; want 1", len(recs))
			}
			r := recs[0]
			if r.Decision != tc.decision || r.Reason != tc.reason || r.User != tc.user || r.Action != tc.action ||
				r.Target != tc.target || r.Source != "freeswitch" || r.PBX != "fs1" || r.AskedBy != "freeswitch:fs1" ||
				!r.Time.Equal(testNow) || len(r.Channels) != 1 || r.Channels[0] != uuid {
				t.Fatalf("audit record %+v", r)
			}
			if !strings.Contains(r.Detail, "requested from loopback/9198-a caller id default") {
				t.Errorf("detail %q does not name the requesting channel", r.Detail)
			}
		})
	}
}

// A check naming a target is decided on the target's live call: its
// queue, as on Asterisk; without a live call a queue-scoped grant does not
// match.
func TestCheckReadsTheTargetsQueue(t *testing.T) {
	snap := mustExampleSnapshot(t)
	reply := mustConnectReply(t, "variable_sip_from_user: 1001", "variable_callwarden_action: check",
		"variable_callwarden_mode: listen", "variable_callwarden_target: 2001")
	for _, tc := range []struct {
		name, channels, decision, reason, queue string
		channelIDs                              int
	}{
		{"in a sales call", channelsJSON("PJSIP/2001-00000001"), "allow", "granted", "sales", 2},
		{"in no call", noChannels, "deny", "out_of_scope", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &auditLog{}
			a := MustAdapter(t, snap, log)
			got := playCheck(t, a.Addr().String(), reply, tc.channels)
			if want := "api uuid_setvar " + uuid + " callwarden_decision " + tc.decision; !slices.Contains(got, want) {
				t.Fatalf("commands %q, want %q", got, want)
			}
			recs := log.All()
			if len(recs) != 1 {
				t.Fatalf("%d audit records; want 1", len(recs))
			}
			if r := recs[0]; r.User != "alice" || r.Target != "agent2001" || r.Queue != tc.queue || r.Reason != tc.reason ||
				len(r.Channels) != tc.channelIDs {
				t.Errorf("audit record %+v, want alice %s on agent2001 in queue %q (%s)", r, tc.decision, tc.queue, tc.reason)
			}
		})
	}
}

func TestCheckMasksTheRequestersNumber(t *testing.T) {
	log := &auditLog{}
	a := MustAdapter(t, mustExampleSnapshot(t), log)
	reply := strings.Replace(mustConnectReply(t, "variable_sip_from_user: 1002", "variable_callwarden_action: check",
		"variable_callwarden_mode: listen", "variable_callwarden_target: 2001"),
		"Caller-Caller-ID-Number: default", "Caller-Caller-ID-Number: 0612345678", 1)
	playFreeSWITCH(t, a.Addr().String(), reply)
	recs := log.All()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	if !strings.Contains(recs[0].Detail, "caller id 061234****") {
		t.Errorf("detail %q shows the number unmasked", recs[0].Detail)
	}
}

func TestOutboundShutdownCutsASilentConnection(t *testing.T) {
	fake := newFakeESL(t, func(int, string) (string, time.Duration) { return "+OK", 0 })
	a, err := New(Options{ESLAddress: fake.addr(), ESLPassword: "ClueCon", OutboundListen: "127.0.0.1:0",
		Timeout: 5 * time.Second, ShutdownTimeout: 100 * time.Millisecond,
		Snapshot: func() *enforce.Snapshot { return nil }, Auditor: &auditLog{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	c, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cmd, err := fstest.ReadCommand(bufio.NewReader(c)); err != nil || cmd != "connect" {
		t.Fatalf("first command %q, %v", cmd, err)
	}
	start := time.Now()
	cancel() // FreeSWITCH never answers connect
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown took %s; want about ShutdownTimeout", d)
	}
	if _, err := net.Dial("tcp", a.Addr().String()); err == nil {
		t.Error("the listener still accepts after Run returned")
	}
}
