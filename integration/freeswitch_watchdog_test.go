package integration

// callwarden's FreeSWITCH watchdog against the real FreeSWITCH of the lab: an eavesdrop
// the dialplan starts (extension eavesdrop_<uuid>) and a uuid_record another ESL client
// sends are stopped within 200 ms, measured from FreeSWITCH's own event timestamps
// (Event-Date-Timestamp, microseconds); report-only only audits; the check example
// (*8<ext>) after an allow is left alone.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// watchdogBound is the bound from a bypass's start to its stop.
const watchdogBound = 200 * time.Millisecond

// fsEvents is an ESL connection of the test's own, subscribed to the events the
// watchdog measurements need.
type fsEvents struct {
	c *lab.ESL
	// read is when wait read the event it returned (this host's clock, which
	// has finer steps than FreeSWITCH's timestamps).
	read time.Time
}

func subscribeFS(ctx context.Context, t testing.TB, fs *lab.TestFreeSWITCH) *fsEvents {
	t.Helper()
	c, err := fs.DialESL(ctx)
	mustOK(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Command(ctx, "event plain CHANNEL_EXECUTE CHANNEL_HANGUP RECORD_START RECORD_STOP")
	mustOK(t, err)
	return &fsEvents{c: c}
}

// wait returns the Event-Date-Timestamp of the first event that match accepts.
func (e *fsEvents) wait(ctx context.Context, t testing.TB, what string, match func(h map[string]string) bool) time.Time {
	t.Helper()
	at, err := e.next(ctx, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return at
}

// next is wait answering its failure: no matching event within 10 s, or one
// without a timestamp.
func (e *fsEvents) next(ctx context.Context, match func(h map[string]string) bool) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		msg, err := e.c.NextEvent(ctx)
		if err != nil {
			return time.Time{}, err
		}
		h := msg.EventHeaders()
		if !match(h) {
			continue
		}
		e.read = time.Now()
		us, err := strconv.ParseInt(h["Event-Date-Timestamp"], 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("Event-Date-Timestamp %q: %w", h["Event-Date-Timestamp"], err)
		}
		return time.UnixMicro(us), nil
	}
}

func isEvent(name, uuid string) func(map[string]string) bool {
	return func(h map[string]string) bool { return h["Event-Name"] == name && h["Unique-ID"] == uuid }
}

// watchdogRecord waits for the watchdog's audit record on channel uuid.
func watchdogRecord(ctx context.Context, t *testing.T, l *lab.TestLab, uuid string) enforce.AuditRecord {
	t.Helper()
	return waitAuditOn(ctx, t, l, "the watchdog's audit record on "+uuid, "watchdog", uuid, 1)[0]
}

// rogueEavesdrop makes a loopback call whose B leg runs the lab's eavesdrop_<target>
// extension (the dialplan's eavesdrop, no callwarden in the path) and returns the spy
// leg's uuid and the Event-Date-Timestamp of its eavesdrop's start.
func rogueEavesdrop(ctx context.Context, t testing.TB, fs *lab.TestFreeSWITCH, ev *fsEvents, target string) (string, time.Time) {
	t.Helper()
	a := fs.NewUUID("spy")
	fs.Track(a)
	go func() {
		// The originate's answer may come after the watchdog hung the spy up: only
		// the events say what happened.
		_, _ = fs.API(ctx, "originate {origination_uuid="+a+"}loopback/eavesdrop_"+target+"/default park XML default")
	}()
	var spy string
	started := ev.wait(ctx, t, "the spy's eavesdrop", func(h map[string]string) bool {
		if h["Event-Name"] == "CHANNEL_EXECUTE" && h["Application"] == "eavesdrop" && h["Application-Data"] == target &&
			strings.HasPrefix(h["Channel-Name"], "loopback/eavesdrop_") {
			spy = h["Unique-ID"]
			return true
		}
		return false
	})
	fs.Track(spy)
	return spy, started
}

func wantWatchdogAudit(t *testing.T, rec enforce.AuditRecord, action, detail string) {
	t.Helper()
	if rec.Decision != "deny" || rec.Reason != "no_allow_decision" || rec.Action != action ||
		rec.AskedBy != "freeswitch:fslab" || rec.PBX != "fslab" || !strings.Contains(rec.Detail, detail) {
		t.Errorf("audit record %+v; want a watchdog deny no_allow_decision of %s asked by freeswitch:fslab, detail with %q",
			rec, action, detail)
	}
}

func TestFreeSWITCHWatchdogStopsARogueRecording(t *testing.T) {
	l, fs, ctx := fsLab(t)
	serveFreeSWITCH(ctx, t, l, fs, "callwarden")
	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")

	t.Run("a uuid_record from another ESL client is stopped within 200 ms, the call goes on", func(t *testing.T) {
		ev := subscribeFS(ctx, t, fs)
		path := "/tmp/rogue-" + fs.NewUUID("rec") + ".wav"
		_, err := fs.API(ctx, "uuid_record "+agentLeg+" start "+path)
		mustOK(t, err)
		started := ev.wait(ctx, t, "RECORD_START", func(h map[string]string) bool {
			return isEvent("RECORD_START", agentLeg)(h) && h["Record-File-Path"] == path
		})
		stopped := ev.wait(ctx, t, "RECORD_STOP", func(h map[string]string) bool {
			return isEvent("RECORD_STOP", agentLeg)(h) && h["Record-File-Path"] == path
		})
		took := stopped.Sub(started)
		t.Logf("uuid_record started to stopped (FreeSWITCH timestamps): %s", took)
		if took > watchdogBound {
			t.Errorf("recording stopped %s after it started; want within %s", took, watchdogBound)
		}
		wantWatchdogAudit(t, watchdogRecord(ctx, t, l, agentLeg), "recording.start", "stopped: recording "+path)
		if ok, err := fs.Exists(ctx, agentLeg); err != nil || !ok {
			t.Errorf("the agent's call ended (%v); only the recording should stop", err)
		}
	})
}

func TestFreeSWITCHWatchdogReportOnlyAuditsWithoutStopping(t *testing.T) {
	l, fs, ctx := fsLab(t)
	serveFreeSWITCH(ctx, t, l, fs, "callwarden", "CALLWARDEN_FREESWITCH_WATCHDOG=report-only")
	agentLeg := mustAgentLeg(ctx, t, fs, "2001", "5550100")

	spy, _ := rogueEavesdrop(ctx, t, fs, subscribeFS(ctx, t, fs), agentLeg)
	rec := watchdogRecord(ctx, t, l, spy)
	wantWatchdogAudit(t, rec, "monitor.listen", "reported (report-only): eavesdrop("+agentLeg+")")
	time.Sleep(500 * time.Millisecond)
	wantEavesdropping(ctx, t, fs, spy, agentLeg)
}

// noWatchdogRecord fails if the watchdog audited channel uuid.
func noWatchdogRecord(ctx context.Context, t *testing.T, l *lab.TestLab, uuid string) {
	t.Helper()
	recs, err := recentAudit(ctx, t, l)
	mustOK(t, err)
	for _, r := range auditOn(recs, "watchdog", uuid) {
		t.Errorf("watchdog record on %s: %+v", uuid, r)
	}
}
