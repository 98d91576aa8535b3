package asterisk

import (
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/pbx/session"
	"github.com/callwarden/callwarden/pbx/session/sessiontest"
)

// recordingAuditor keeps the records the adapter audits.
type recordingAuditor = sessiontest.AuditLog

const rogueChanSpy = `{"type":"ChannelDialplan","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000",` +
	`"dialplan_app":"ChanSpy","dialplan_app_data":",qEg(agent2001)",` +
	`"channel":{"id":"spy1","name":"PJSIP/1002-00000001","state":"Up","caller":{"number":"1002"},"creationtime":"2026-11-23T10:00:00.000+0000"}}`

const rogueSnoop = `{"type":"ChannelCreated","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000",` +
	`"channel":{"id":"snoop1","name":"Snoop/1700000000.1-00000001","state":"Up","creationtime":"2026-11-23T10:00:00.000+0000"}}`

func TestWatchdogHangsUpAnUnallowedChanSpyAndAForeignSnoop(t *testing.T) {
	f := newFakeARI(t)
	audit := startAuditedAdapter(t, f, nil)
	conn := <-f.conn
	start := time.Now()
	f.send(conn, rogueChanSpy)
	f.send(conn, rogueSnoop)
	waitFor(t, "the rogue ChanSpy hung up", func() bool { return f.called("DELETE /channels/spy1") })
	waitFor(t, "the foreign snoop hung up", func() bool { return f.called("DELETE /channels/snoop1") })
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("bypasses hung up after %s, want within 200ms", d)
	}
	waitFor(t, "two watchdog audit records", func() bool { return len(audit.All()) == 2 })
	for _, r := range audit.All() {
		if r.Source != "watchdog" || r.Decision != "deny" || r.Reason != session.ReasonNoDecision {
			t.Errorf("audit record %+v", r)
		}
		if r.Channels[0] == "spy1" && (r.User != "carol" || r.Action != "monitor.listen") {
			t.Errorf("ChanSpy audited as %+v, want carol monitor.listen", r)
		}
	}
}

func TestWatchdogReportOnlyAuditsWithoutHangingUp(t *testing.T) {
	f := newFakeARI(t)
	audit := startAuditedAdapter(t, f, func(o *Options) { o.Watchdog = WatchdogReportOnly })
	conn := <-f.conn
	f.send(conn, rogueChanSpy)
	f.send(conn, rogueSnoop)
	waitFor(t, "two watchdog audit records", func() bool { return len(audit.All()) == 2 })
	for _, r := range audit.All() {
		if !strings.HasPrefix(r.Detail, "reported (report-only)") {
			t.Errorf("audit detail %q, want a report-only record", r.Detail)
		}
	}
	if f.called("DELETE /channels/") {
		t.Error("report-only hung a channel up")
	}
}
