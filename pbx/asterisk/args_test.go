package asterisk

import (
	"errors"
	"strings"
	"testing"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/callwarden/callwarden/enforce"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args string
		want request
	}{
		{"monitor listen", "monitor,listen,2001", request{verb: verbMonitor, mode: modeListen, target: "2001"}},
		{"monitor barge continues on deny", "monitor,barge,agent2001,continue", request{verb: verbMonitor, mode: modeBarge, target: "agent2001", continueOnDeny: true}},
		{"check without target", "check,recording.start", request{verb: verbCheck, action: enforce.RecordingStart}},
		{"check with target", "check,monitor.whisper,2002", request{verb: verbCheck, action: enforce.MonitorWhisper, target: "2002"}},
		{"record toggle own call", "record,toggle", request{verb: verbRecord, op: recToggle}},
		{"record start target", "record,start,2001", request{verb: verbRecord, op: recStart, target: "2001"}},
		{"playback", "playback,cw-rec-0011", request{verb: verbPlayback, recording: "cw-rec-0011"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgs(strings.Split(tc.args, ","))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("parseArgs(%s) = %+v, want %+v", tc.args, got, tc.want)
			}
		})
	}
}

func TestParseArgsRefusesMalformedRequests(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{""},
		{"spy", "2001"},
		{"monitor"},
		{"monitor", "listen"},
		{"monitor", "snoop", "2001"},
		{"monitor", "listen", ""},
		{"monitor", "listen", "2001", "please"},
		{"monitor", "listen", "2001;rm -rf"},
		{"check"},
		{"check", "monitor.spy"},
		{"check", "monitor.listen", "2001", "x"},
		{"record", "erase"},
		{"playback"},
		{"playback", strings.Repeat("x", maxArg+1)},
		{"monitor", "listen", "20\n01"},
	} {
		if r, err := parseArgs(args); !errors.Is(err, errBadArgs) {
			t.Errorf("parseArgs(%q) = %+v, %v; want errBadArgs", args, r, err)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"monitor,listen,2001", "check,monitor.barge", "record,toggle", "playback,x,continue", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseArgs(strings.Split(s, ","))
		if err != nil {
			if !errors.Is(err, errBadArgs) {
				t.Fatalf("error %v does not wrap errBadArgs", err)
			}
			return
		}
		switch r.verb {
		case verbMonitor:
			if r.mode.Action() == 0 || r.target == "" {
				t.Fatalf("monitor request without mode or target: %+v", r)
			}
		case verbCheck:
			if !r.action.Valid() {
				t.Fatalf("check without a valid action: %+v", r)
			}
		case verbRecord:
			if r.op == 0 {
				t.Fatalf("record without an operation: %+v", r)
			}
		case verbPlayback:
			if r.recording == "" {
				t.Fatalf("playback without a recording: %+v", r)
			}
		default:
			t.Fatalf("accepted without a verb: %+v", r)
		}
	})
}

func TestEachModeSnoopsWithItsDirections(t *testing.T) {
	for _, tc := range []struct {
		mode         mode
		spy, whisper ari.Direction
		action       enforce.Action
	}{
		{modeListen, ari.DirectionBoth, ari.DirectionNone, enforce.MonitorListen},
		{modeWhisper, ari.DirectionBoth, ari.DirectionOut, enforce.MonitorWhisper},
		{modeBarge, ari.DirectionBoth, ari.DirectionBoth, enforce.MonitorBarge},
	} {
		spy, whisper := directions(tc.mode)
		if spy != tc.spy || whisper != tc.whisper || tc.mode.Action() != tc.action {
			t.Errorf("%s: spy=%s whisper=%s action=%s; want %s %s %s", tc.mode, spy, whisper, tc.mode.Action(), tc.spy, tc.whisper, tc.action)
		}
	}
	for d, want := range map[string]mode{"4": modeListen, "5": modeWhisper, "6": modeBarge} {
		if m, ok := modeForDigit(d); !ok || m != want {
			t.Errorf("DTMF %s switches to %s, want %s", d, m, want)
		}
	}
	if _, ok := modeForDigit("7"); ok {
		t.Error("DTMF 7 must not switch modes")
	}
}

func TestWatchdogMapsDialplanAppsToTheActionTheyNeed(t *testing.T) {
	for _, tc := range []struct {
		app, data string
		want      enforce.Action
		ok        bool
	}{
		{"ChanSpy", ",qEg(agent2001)", enforce.MonitorListen, true},
		{"ChanSpy", "PJSIP/2001,q", enforce.MonitorListen, true},
		{"ChanSpy", ",qwEg(agent2001)", enforce.MonitorWhisper, true},
		{"ChanSpy", ",BEg(agent2001)", enforce.MonitorBarge, true},
		{"ChanSpy", ",dq", enforce.MonitorBarge, true},             // DTMF can escalate to barge
		{"ChanSpy", ",qg(wBd-group)", enforce.MonitorListen, true}, // letters inside g() are not options
		{"ExtenSpy", "2001@cw-agents,w", enforce.MonitorWhisper, true},
		{"MixMonitor", "/tmp/x.wav", enforce.RecordingStart, true},
		{"Playback", "beep", 0, false},
		{"Dial", "PJSIP/2001", 0, false},
	} {
		_, got, ok := guardedApp(tc.app, tc.data)
		if got != tc.want || ok != tc.ok {
			t.Errorf("guardedApp(%s, %q) = %s, %v; want %s, %v", tc.app, tc.data, got, ok, tc.want, tc.ok)
		}
	}
}
