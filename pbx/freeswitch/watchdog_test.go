package freeswitch

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// The channels of esl-transcript-all.txt: loopback/9196-a eavesdrops on
// loopback/9198-a, which is recorded by uuid_record.
const (
	spyUUID    = "0b4a2380-7aec-436d-9892-4d3e930c12aa"
	targetUUID = "7a41011a-2d33-4989-b54c-a828c64d900e"
	recPath    = "/opt/fs/rec/esl-all-1795430249.wav"
)

// mustTranscriptEvents are the plain events FreeSWITCH sent in a
// transcript, in arrival order, decoded as the inbound connection does.
func mustTranscriptEvents(tb testing.TB, name string) []Event {
	tb.Helper()
	var evs []Event
	for _, block := range strings.Split(MustFixture(tb, name), "<<< RECV ")[1:] {
		_, block, _ = strings.Cut(block, "\n")
		block, _, _ = strings.Cut(block, "<<< END")
		r := bufio.NewReader(strings.NewReader(block))
		for {
			f, err := readFrame(r)
			if err != nil {
				break
			}
			if f.contentType() != typeEventPlain {
				continue
			}
			ev, err := parsePlainEvent(f.body)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			evs = append(evs, eventFromHeaders(ev.header))
		}
	}
	return evs
}

// watchdogEvents are the transcript's events the watchdog acts on: the spy
// leg's eavesdrop, the target's eavesdrop media bug, and the recording's
// RECORD_START and session_record media bug.
func watchdogEvents(tb testing.TB) (execEavesdrop, bugEavesdrop, recordStart, bugRecord Event) {
	tb.Helper()
	for _, ev := range mustTranscriptEvents(tb, "esl-transcript-all.txt") {
		switch {
		case ev.Name == "CHANNEL_EXECUTE" && ev.Get("Application") == "eavesdrop":
			execEavesdrop = ev
		case ev.Name == "MEDIA_BUG_START" && ev.Get("Media-Bug-Function") == "eavesdrop":
			bugEavesdrop = ev
		case ev.Name == "RECORD_START":
			recordStart = ev
		case ev.Name == "MEDIA_BUG_START" && ev.Get("Media-Bug-Function") == "session_record":
			bugRecord = ev
		}
	}
	if execEavesdrop.Get("Unique-ID") != spyUUID || bugEavesdrop.Get("Unique-ID") != targetUUID ||
		recordStart.Get("Record-File-Path") != recPath || bugRecord.Get("Media-Bug-Target") != recPath {
		tb.Fatalf("the transcript's watchdog events are not the expected ones")
	}
	return
}

// testWatchdog is a watchdog whose commands and counts are recorded.
type testWatchdog struct {
	*watchdog
	log *auditLog

	mu     sync.Mutex
	cmds   []string
	counts []string
	clock  time.Time
}

func newTestWatchdog(t *testing.T, mode WatchdogMode) *testWatchdog {
	t.Helper()
	tw := &testWatchdog{log: &auditLog{}, clock: testNow}
	snap := mustExampleSnapshot(t)
	now := func() time.Time { tw.mu.Lock(); defer tw.mu.Unlock(); return tw.clock }
	tw.watchdog = newWatchdog(&watchdog{mode: mode, now: now, log: zap.NewNop(),
		snap:  func() *enforce.Snapshot { return snap },
		audit: &session.Audit{Log: tw.log, Source: "freeswitch", PBX: "fs1", Now: now, Timeout: time.Second},
		act: func(_ context.Context, cmd string, args ...string) (string, error) {
			tw.mu.Lock()
			defer tw.mu.Unlock()
			tw.cmds = append(tw.cmds, strings.Join(append([]string{cmd}, args...), " "))
			return "+OK", nil
		},
		count: func(kind string, mode WatchdogMode) {
			tw.mu.Lock()
			defer tw.mu.Unlock()
			tw.counts = append(tw.counts, kind+"/"+string(mode))
		},
	})
	tw.allowances.Now = now
	t.Cleanup(tw.stop)
	return tw
}

// settle waits for the bypasses' goroutines (stop and audit).
func (tw *testWatchdog) settle() { tw.wg.Wait() }

// feed hands evs to the watchdog in order, waits for what they started to
// settle and returns the commands sent so far.
func (tw *testWatchdog) feed(evs ...Event) string {
	for _, ev := range evs {
		tw.onEvent(ev)
	}
	tw.settle()
	return tw.commands()
}

// records returns the audit records, failing t unless there are n.
func (tw *testWatchdog) records(t *testing.T, n int) []enforce.AuditRecord {
	t.Helper()
	recs := tw.log.All()
	if len(recs) != n {
		t.Fatalf("%d audit records; want %d", len(recs), n)
	}
	return recs
}

func (tw *testWatchdog) commands() string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return strings.Join(tw.cmds, "|")
}

func (tw *testWatchdog) countsSeen() string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return strings.Join(tw.counts, "|")
}

func (tw *testWatchdog) advance(d time.Duration) {
	tw.mu.Lock()
	tw.clock = tw.clock.Add(d)
	tw.mu.Unlock()
}

func wantWatchdogRecord(t *testing.T, r enforce.AuditRecord, action, channel, detail string) {
	t.Helper()
	if r.Source != "watchdog" || r.Decision != "deny" || r.Reason != "no_allow_decision" || r.Action != action ||
		r.AskedBy != "freeswitch:fs1" || r.PBX != "fs1" || len(r.Channels) != 1 || r.Channels[0] != channel ||
		!strings.Contains(r.Detail, detail) {
		t.Errorf("audit record %+v; want a watchdog deny no_allow_decision of %s on %s, detail with %q", r, action, channel, detail)
	}
}

func TestWatchdogStopsBypasses(t *testing.T) {
	execEv, bugEv, recEv, recBugEv := watchdogEvents(t)

	t.Run("an eavesdrop without an allow hangs up the eavesdropper", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		// bugEv, the target's media bug, is explained by the spy's eavesdrop
		if got := tw.feed(execEv, bugEv); got != "uuid_kill "+spyUUID {
			t.Errorf("commands %q; want uuid_kill of the spy leg only", got)
		}
		if got := tw.countsSeen(); got != "eavesdrop/enforce" {
			t.Errorf("counted %q", got)
		}
		recs := tw.records(t, 1)
		wantWatchdogRecord(t, recs[0], "monitor.listen", spyUUID, "hung up: eavesdrop("+targetUUID+"); channel loopback/9196-a")
	})

	t.Run("a recording without an allow is stopped, the call goes on", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		// recBugEv is the same recording seen as a media bug
		if got := tw.feed(recEv, recBugEv); got != "uuid_record "+targetUUID+" stop "+recPath {
			t.Errorf("commands %q; want this recording stopped, once", got)
		}
		recs := tw.records(t, 1)
		wantWatchdogRecord(t, recs[0], "recording.start", targetUUID, "stopped: recording "+recPath)
	})

	t.Run("a recording first seen as its media bug is stopped once", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		if got := tw.feed(recBugEv, recEv); got != "uuid_record "+targetUUID+" stop "+recPath {
			t.Errorf("commands %q; want this recording stopped, once", got)
		}
	})

	t.Run("an eavesdrop media bug without an eavesdrop application is reported, nothing hung up", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		if got := tw.feed(bugEv); got != "" {
			t.Errorf("commands %q; want none (the spy is unknown, the target is the customer's call)", got)
		}
		recs := tw.records(t, 1)
		wantWatchdogRecord(t, recs[0], "monitor.listen", targetUUID, "reported (spy unknown)")
	})

	t.Run("report-only audits and counts without stopping", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogReportOnly)
		if got := tw.feed(execEv, bugEv, recEv, recBugEv); got != "" {
			t.Errorf("commands %q in report-only", got)
		}
		if got := tw.countsSeen(); got != "eavesdrop/report-only|record/report-only" {
			t.Errorf("counted %q", got)
		}
		recs := tw.records(t, 2)
		for _, r := range recs {
			if !strings.HasPrefix(r.Detail, "reported (report-only): ") {
				t.Errorf("detail %q", r.Detail)
			}
		}
	})

	t.Run("off does nothing", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogOff)
		for _, ev := range []Event{execEv, bugEv, recEv, recBugEv} {
			tw.onEvent(ev)
		}
		tw.settle()
		if tw.commands() != "" || len(tw.log.All()) != 0 || tw.countsSeen() != "" {
			t.Errorf("off acted: %q, %d records", tw.commands(), len(tw.log.All()))
		}
	})
}

func TestWatchdogLetsAllowedApplicationsThroughOnce(t *testing.T) {
	execEv, _, recEv, _ := watchdogEvents(t)

	for _, action := range []enforce.Action{enforce.MonitorListen, enforce.MonitorWhisper, enforce.MonitorBarge} {
		t.Run("an allowed "+session.ActionName(action)+" lets the next eavesdrop through, not the one after", func(t *testing.T) {
			tw := newTestWatchdog(t, session.WatchdogEnforce)
			tw.allow(spyUUID, action)
			if got := tw.feed(execEv); got != "" {
				t.Fatalf("allowed eavesdrop stopped: %q", got)
			}
			if got := tw.feed(execEv); got != "uuid_kill "+spyUUID {
				t.Errorf("second eavesdrop: commands %q; want uuid_kill", got)
			}
		})
	}

	t.Run("an allowance expires after 60 s", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		tw.allow(spyUUID, enforce.MonitorListen)
		tw.advance(session.AllowanceTTL)
		if got := tw.feed(execEv); got != "uuid_kill "+spyUUID {
			t.Errorf("commands %q; want uuid_kill", got)
		}
	})

	t.Run("an allow of another action or channel does not count", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		tw.allow(spyUUID, enforce.RecordingStart)
		tw.allow(targetUUID, enforce.MonitorListen)
		if got := tw.feed(execEv); got != "uuid_kill "+spyUUID {
			t.Errorf("commands %q; want uuid_kill", got)
		}
	})

	t.Run("an allowed recording is not stopped", func(t *testing.T) {
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		tw.allow(targetUUID, enforce.RecordingStart)
		if got := tw.feed(recEv); got != "" || len(tw.log.All()) != 0 {
			t.Errorf("allowed recording stopped: %q", got)
		}
	})
}

func TestWatchdogAuditsAFailedStop(t *testing.T) {
	execEv, _, _, _ := watchdogEvents(t)
	tw := newTestWatchdog(t, session.WatchdogEnforce)
	tw.act = func(context.Context, string, ...string) (string, error) { return "", errors.New("no connection") }
	tw.onEvent(execEv)
	tw.settle()
	recs := tw.log.All()
	if len(recs) != 1 || !strings.HasPrefix(recs[0].Detail, "stop failed (no connection): ") {
		t.Fatalf("records %+v; want one saying the stop failed", recs)
	}
}

func TestWatchdogStopsEveryRecordingOfAChannelWhenThePathCannotBeSent(t *testing.T) {
	_, _, recEv, _ := watchdogEvents(t)
	for _, path := range []string{"/tmp/x.wav\r\napi hupall", "/tmp/x.wav\napi_hupall", "/tmp/my call.wav", ""} {
		ev := Event{Name: recEv.Name, Headers: map[string]string{}}
		for k, v := range recEv.Headers {
			ev.Headers[k] = v
		}
		ev.Headers["Record-File-Path"] = path
		tw := newTestWatchdog(t, session.WatchdogEnforce)
		if got := tw.feed(ev); got != "uuid_record "+targetUUID+" stop all" {
			t.Errorf("path %q: commands %q; want stop all", path, got)
		}
	}
}

func TestCheckAllowLetsTheDialplansEavesdropThrough(t *testing.T) {
	snap := mustExampleSnapshot(t)
	log := &auditLog{}
	a := MustAdapter(t, snap, log)
	got := withoutLookup(playFreeSWITCH(t, a.Addr().String(), mustConnectReply(t, "variable_sip_from_user: 1000",
		"variable_callwarden_action: check", "variable_callwarden_mode: listen", "variable_callwarden_target: 2001")))
	if len(got) != 4 || !strings.HasSuffix(got[1], "callwarden_decision allow") {
		t.Fatalf("commands %q; want an allow", got)
	}
	execEv, _, _, _ := watchdogEvents(t)
	ev := Event{Name: execEv.Name, Headers: map[string]string{}}
	for k, v := range execEv.Headers {
		ev.Headers[k] = v
	}
	ev.Headers["Unique-Id"] = uuid // the checked channel runs eavesdrop
	a.onEvent(ev)
	a.onEvent(ev) // a second eavesdrop needs a second check
	a.wd.wg.Wait()
	recs := log.All()
	if len(recs) != 2 || recs[0].Source != "freeswitch" || recs[1].Source != "watchdog" || recs[1].Channels[0] != uuid {
		t.Fatalf("records %+v; want the check's allow, then one watchdog record", recs)
	}
	var m dto.Metric
	if err := a.m.watchdog.WithLabelValues("eavesdrop", "enforce").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Errorf("callwarden_freeswitch_watchdog_total{eavesdrop,enforce} = %v; want 1", n)
	}
}
