package integration

// The two drivers of the acceptance scenarios (scenarios_test.go): each places the
// scenario's calls on its PBX of the lab and says what the supervisor got, while
// `callwarden serve` decides from the scenarios' policy in the lab's Redis.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// pbxDriver is one PBX of the lab with its callwarden daemon, shared by the table's
// rows. Its daemon and PBX live as long as the table; begin gives a row its calls.
type pbxDriver interface {
	// pbx names the PBX in subtest names and messages: asterisk or freeswitch.
	pbx() string
	// source is the audit source of the requests callwarden answers on it.
	source() string
	// begin returns the row's handle: the calls it places end with the row.
	begin(ctx context.Context, t *testing.T) pbxCalls
	// restartPBX restarts the PBX and waits until callwarden is connected again.
	restartPBX(ctx context.Context, t *testing.T)
	// restartCallwarden stops the daemon and starts it again on the same config.
	restartCallwarden(ctx context.Context, t *testing.T)
	// store is the daemon's Redis store: audit records, recordings.
	store() *redisstore.Store
	// storeAudio puts recordingAudio where the PBX plays the recording named name
	// from, as if it had recorded it.
	storeAudio(ctx context.Context, t *testing.T, name string)
}

// recordingAudio is the audio of the recordings the table stores: long enough to be
// still playing when a row checks that the requester's call is up.
var recordingAudio = lab.ToneWAV(440, 3*time.Second)

// pbxCalls places one row's calls; each method stops the row when its call cannot
// be placed or does not end as it says.
type pbxCalls interface {
	// agentCall has a customer (callerID) reach agent (e.g. "2001"), through queue
	// when it is not empty; it returns the agent's channel once both are up.
	agentCall(ctx context.Context, t *testing.T, queue, agent, callerID string) string
	// dial has supervisor's phone dial exten (a feature code) and returns the
	// requesting channel.
	dial(ctx context.Context, t *testing.T, supervisor, exten string) string
	// dialAndPress dials exten as dial does and presses digit once the session runs.
	dialAndPress(ctx context.Context, t *testing.T, supervisor, exten, digit string) string
	// wantEavesdropping waits until the requesting channel hears the agent's channel.
	wantEavesdropping(ctx context.Context, t *testing.T, requester, agent string)
	// wantRefused waits until the requesting channel is refused and hung up, never
	// having eavesdropped.
	wantRefused(ctx context.Context, t *testing.T, requester string)
	// wantHungUp waits until the requesting channel is gone (a record or playback
	// code ends its call once answered).
	wantHungUp(ctx context.Context, t *testing.T, requester string)
	// rogueSpy has supervisor spy on agent's call through the PBX's own dialplan,
	// without callwarden; it waits until the spy is hung up and returns its channel
	// and how long it spied (the PBX's own timestamps).
	rogueSpy(ctx context.Context, t *testing.T, supervisor, agentExt, agent string) (string, time.Duration)
	// rogueRecording has supervisor's phone record itself through the PBX's own
	// dialplan, without callwarden; it waits until the watchdog ended the recording,
	// in the PBX's way (see the drivers), and returns the phone's channel and how long
	// it recorded (the PBX's own timestamps).
	rogueRecording(ctx context.Context, t *testing.T, supervisor string) (string, time.Duration)
	// wantUp fails the row when channel is no longer up.
	wantUp(ctx context.Context, t *testing.T, channel string)
	// hangUp hangs channel up.
	hangUp(ctx context.Context, t *testing.T, channel string)
}

// auditFor waits for n audit records of source whose first channel is channel, on
// the daemon's store, and returns them in the order they were written.
func auditFor(ctx context.Context, t *testing.T, d pbxDriver, source, channel string, n int) []enforce.AuditRecord {
	t.Helper()
	var found []enforce.AuditRecord
	waitFor(ctx, t, fmt.Sprintf("%d %s audit records on %s", n, source, channel), func() error {
		recs, err := d.store().ReadAudit(ctx, enforce.AuditFilter{Since: time.Now().Add(-10 * time.Minute)})
		if err != nil {
			return err
		}
		if found = auditOn(recs, source, channel); len(found) < n {
			return fmt.Errorf("%d of %d among %d records: %+v", len(found), n, len(recs), found)
		}
		return nil
	})
	return found
}

// --- Asterisk ----------------------------------------------------------------------

// asteriskDriver runs `callwarden serve` with its Stasis application on the lab's
// Asterisk.
type asteriskDriver struct {
	top    *testing.T // the table's test: the daemon lives as long as it
	l      *lab.TestLab
	st     *redisstore.Store
	bin    string
	cfg    string
	daemon *servedDaemon
	starts int
}

func newAsteriskDriver(ctx context.Context, t *testing.T, l *lab.TestLab, st *redisstore.Store) *asteriskDriver {
	t.Helper()
	d := &asteriskDriver{top: t, l: l, st: st, bin: buildCallwarden(t), cfg: serveConfig(t, l)}
	d.serve(ctx)
	// Registered after the daemon's cleanup, so it runs before it: the calls end
	// while callwarden still runs, as on a live PBX.
	t.Cleanup(func() { hangupAll(t, l) })
	return d
}

// serve starts the daemon for the rest of the table (its lifetime is top's) and waits
// until its Stasis application is connected.
func (d *asteriskDriver) serve(ctx context.Context) {
	d.starts++
	d.daemon = serveAsterisk(ctx, d.top, d.l, d.bin, d.cfg, fmt.Sprintf("callwarden-asterisk-%d", d.starts))
}

func (d *asteriskDriver) pbx() string              { return "asterisk" }
func (d *asteriskDriver) source() string           { return "asterisk" }
func (d *asteriskDriver) store() *redisstore.Store { return d.st }

// storeAudio writes the recording where ARI's stored recordings live
// (recording:<name> plays it).
func (d *asteriskDriver) storeAudio(ctx context.Context, t *testing.T, name string) {
	mustOK(t, d.l.WriteAsteriskFile(ctx, "/var/spool/asterisk/recording/"+name+".wav", recordingAudio))
}

func (d *asteriskDriver) begin(ctx context.Context, t *testing.T) pbxCalls {
	l := suite.Lab(t)
	return &asteriskCalls{l: l, events: mustEvents(ctx, t, l)}
}

func (d *asteriskDriver) restartPBX(ctx context.Context, t *testing.T) {
	t.Helper()
	before := d.daemon.loggedTimes("ARI connected")
	if _, err := d.l.AsteriskCLI(ctx, "core restart now"); err != nil {
		t.Logf("core restart now: %v (the CLI connection drops with Asterisk)", err)
	}
	waitFor(ctx, t, "callwarden connected to the restarted Asterisk", func() error {
		if n := d.daemon.loggedTimes("ARI connected"); n <= before {
			return fmt.Errorf("ARI connected logged %d times, as before the restart", n)
		}
		return nil
	})
	mustAsteriskCLI(ctx, t, d.l, "core waitfullybooted")
	wantEventFilter(ctx, t, d.l)
}

// wantEventFilter checks that the (re)connection set the application's event filter:
// Asterisk sends callwarden only what it acts on.
func wantEventFilter(ctx context.Context, t *testing.T, l *lab.TestLab) {
	t.Helper()
	var app struct {
		EventsAllowed []struct {
			Type string `json:"type"`
		} `json:"events_allowed"`
	}
	mustOK(t, ari(ctx, l, http.MethodGet, "/applications/callwarden", nil, &app))
	allowed := map[string]bool{}
	for _, e := range app.EventsAllowed {
		allowed[e.Type] = true
	}
	// ChannelVarset is let through for queue moves (a live session decided again);
	// the event types the ARI library cannot decode never are.
	if !allowed["StasisStart"] || !allowed["ChannelDialplan"] || !allowed["ChannelVarset"] {
		t.Errorf("events allowed for callwarden after the restart: %v", app.EventsAllowed)
	}
	for _, unknown := range []string{"ApplicationRegistered", "ApplicationUnregistered", "CallBroadcast", "CallClaimed",
		"ChannelCallerId", "ChannelToneDetected", "ChannelTransfer", "RESTResponse"} {
		if allowed[unknown] {
			t.Errorf("%s allowed for callwarden after the restart (the ARI library panics on it): %v", unknown, app.EventsAllowed)
		}
	}
}

func (d *asteriskDriver) restartCallwarden(ctx context.Context, t *testing.T) {
	t.Helper()
	d.daemon.stop(t)
	if !waitApplicationGone(t, d.l, "callwarden stopped") {
		t.FailNow()
	}
	d.serve(ctx)
}

// asteriskCalls is a row's calls on Asterisk, seen through an event stream of its own.
type asteriskCalls struct {
	l      *lab.TestLab
	events *lab.EventStream
}

func (c *asteriskCalls) agentCall(ctx context.Context, t *testing.T, queue, agent, callerID string) string {
	t.Helper()
	if queue == "" {
		return mustAnsweredAgentCall(ctx, t, c.l, c.events, agent, callerID).Second
	}
	waitMemberFree(ctx, t, c.l, queue, agent) // the queue reaches its first free member
	ch, ext := queueCall(ctx, t, c.l, c.events, queue, callerID)
	if ext != agent {
		t.Fatalf("the %s call went to agent %s, want %s (the first free member)", queue, ext, agent)
	}
	return ch.ID
}

func (c *asteriskCalls) dial(ctx context.Context, t *testing.T, supervisor, exten string) string {
	t.Helper()
	return mustOriginateSupervisor(ctx, t, c.l, supervisor, "cw-supervisors", exten).First
}

// dialAndPress uses the lab's DTMF handset, which presses the digit 2 s after the
// call is answered (cw-supervisor-dtmf).
func (c *asteriskCalls) dialAndPress(ctx context.Context, t *testing.T, supervisor, exten, digit string) string {
	t.Helper()
	return originatePhone(ctx, t, c.l, supervisor, "Local/"+supervisor+digit+"@cw-supervisor-dtmf/n", exten, nil).First
}

// wantEavesdropping waits until the requester is in one bridge with a snoop on the
// agent's channel, or (the check example) runs ChanSpy.
func (c *asteriskCalls) wantEavesdropping(ctx context.Context, t *testing.T, requester, agent string) {
	t.Helper()
	waitFor(ctx, t, "the supervisor hearing the agent", func() error {
		ch, err := c.l.ARI.Channel(ctx, requester)
		if err != nil {
			return err
		}
		if ch.Dialplan.AppName == "ChanSpy" { // the check example, after an allow
			return c.wantVar(ctx, requester, "CALLWARDEN_DECISION", "allow")
		}
		return c.bridgedWithSnoop(ctx, requester, agent)
	})
}

// wantVar is nil when channel's variable name is want.
func (c *asteriskCalls) wantVar(ctx context.Context, channel, name, want string) error {
	if got, err := c.l.ARI.ChannelVar(ctx, channel, name); err != nil || got != want {
		return fmt.Errorf("%s = %q (%v), want %q", name, got, err, want)
	}
	return nil
}

// bridgedWithSnoop is nil when a bridge holds requester and a snoop on agent.
func (c *asteriskCalls) bridgedWithSnoop(ctx context.Context, requester, agent string) error {
	chans, err := c.l.ARI.Channels(ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, ch := range chans {
		names[ch.ID] = ch.Name
	}
	bridges, err := c.l.ARI.Bridges(ctx)
	if err != nil {
		return err
	}
	for _, b := range bridges {
		for _, id := range b.Channels {
			if b.Has(requester) && strings.HasPrefix(names[id], "Snoop/"+agent+"-") {
				return nil
			}
		}
	}
	return fmt.Errorf("%s is in no bridge with a snoop on %s", requester, agent)
}

func (c *asteriskCalls) wantRefused(ctx context.Context, t *testing.T, requester string) {
	t.Helper()
	mustWait(ctx, t, c.events, "CALLWARDEN_DECISION=deny on the supervisor", func(e lab.Event) bool {
		return e.Type == "ChannelVarset" && e.ChannelID() == requester && e.Variable == "CALLWARDEN_DECISION" && e.Value == "deny"
	})
	c.wantHungUp(ctx, t, requester)
	for _, e := range c.events.Events() {
		if e.Type == "ChannelCreated" && e.Channel != nil && strings.HasPrefix(e.Channel.Name, "Snoop/") {
			t.Errorf("a snoop was created for a refused request: %s", e.Channel.Name)
		}
		if e.Type == "ChannelDialplan" && e.ChannelID() == requester && e.DialplanApp == "ChanSpy" {
			t.Error("a refused check reached ChanSpy")
		}
	}
}

func (c *asteriskCalls) wantHungUp(ctx context.Context, t *testing.T, requester string) {
	t.Helper()
	mustWait(ctx, t, c.events, "the supervisor hung up", lab.OnChannel("ChannelDestroyed", requester))
}

// rogueSpy dials the lab's unguarded ChanSpy (cw-unguarded, *999<agent>).
func (c *asteriskCalls) rogueSpy(ctx context.Context, t *testing.T, supervisor, agentExt, _ string) (string, time.Duration) {
	t.Helper()
	return c.unguarded(ctx, t, supervisor, "*999"+agentExt, "ChanSpy")
}

// unguarded has supervisor dial exten in cw-unguarded, which runs app without asking
// callwarden, and waits until the watchdog hangs the channel up; it returns the
// channel and the time from app's start to the hang-up (Asterisk's timestamps).
func (c *asteriskCalls) unguarded(ctx context.Context, t *testing.T, supervisor, exten, app string) (string, time.Duration) {
	t.Helper()
	ch := mustOriginateSupervisor(ctx, t, c.l, supervisor, "cw-unguarded", exten).First
	began := mustWait(ctx, t, c.events, "the rogue "+app, func(e lab.Event) bool {
		return e.Type == "ChannelDialplan" && e.ChannelID() == ch && e.DialplanApp == app
	})
	ended := mustWait(ctx, t, c.events, "the rogue "+app+" hung up", lab.OnChannel("ChannelHangupRequest", ch))
	return ch, eventTime(t, ended).Sub(eventTime(t, began))
}

func (c *asteriskCalls) wantUp(ctx context.Context, t *testing.T, channel string) {
	t.Helper()
	if _, err := c.l.ARI.Channel(ctx, channel); err != nil {
		t.Errorf("channel %s is gone: %v", channel, err)
	}
}

// rogueRecording dials the lab's unguarded MixMonitor (cw-unguarded, mixmonitor):
// Asterisk's watchdog hangs the channel up, since ARI cannot stop a MixMonitor.
func (c *asteriskCalls) rogueRecording(ctx context.Context, t *testing.T, supervisor string) (string, time.Duration) {
	t.Helper()
	return c.unguarded(ctx, t, supervisor, "mixmonitor", "MixMonitor")
}

func (c *asteriskCalls) hangUp(ctx context.Context, t *testing.T, channel string) {
	t.Helper()
	mustHangup(ctx, t, c.l, channel)
}

// --- FreeSWITCH --------------------------------------------------------------------

// freeswitchDriver runs `callwarden serve` with its freeswitch: section on the lab's
// FreeSWITCH.
type freeswitchDriver struct {
	top    *testing.T // the table's test: the daemon lives as long as it
	st     *redisstore.Store
	daemon *fsDaemon
}

func newFreeSWITCHDriver(ctx context.Context, t *testing.T, l *lab.TestLab, st *redisstore.Store) *freeswitchDriver {
	t.Helper()
	fs := suite.FreeSWITCH(t)
	return &freeswitchDriver{top: t, st: st, daemon: serveFreeSWITCHConfig(ctx, t, l, fs, "callwarden-freeswitch")}
}

func (d *freeswitchDriver) pbx() string              { return "freeswitch" }
func (d *freeswitchDriver) source() string           { return "freeswitch" }
func (d *freeswitchDriver) store() *redisstore.Store { return d.st }

// storeAudio writes the recording where the adapter's default recordings_dir is.
func (d *freeswitchDriver) storeAudio(ctx context.Context, t *testing.T, name string) {
	mustOK(t, d.daemon.fs.WriteFile(ctx, "/usr/local/freeswitch/recordings/"+name+".wav", recordingAudio))
}

func (d *freeswitchDriver) begin(_ context.Context, t *testing.T) pbxCalls {
	fs := suite.FreeSWITCH(t)
	t.Cleanup(func() {
		if t.Failed() {
			dumpFreeSWITCH(t, fs)
		}
	})
	return &freeswitchCalls{fs: fs, outbound: d.daemon.outbound}
}

// dumpFreeSWITCH logs what FreeSWITCH says of itself after a failed row: whether it
// still answers ESL, its channels, and the tail of its log.
func dumpFreeSWITCH(t *testing.T, fs *lab.TestFreeSWITCH) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, cmd := range []string{"status", "show channels"} {
		out, err := fs.API(ctx, cmd)
		t.Logf("freeswitch %q over ESL (%v):\n%s", cmd, err, out)
	}
	if out, err := fs.Exec(ctx, "fs_cli", "-x", "show calls"); err != nil {
		t.Logf("fs_cli in the container: %v", err)
	} else {
		t.Logf("fs_cli -x 'show calls':\n%s", out)
	}
	if logs, err := fs.Logs(ctx); err == nil {
		lines := strings.Split(logs, "\n")
		t.Logf("freeswitch log tail:\n%s", strings.Join(lines[max(0, len(lines)-80):], "\n"))
	}
}

func (d *freeswitchDriver) restartPBX(ctx context.Context, t *testing.T) {
	t.Helper()
	before, err := d.daemon.metric(ctx, "callwarden_freeswitch_reconnects_total")
	mustOK(t, err)
	mustOK(t, d.daemon.fs.Restart(ctx))
	waitFor(ctx, t, "callwarden reconnected to the restarted FreeSWITCH", func() error {
		if v, err := d.daemon.metric(ctx, "callwarden_freeswitch_reconnects_total"); err != nil || v == before {
			return fmt.Errorf("reconnections %s (%v), as before the restart", v, err)
		}
		return d.daemon.connected(ctx, 1)
	})
}

func (d *freeswitchDriver) restartCallwarden(ctx context.Context, t *testing.T) {
	t.Helper()
	d.daemon.stop(t)
	d.daemon.servedDaemon = d.daemon.servedDaemon.again(d.top)
	waitFor(ctx, t, "the restarted callwarden's inbound ESL connection up", func() error {
		select {
		case <-d.daemon.exited:
			return errors.New("callwarden exited")
		default:
		}
		return d.daemon.connected(ctx, 1)
	})
}

// freeswitchCalls is a row's calls on FreeSWITCH.
type freeswitchCalls struct {
	fs       *lab.TestFreeSWITCH
	outbound string
}

// agentCall waits until `show channels` lists the agent's leg: callwarden finds the
// target's call there, a second after it appears.
func (c *freeswitchCalls) agentCall(ctx context.Context, t *testing.T, queue, agent, callerID string) string {
	t.Helper()
	_, leg, err := c.fs.CustomerCall(ctx, queue, agent, callerID)
	mustOK(t, err)
	waitListed(ctx, t, c.fs, leg)
	return leg
}

func (c *freeswitchCalls) dial(ctx context.Context, t *testing.T, supervisor, exten string) string {
	t.Helper()
	sup, err := c.fs.SupervisorCall(ctx, supervisor, exten, c.outbound)
	if errors.Is(err, lab.ErrHungUp) {
		return sup.A // refused at once: the audit and wantRefused tell the rest
	}
	mustOK(t, err)
	return sup.A
}

// dialAndPress presses the digit with uuid_recv_dtmf on the supervisor's A leg, the
// leg that eavesdrops, once the eavesdrop runs.
func (c *freeswitchCalls) dialAndPress(ctx context.Context, t *testing.T, supervisor, exten, digit string) string {
	t.Helper()
	sup := c.dial(ctx, t, supervisor, exten)
	waitFor(ctx, t, "the supervisor eavesdropping", func() error {
		app, err := c.fs.Var(ctx, sup, "current_application")
		if err != nil || app != "eavesdrop" {
			return fmt.Errorf("supervisor runs %q (%v)", app, err)
		}
		return nil
	})
	_, err := c.fs.API(ctx, "uuid_recv_dtmf "+sup+" ~"+digit)
	mustOK(t, err)
	return sup
}

// wantEavesdropping also checks that FreeSWITCH's own DTMF switches and whisper
// variables are off: callwarden alone sets the mode (eavesdrop-command).
func (c *freeswitchCalls) wantEavesdropping(ctx context.Context, t *testing.T, requester, agent string) {
	t.Helper()
	wantEavesdropping(ctx, t, c.fs, requester, agent)
	d, err := c.fs.Dump(ctx, requester)
	mustOK(t, err)
	for _, v := range []string{"eavesdrop_enable_dtmf", "eavesdrop_whisper_aleg", "eavesdrop_whisper_bleg"} {
		if got, set := d["variable_"+v]; set && got != "false" {
			t.Errorf("%s = %q on the supervisor, want false or unset", v, got)
		}
	}
	if d["variable_eavesdrop_enable_dtmf"] != "false" {
		t.Errorf("eavesdrop_enable_dtmf = %q, want false: FreeSWITCH's own DTMF switches must be off", d["variable_eavesdrop_enable_dtmf"])
	}
}

func (c *freeswitchCalls) wantRefused(ctx context.Context, t *testing.T, requester string) {
	t.Helper()
	wantRefused(ctx, t, c.fs, requester)
}

func (c *freeswitchCalls) wantHungUp(ctx context.Context, t *testing.T, requester string) {
	t.Helper()
	mustOK(t, c.fs.WaitGone(ctx, requester))
}

// rogueSpy has the supervisor's phone run the lab's unguarded eavesdrop_<uuid>
// extension (context default): its A leg, loopback/supervisor_<ext>-a, eavesdrops.
// The originate runs aside: its answer may come after the watchdog hung it up.
func (c *freeswitchCalls) rogueSpy(ctx context.Context, t *testing.T, supervisor, _, agent string) (string, time.Duration) {
	t.Helper()
	ev := subscribeFS(ctx, t, c.fs)
	spy := c.fs.NewUUID("spy")
	c.fs.Track(spy)
	go func() {
		_, _ = c.fs.API(ctx, fmt.Sprintf("originate {origination_uuid=%s,origination_caller_id_number=%s}loopback/supervisor_%s/default eavesdrop_%s XML default",
			spy, supervisor, supervisor, agent))
	}()
	began := ev.wait(ctx, t, "the spy's eavesdrop", func(h map[string]string) bool {
		return isEvent("CHANNEL_EXECUTE", spy)(h) && h["Application"] == "eavesdrop" && h["Application-Data"] == agent
	})
	ended := ev.wait(ctx, t, "the spy's hangup", isEvent("CHANNEL_HANGUP", spy))
	return spy, ended.Sub(began)
}

func (c *freeswitchCalls) wantUp(ctx context.Context, t *testing.T, channel string) {
	t.Helper()
	if ok, err := c.fs.Exists(ctx, channel); err != nil || !ok {
		t.Errorf("channel %s is gone (%v)", channel, err)
	}
}

func (c *freeswitchCalls) hangUp(ctx context.Context, t *testing.T, channel string) {
	t.Helper()
	mustOK(t, c.fs.Kill(ctx, channel))
}

// rogueRecording has the supervisor's phone run the lab's unguarded record extension
// (record_session, context default): FreeSWITCH's watchdog stops the recording
// (uuid_record stop) and the call goes on.
func (c *freeswitchCalls) rogueRecording(ctx context.Context, t *testing.T, supervisor string) (string, time.Duration) {
	t.Helper()
	ev := subscribeFS(ctx, t, c.fs)
	call, err := c.fs.Originate(ctx, "recorder", "supervisor_"+supervisor, "record", "default",
		"origination_caller_id_number="+supervisor, "origination_callee_id_number="+supervisor)
	mustOK(t, err)
	began := ev.wait(ctx, t, "the rogue recording", isEvent("RECORD_START", call.A))
	ended := ev.wait(ctx, t, "the rogue recording stopped", isEvent("RECORD_STOP", call.A))
	c.wantUp(ctx, t, call.A)
	return call.A, ended.Sub(began)
}
