package integration

// The acceptance scenarios, one table run against both PBX adapters: Asterisk over
// ARI and FreeSWITCH over ESL, each with `callwarden serve` deciding from one policy
// (scenarioProfiles) in the lab's Redis. A row places the same calls through the
// same feature codes on each PBX (scenarios_drivers_test.go), asserts what the
// supervisor got (hearing the agent, or refused and hung up) and the audit records,
// then the records of the two PBXs are compared field by field on what must be the
// same: user, action, target, queue, decision, reason, outcome.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// scenarioProfiles is the one policy of the table. Every user has an identity on
// each PBX: its extension (Asterisk reads the caller id of the lab's Local phones)
// and, on FreeSWITCH, a supervisor's loopback channel (loopback/supervisor_<ext>-a)
// and an agent's presence id (<ext>@lab.callwarden, set by the lab's agent
// extension on the agent's leg only: both legs of a loopback call are named after
// the extension dialled, loopback/agent_<ext>-a being the customer's).
const scenarioProfiles = `version: 1
profiles:
  - name: team-a-supervisor
    grants:
      - actions: [monitor.listen, monitor.whisper, monitor.barge,
                  recording.start, recording.stop, recording.pause,
                  recording.resume, recording.playback]
        teams: [team-a]
  - name: team-a-listener
    grants:
      - actions: [monitor.listen, monitor.whisper]
        teams: [team-a]
  - name: team-b-supervisor
    grants:
      - actions: [monitor.listen, monitor.whisper, monitor.barge]
        teams: [team-b]
  - name: team-a-teacher
    grants:
      - actions: [recording.playback]
        teams: [team-a]
        recorded_within: 720h
users:
  - {id: alice, profile: team-a-supervisor, identities: ["1001", loopback/supervisor_1001]}
  - {id: carol, profile: team-b-supervisor, identities: ["1002", loopback/supervisor_1002]}
  - {id: erin, profile: team-a-listener, identities: ["1003", loopback/supervisor_1003]}
  - {id: bob, profile: team-a-teacher, identities: ["1004", loopback/supervisor_1004]}
  - {id: agent2001, teams: [team-a],
     identities: ["2001", Local/2001@cw-agent, 2001@lab.callwarden]}
  - {id: ceo, teams: [team-a], identities: ["2005", Local/2005@cw-agent, 2005@lab.callwarden]}
protected:
  users: [ceo]
`

// rogueRecordingEnds says how each PBX's watchdog ends a recording nobody allowed.
var rogueRecordingEnds = map[string]string{
	"asterisk":   "the watchdog hangs up the channel running MixMonitor (ARI cannot stop a MixMonitor)",
	"freeswitch": "the watchdog stops only the recording (uuid_record stop); the call goes on",
}

// auditView is what must be the same in the audit records of both PBXs; channel ids,
// asked_by, the PBX and the time are each PBX's own.
type auditView struct {
	User, Action, Target, Queue, Decision, Reason, Outcome string
}

func viewOf(r enforce.AuditRecord) auditView {
	return auditView{r.User, r.Action, r.Target, r.Queue, r.Decision, r.Reason, r.Outcome}
}

// fields names the view's fields, in order, for messages.
func (v auditView) fields() [][2]string {
	return [][2]string{{"user", v.User}, {"action", v.Action}, {"target", v.Target}, {"queue", v.Queue},
		{"decision", v.Decision}, {"reason", v.Reason}, {"outcome", v.Outcome}}
}

// allowed and denied are a decision's view, enforced its result's.
func allowed(user, action, target, queue string) auditView {
	return auditView{user, action, target, queue, "allow", "granted", ""}
}

func denied(user, action, target, queue, reason string) auditView {
	return auditView{user, action, target, queue, "deny", reason, ""}
}

func enforced(v auditView) auditView { v.Outcome = enforce.OutcomeEnforced; return v }

// scenario is a row of the table: run places its calls on one PBX, asserts what the
// supervisor got, and collects the audit records (row.audit); want is what they say.
type scenario struct {
	name string
	run  func(r *row)
	want []auditView
	// differs names the fields on which FreeSWITCH's records are known to differ,
	// and why: logged, not failed (docs/freeswitch.md lists them).
	differs map[string]string
}

// row is one scenario's run on one PBX.
type row struct {
	ctx  context.Context
	t    *testing.T
	d    pbxDriver
	c    pbxCalls
	recs []enforce.AuditRecord
}

// audit waits for n records of the requests callwarden answered on channel.
func (r *row) audit(channel string, n int) {
	r.t.Helper()
	r.recs = append(r.recs, auditFor(r.ctx, r.t, r.d, r.d.source(), channel, n)...)
}

// watchdogAudit waits for the watchdog's record on channel.
func (r *row) watchdogAudit(channel string) {
	r.t.Helper()
	r.recs = append(r.recs, auditFor(r.ctx, r.t, r.d, "watchdog", channel, 1)...)
}

// restarted runs restart, then takes a new handle on the PBX: a restart ends the
// connections the old one watched through.
func (r *row) restarted(restart func(context.Context, *testing.T)) {
	r.t.Helper()
	restart(r.ctx, r.t)
	r.c = r.d.begin(r.ctx, r.t)
}

// agent2001 puts a customer of sales on agent 2001's phone.
func (r *row) agent2001() string {
	r.t.Helper()
	return r.c.agentCall(r.ctx, r.t, "sales", "2001", "5550100")
}

// listens has supervisor dial exten and hear agent; n records follow.
func (r *row) listens(supervisor, exten, agent string, n int) string {
	r.t.Helper()
	sup := r.c.dial(r.ctx, r.t, supervisor, exten)
	r.c.wantEavesdropping(r.ctx, r.t, sup, agent)
	r.audit(sup, n)
	return sup
}

// leftAlone is a negative check: for 500 ms after an allowed check, the watchdog
// leaves the dialplan's own eavesdrop (ChanSpy) on agent running, and audits nothing.
func (r *row) leftAlone(requester, agent string) {
	r.t.Helper()
	time.Sleep(500 * time.Millisecond)
	r.c.wantEavesdropping(r.ctx, r.t, requester, agent)
	recs, err := r.d.store().ReadAudit(r.ctx, enforce.AuditFilter{Since: time.Now().Add(-time.Minute)})
	mustOK(r.t, err)
	for _, rec := range auditOn(recs, "watchdog", requester) {
		r.t.Errorf("the watchdog acted on an allowed check: %+v", rec)
	}
}

// withinBound fails the row when the watchdog ended what a bypass started more than
// watchdogBound after it began.
func (r *row) withinBound(what string, took time.Duration) {
	r.t.Helper()
	r.t.Logf("%s was ended %s after it began (the PBX's timestamps)", what, took)
	if took > watchdogBound {
		r.t.Errorf("%s was ended %s after it began, want <= %s", what, took, watchdogBound)
	}
}

// refused has supervisor dial exten and be refused; one record follows.
func (r *row) refused(supervisor, exten string) {
	r.t.Helper()
	sup := r.c.dial(r.ctx, r.t, supervisor, exten)
	r.c.wantRefused(r.ctx, r.t, sup)
	r.audit(sup, 1)
}

// done has supervisor dial exten, a record code that answers and hangs up; n
// records follow (a deny's, or an allow's and its result's).
func (r *row) done(supervisor, exten string, n int) {
	r.t.Helper()
	sup := r.c.dial(r.ctx, r.t, supervisor, exten)
	r.c.wantHungUp(r.ctx, r.t, sup)
	r.audit(sup, n)
}

// plays has supervisor dial exten, a playback code: once the allow is audited the
// requester's call stays up, playing (recordingAudio lasts 3 s), and the allow's
// result follows. Asterisk audits the result when the playback starts, FreeSWITCH
// when it ends (a file it cannot play is audited failed), so the call is checked
// up before the result is waited for: after it, FreeSWITCH may have hung up.
func (r *row) plays(supervisor, exten string) {
	r.t.Helper()
	sup := r.c.dial(r.ctx, r.t, supervisor, exten)
	auditFor(r.ctx, r.t, r.d, r.d.source(), sup, 1)
	r.c.wantUp(r.ctx, r.t, sup)
	r.audit(sup, 2)
}

var (
	aliceListensSales = allowed("alice", "monitor.listen", "agent2001", "sales")
	aliceChecksSales  = allowed("alice", "monitor.listen", "agent2001", "sales")
)

var scenarios = []scenario{
	{
		name: "listen allowed, outlives its decision, ends with the agent's call",
		run: func(r *row) {
			agent := r.agent2001()
			sup := r.listens("1001", "*2222001", agent, 2)
			time.Sleep(3 * time.Second) // beyond the first decision's deadlines
			r.c.wantEavesdropping(r.ctx, r.t, sup, agent)
			r.c.hangUp(r.ctx, r.t, agent)
			r.c.wantHungUp(r.ctx, r.t, sup)
		},
		want: []auditView{aliceListensSales, enforced(aliceListensSales)},
	},
	{
		name: "whisper allowed",
		run:  func(r *row) { r.listens("1003", "*2232001", r.agent2001(), 2) },
		want: []auditView{allowed("erin", "monitor.whisper", "agent2001", "sales"),
			enforced(allowed("erin", "monitor.whisper", "agent2001", "sales"))},
	},
	{
		name: "barge refused without the right",
		run:  func(r *row) { r.agent2001(); r.refused("1003", "*2242001") },
		want: []auditView{denied("erin", "monitor.barge", "agent2001", "sales", "action_not_granted")},
	},
	{
		name: "supervisor out of scope refused",
		run:  func(r *row) { r.agent2001(); r.refused("1002", "*2222001") },
		want: []auditView{denied("carol", "monitor.listen", "agent2001", "sales", "out_of_scope")},
	},
	{
		name: "protected target refused",
		run: func(r *row) {
			r.c.agentCall(r.ctx, r.t, "", "2005", "5550101")
			r.refused("1001", "*2222005")
		},
		want: []auditView{denied("alice", "monitor.listen", "ceo", "", "protected_target")},
	},
	{
		name: "unknown caller refused",
		run:  func(r *row) { r.agent2001(); r.refused("1009", "*2222001") },
		want: []auditView{denied("", "monitor.listen", "agent2001", "sales", "unknown_user")},
	},
	{
		name: "unknown target refused",
		run:  func(r *row) { r.refused("1001", "*2222009") },
		want: []auditView{denied("alice", "monitor.listen", "2009", "", "unknown_target")},
	},
	{
		name: "check allowed",
		run: func(r *row) {
			agent := r.agent2001()
			r.leftAlone(r.listens("1001", "*82001", agent, 1), agent)
		},
		want: []auditView{aliceChecksSales},
	},
	{
		name: "check denied",
		run:  func(r *row) { r.agent2001(); r.refused("1002", "*82001") },
		want: []auditView{denied("carol", "monitor.listen", "agent2001", "sales", "out_of_scope")},
	},
	{
		name: "watchdog hangs up a rogue spy started by the dialplan",
		run: func(r *row) {
			agent := r.agent2001()
			spy, took := r.c.rogueSpy(r.ctx, r.t, "1002", "2001", agent)
			r.withinBound("the rogue spy", took)
			r.watchdogAudit(spy)
			r.c.wantUp(r.ctx, r.t, agent)
		},
		want: []auditView{denied("carol", "monitor.listen", "", "", "no_allow_decision")},
	},
	{
		name: "watchdog ends a rogue recording started by the dialplan",
		run: func(r *row) {
			ch, took := r.c.rogueRecording(r.ctx, r.t, "1002")
			r.t.Logf("%s: %s", r.d.pbx(), rogueRecordingEnds[r.d.pbx()])
			r.withinBound("the rogue recording", took)
			r.watchdogAudit(ch)
		},
		want: []auditView{denied("carol", "recording.start", "", "", "no_allow_decision")},
	},
	{
		name: "restart of the PBX then the next request decided",
		run: func(r *row) {
			r.restarted(r.d.restartPBX)
			r.listens("1001", "*2222001", r.agent2001(), 2)
		},
		want: []auditView{aliceListensSales, enforced(aliceListensSales)},
	},
	{
		name: "restart of callwarden then the next request decided",
		run: func(r *row) {
			r.restarted(r.d.restartCallwarden)
			r.listens("1001", "*2222001", r.agent2001(), 2)
		},
		want: []auditView{aliceListensSales, enforced(aliceListensSales)},
	},
	{
		name: "DTMF 6 switches a listen to barge when granted",
		run: func(r *row) {
			agent := r.agent2001()
			sup := r.c.dialAndPress(r.ctx, r.t, "1001", "*2222001", "6")
			r.audit(sup, 4)
			r.c.wantEavesdropping(r.ctx, r.t, sup, agent)
		},
		want: []auditView{aliceListensSales, enforced(aliceListensSales),
			allowed("alice", "monitor.barge", "agent2001", "sales"), enforced(allowed("alice", "monitor.barge", "agent2001", "sales"))},
	},
	{
		name: "DTMF 6 refused keeps the listen",
		run: func(r *row) {
			agent := r.agent2001()
			sup := r.c.dialAndPress(r.ctx, r.t, "1003", "*2222001", "6")
			r.audit(sup, 3)
			time.Sleep(500 * time.Millisecond) // a negative check: the session goes on
			r.c.wantEavesdropping(r.ctx, r.t, sup, agent)
		},
		want: []auditView{allowed("erin", "monitor.listen", "agent2001", "sales"), enforced(allowed("erin", "monitor.listen", "agent2001", "sales")),
			denied("erin", "monitor.barge", "agent2001", "sales", "action_not_granted")},
	},
	{
		name: "recording start pause resume and stop",
		run:  recordingLifecycle,
		want: []auditView{
			denied("erin", "recording.start", "agent2001", "sales", "action_not_granted"),
			allowed("alice", "recording.start", "agent2001", "sales"), enforced(allowed("alice", "recording.start", "agent2001", "sales")),
			allowed("alice", "recording.pause", "agent2001", "sales"), enforced(allowed("alice", "recording.pause", "agent2001", "sales")),
			allowed("alice", "recording.resume", "agent2001", "sales"), enforced(allowed("alice", "recording.resume", "agent2001", "sales")),
			allowed("alice", "recording.stop", "agent2001", "sales"), enforced(allowed("alice", "recording.stop", "agent2001", "sales")),
		},
	},
	{
		name: "playback within recorded_within",
		run:  func(r *row) { r.plays("1004", "*227"+r.storedRecording(time.Hour)) },
		want: []auditView{allowed("bob", "recording.playback", "agent2001", "sales"),
			enforced(allowed("bob", "recording.playback", "agent2001", "sales"))},
	},
	{
		name: "playback of a recording too old",
		run:  func(r *row) { r.refused("1004", "*227"+r.storedRecording(800*time.Hour)) },
		want: []auditView{denied("bob", "recording.playback", "agent2001", "sales", "recording_too_old")},
	},
}

// recordingLifecycle: erin may not start a recording; alice starts, pauses,
// resumes and stops it, each step seen in the recording store.
func recordingLifecycle(r *row) {
	r.agent2001()
	st := r.d.store()
	r.done("1003", "*2252001", 1)
	if _, err := st.ActiveRecording(r.ctx, "agent2001"); !errors.Is(err, enforce.ErrNotFound) {
		r.t.Fatalf("a refused start left an active recording (%v)", err)
	}
	r.done("1001", "*2252001", 2)
	rec, err := st.ActiveRecording(r.ctx, "agent2001")
	mustOK(r.t, err)
	if rec.StartedBy != "alice" || rec.Queue != "sales" || rec.Caller != "5550100" {
		r.t.Errorf("recording metadata %+v, want started by alice on sales, caller 5550100", rec)
	}
	r.done("1001", "*2282001", 2) // pause
	r.done("1001", "*2282001", 2) // resume
	r.done("1001", "*2292001", 2)
	// The resume's result says how long the pause lasted, the stop's how long the
	// recording did.
	for _, i := range []int{6, 8} {
		if res := r.recs[i]; res.Duration <= 0 {
			r.t.Errorf("%s result record %+v: want its duration", res.Action, res)
		}
	}
	got, err := st.Recording(r.ctx, rec.ID)
	mustOK(r.t, err)
	if len(got.Pauses) != 1 || got.Pauses[0].By != "alice" || got.Pauses[0].ResumedBy != "alice" {
		r.t.Errorf("pauses %+v, want one by alice resumed by alice", got.Pauses)
	}
	// The PBX reports the end of a recording a user stops too: the metadata must
	// still name the user (pbx/session Recordings.Change forgets the recording as
	// live before stopping it).
	if got.State != enforce.RecordingStopped || got.StoppedBy != "alice" {
		r.t.Errorf("stored recording %+v, want stopped by alice", got)
	}
}

// storedRecording stores a stopped recording of agent2001 on sales made age ago on
// the row's PBX (its metadata, and audio where the PBX plays it from),
// and returns its id.
func (r *row) storedRecording(age time.Duration) string {
	r.t.Helper()
	id := fmt.Sprintf("%012d", time.Now().UnixNano()%1e12) // 12 digits, as session.NewRecordingID
	r.d.storeAudio(r.ctx, r.t, "cw-scenario-"+id)
	mustOK(r.t, r.d.store().SaveRecording(r.ctx, enforce.Recording{
		ID: id, Name: "cw-scenario-" + id, PBX: r.d.pbx(), Target: "agent2001", Queue: "sales", Caller: "5550100",
		StartedBy: "alice", StartedAt: time.Now().Add(-age), StoppedBy: "alice", StoppedAt: time.Now().Add(-age / 2),
		State: enforce.RecordingStopped,
	}))
	return id
}

// TestScenariosOnBothPBXs runs every scenario on Asterisk, then on FreeSWITCH, then
// compares their audit records.
func TestScenariosOnBothPBXs(t *testing.T) {
	l := suite.Lab(t)
	ctx := contextFor(t, 5*time.Minute)
	st := storeScenarioPolicy(ctx, t, l)
	drivers := []pbxDriver{newAsteriskDriver(ctx, t, l, st), newFreeSWITCHDriver(ctx, t, l, st)}
	started := time.Now()
	for _, sc := range scenarios {
		got := map[string][]auditView{}
		for _, d := range drivers {
			t.Run(d.pbx()+"/"+sc.name, func(t *testing.T) {
				r := &row{ctx: contextFor(t, time.Minute), t: t, d: d}
				r.c = d.begin(r.ctx, t)
				sc.run(r)
				views := make([]auditView, len(r.recs))
				for i, rec := range r.recs {
					views[i] = viewOf(rec)
				}
				compareViews(t, d.pbx()+" vs the row", sc.want, views, differsOn(d, sc))
				got[d.pbx()] = views
			})
		}
		if a, f := got["asterisk"], got["freeswitch"]; a != nil && f != nil {
			t.Run("same audit/"+sc.name, func(t *testing.T) {
				compareViews(t, "freeswitch vs asterisk", a, f, sc.differs)
			})
		}
	}
	t.Logf("the table took %s", time.Since(started).Round(time.Second))
}

// differsOn is the row's known differences when d is FreeSWITCH, else none.
func differsOn(d pbxDriver, sc scenario) map[string]string {
	if d.pbx() == "freeswitch" {
		return sc.differs
	}
	return nil
}

// compareViews fails the test for every field of got that is not want's, except
// those of differs, which are logged with the reason.
func compareViews(t *testing.T, what string, want, got []auditView, differs map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d audit records %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range want {
		w, g := want[i].fields(), got[i].fields()
		for j := range w {
			switch name := w[j][0]; {
			case w[j][1] == g[j][1]:
			case differs[name] != "":
				t.Logf("%s: record %d: %s %q, not %q: %s", what, i+1, name, g[j][1], w[j][1], differs[name])
			default:
				t.Errorf("%s: record %d: %s %q, want %q (record %+v)", what, i+1, name, g[j][1], w[j][1], got[i])
			}
		}
	}
}
