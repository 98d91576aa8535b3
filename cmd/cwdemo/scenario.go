package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// actor is a person of the scenario: a user of the profiles files and the
// lab phone they call from.
type actor struct {
	user, phone, profile, scope string
}

func (a actor) String() string {
	return fmt.Sprintf("%s (%s, phone %s, %s)", a.user, a.profile, a.phone, a.scope)
}

// The cast, from deploy/examples/profiles.yaml and deploy/demo/teachers.yaml.
var (
	alice = actor{"alice", "1001", "supervisor-with-recording", "queues sales+support"}
	carol = actor{"carol", "1002", "supervisor-without-recording", "queue support only"}
	tina  = actor{"tina", "1005", "demo-teacher", "sales, period 2026-01-01..2036-01-01"}
	tom   = actor{"tom", "1006", "demo-teacher", "sales, period ended 2026-07-01"}
)

// The monitored call: a customer in the sales queue, answered by agent 2001
// (the first member of sales, strategy linear).
const (
	queue      = "sales"
	agentExt   = "2001"
	agentUser  = "agent2001"
	customerID = `"Customer" <0612345678>`
)

// agentCall is the customer's call once an agent answered it.
type agentCall struct {
	customer lab.LocalCall // First: the customer's phone; Second: in Queue()
	member   lab.Channel   // Local/2001@cw-agent-...;1, bridged with customer.Second
	bridge   lab.Bridge    // the queue's bridge
	// queued is the name of customer.Second, the channel in Queue().
	queued string
	// roles names the call's channels (by id) for the printout.
	roles map[string]string
}

// scenario plays the steps in order and returns their results; it stops
// early only when ctx ends.
func (d *demo) scenario(ctx context.Context) []*stepResult {
	var results []*stepResult
	add := func(r *stepResult) bool {
		if ctx.Err() != nil {
			return false
		}
		r.N = len(results) + 1
		r.Write(d.out)
		results = append(results, r)
		return true
	}

	d.printf("\n== a customer calls the %s queue; agent %s answers\n", queue, agentExt)
	call, err := d.placeCustomerCall(ctx)
	if err != nil {
		r := &stepResult{Title: "the customer's call is answered by agent " + agentExt, Want: "a bridge between the customer and agent " + agentExt}
		r.failErr("no answered call to monitor", err)
		add(r)
		return results
	}
	d.printf("   PBX: bridge %s holds %s (customer) and %s (agent %s)\n",
		call.bridge.ID, call.queued, call.member.Name, agentExt)

	sess, r := d.listen(ctx, call)
	if !add(r) {
		return results
	}
	sess, r = d.switchMode(ctx, call, sess, "5", "whisper")
	if !add(r) {
		return results
	}
	sess, r = d.switchMode(ctx, call, sess, "6", "barge")
	d.hangUpSession(ctx, r, sess)
	if !add(r) {
		return results
	}
	if !add(d.refused(ctx)) {
		return results
	}
	rec, r := d.recordStart(ctx, call)
	if !add(r) {
		return results
	}
	if !add(d.recordStop(ctx, rec)) {
		return results
	}
	if !add(d.playback(ctx, tina, rec, true)) {
		return results
	}
	if !add(d.playback(ctx, tom, rec, false)) {
		return results
	}
	if !add(d.rogueChanSpy(ctx)) {
		return results
	}
	add(d.auditVerify(ctx))
	return results
}

// placeCustomerCall puts a customer in the sales queue and waits until an
// agent's channel is bridged with it.
func (d *demo) placeCustomerCall(ctx context.Context) (agentCall, error) {
	id := d.newID("customer")
	c := agentCall{customer: lab.LocalCall{First: id, Second: id + "-queue"}}
	d.track(c.customer.First, c.customer.Second)
	if _, err := d.lab.ARI.Originate(ctx, lab.OriginateParams{
		Endpoint:       "Local/" + queue + "@cw-customer/n",
		Context:        "cw-customer-audio",
		Extension:      "play", // the customer talks (a prompt in a loop): the recording is not silent
		Priority:       1,
		CallerID:       customerID,
		ChannelID:      c.customer.First,
		OtherChannelID: c.customer.Second,
	}); err != nil {
		return c, err
	}
	prefix := "Local/" + agentExt + "@cw-agent-"
	err := poll(ctx, 2*d.opts.wait, func(ctx context.Context) (bool, error) {
		bridges, err := d.lab.ARI.Bridges(ctx)
		if err != nil {
			return false, err
		}
		for _, b := range bridges {
			if !b.Has(c.customer.Second) {
				continue
			}
			for _, id := range b.Channels {
				ch, err := d.lab.ARI.Channel(ctx, id)
				if err == nil && strings.HasPrefix(ch.Name, prefix) && strings.HasSuffix(ch.Name, ";1") {
					c.member, c.bridge = ch, b
					return true, nil
				}
			}
		}
		return false, nil
	})
	if errors.Is(err, errPollTimeout) {
		return c, fmt.Errorf("agent %s never answered the customer in queue %s within %s", agentExt, queue, 2*d.opts.wait)
	}
	if err != nil {
		return c, err
	}
	c.roles = map[string]string{
		c.customer.First:  "the customer's phone",
		c.customer.Second: "the customer's side of the call",
		c.member.ID:       "agent " + agentExt + "'s side of the call",
	}
	return c, d.nameChannels(ctx, &c)
}

// nameChannels names the customer's queued channel and adds the agent's
// own phone (the ;2 half of its Local channel) to the call's roles.
func (d *demo) nameChannels(ctx context.Context, c *agentCall) error {
	chans, err := d.lab.ARI.Channels(ctx)
	if err != nil {
		return err
	}
	phone := strings.TrimSuffix(c.member.Name, ";1") + ";2"
	for _, ch := range chans {
		switch {
		case ch.Name == phone:
			c.roles[ch.ID] = "agent " + agentExt + "'s phone"
		case ch.ID == c.customer.Second:
			c.queued = ch.Name
		}
	}
	return nil
}

// supervisorLine is a supervisor's call: First dials the feature code;
// Second is the handset, in the observer's Stasis application once
// answered, where the demo presses keys.
type supervisorLine struct {
	who actor
	lab.LocalCall
	name string // First's channel name
}

// dial makes who dial exten from their phone: Local/<phone>@cw-demo-handset/n,
// the ;1 half running exten in context cw-supervisors (callwarden-features),
// with who's caller id, as a desk phone would.
func (d *demo) dial(ctx context.Context, who actor, exten string) (supervisorLine, error) {
	id := d.newID(who.user)
	line := supervisorLine{who: who, LocalCall: lab.LocalCall{First: id, Second: id + "-handset"}}
	d.track(line.First, line.Second)
	ch, err := d.lab.ARI.Originate(ctx, lab.OriginateParams{
		Endpoint:       "Local/" + who.phone + "@" + handsetContext + "/n",
		Context:        "cw-supervisors",
		Extension:      exten,
		Priority:       1,
		CallerID:       fmt.Sprintf("%q <%s>", who.user, who.phone),
		ChannelID:      line.First,
		OtherChannelID: line.Second,
		Variables:      map[string]string{"CALLWARDEN_SUPERVISOR": who.phone},
	})
	if err != nil {
		return line, fmt.Errorf("originate %s's line: %w", who.user, err)
	}
	line.name = ch.Name
	return line, nil
}

// monitorSession is a supervisor bridged with a snoop.
type monitorSession struct {
	line supervisorLine
	leg  monitorLeg
	ok   bool
}

// listen: alice dials *2222001 and must be bridged with a snoop on agent
// 2001's call.
func (d *demo) listen(ctx context.Context, call agentCall) (monitorSession, *stepResult) {
	r := &stepResult{
		Title: fmt.Sprintf("%s dials *222%s: listen to agent %s's call on %s", alice, agentExt, agentExt, queue),
		Want:  "alice is bridged with a snoop channel on the agent's call; audit: allow monitor.listen",
	}
	since := time.Now()
	line, err := d.dial(ctx, alice, "*222"+agentExt)
	if err != nil {
		r.failErr("originate", err)
		return monitorSession{}, r
	}
	s := monitorSession{line: line}
	leg, err := d.pbx.waitMonitorLeg(ctx, d.opts.wait, line.First, nil)
	d.describeLine(r, line)
	if err != nil {
		r.failErr("not bridged in", err)
	} else {
		s.leg, s.ok = leg, true
		d.describeLeg(r, call, line, leg)
	}
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "monitor.listen", Decision: "allow"})
	return s, r
}

// switchMode: the supervisor presses digit; the session must switch to mode
// (decided again, audited) and stay bridged with a snoop on the call.
func (d *demo) switchMode(ctx context.Context, call agentCall, s monitorSession, digit, mode string) (monitorSession, *stepResult) {
	r := &stepResult{
		Title: fmt.Sprintf("alice presses %s on her phone: switch to %s", digit, mode),
		Want:  fmt.Sprintf("the switch is decided again: audit allow monitor.%s; alice stays bridged with a snoop on the agent's call", mode),
	}
	if !s.ok {
		r.fail("no monitor session to switch (previous step failed)")
		return s, r
	}
	since := time.Now()
	if err := d.pbx.sendDTMF(ctx, s.line.Second, digit); err != nil {
		r.failErr("press "+digit, err)
		return s, r
	}
	if _, err := d.pbx.wait(ctx, d.opts.wait, "DTMF "+digit+" on alice's line", func(ev lab.Event) bool {
		return ev.Type == "ChannelDtmfReceived" && ev.ChannelID() == s.line.First && detail(ev).Digit == digit
	}); err != nil {
		r.failErr("alice's line never received DTMF "+digit, err)
		return s, r
	}
	r.pbx("%s received DTMF %s (ChannelDtmfReceived)", s.line.name, digit)
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "monitor." + mode, Decision: "allow"})

	// A snoop's directions cannot change: a switch shows as a new snoop
	// replacing the old one. Wait a little for it; an adapter that keeps
	// the snoop (muting instead) is reported as such.
	leg, err := d.pbx.waitMonitorLeg(ctx, min(d.opts.wait, 3*time.Second), s.line.First, map[string]bool{s.leg.Snoop.ID: true})
	if err == nil {
		d.describeLeg(r, call, s.line, leg)
		if _, err := d.pbx.waitGone(ctx, d.opts.wait, s.leg.Snoop.ID); err == nil {
			r.pbx("the previous snoop %s is gone", s.leg.Snoop.Name)
		} else {
			r.fail("the previous snoop %s is still up beside the new one", s.leg.Snoop.Name)
		}
		s.leg = leg
		return s, r
	}
	leg, ok, err := d.pbx.findMonitorLeg(ctx, s.line.First, nil)
	switch {
	case err != nil:
		r.failErr("read bridges", err)
	case !ok:
		r.fail("alice is no longer bridged with a snoop after the switch (%s)", d.pbx.hangupSummary(s.line.First))
		s.ok = false
	default:
		r.pbx("alice stays bridged with the same snoop %s (ARI does not show a snoop's directions)", leg.Snoop.Name)
		s.leg = leg
	}
	return s, r
}

// hangUpSession: alice hangs up; her snoop must go with her.
func (d *demo) hangUpSession(ctx context.Context, r *stepResult, s monitorSession) {
	if s.line.First == "" {
		return
	}
	if err := d.pbx.hangup(ctx, s.line.Second); err != nil {
		r.failErr("hang up alice's phone", err)
		return
	}
	if _, err := d.pbx.waitGone(ctx, d.opts.wait, s.line.First); err != nil {
		r.failErr("alice's line", err)
		return
	}
	if !s.ok {
		return
	}
	if _, err := d.pbx.waitGone(ctx, d.opts.wait, s.leg.Snoop.ID); err != nil {
		r.fail("alice hung up but the snoop %s is still on the agent's call", s.leg.Snoop.Name)
		return
	}
	r.pbx("alice hangs up: the snoop %s is destroyed with her line", s.leg.Snoop.Name)
}

// refused: carol supervises support only; agent 2001 is on a sales call.
// She must be hung up, never bridged, with the reason audited.
func (d *demo) refused(ctx context.Context) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("%s dials *222%s: listen to agent %s's %s call", carol, agentExt, agentExt, queue),
		Want:  "carol is hung up without being bridged; audit: deny monitor.listen, reason out_of_scope",
	}
	since := time.Now()
	mark := len(d.pbx.events.Events())
	line, err := d.dial(ctx, carol, "*222"+agentExt)
	if err != nil {
		r.failErr("originate", err)
		return r
	}
	_, err = d.pbx.waitGone(ctx, d.opts.wait, line.First)
	if err != nil {
		r.fail("carol's line is still up after %s", d.opts.wait)
		if leg, ok, _ := d.pbx.findMonitorLeg(ctx, line.First, nil); ok {
			r.fail("carol is bridged with %s", leg.Snoop.Name)
		}
	}
	if len(d.pbx.eventsOn(line.First, "ChannelEnteredBridge")) == 0 {
		r.pbx("carol's line never entered a bridge")
	} else {
		r.fail("carol's line entered a bridge")
	}
	d.expectNoSnoopSince(r, mark, "while carol was on the line")
	d.describeLine(r, line)
	if err != nil {
		_ = d.pbx.hangup(ctx, line.Second) // do not leave it to the next steps
	}
	d.expectAudit(ctx, r, since, auditWant{User: carol.user, Action: "monitor.listen", Decision: "deny", Reason: "out_of_scope"})
	return r
}

// recordFor is how long the demo lets the agent's call be recorded: long
// enough for the playback step to play something a person would hear.
const recordFor = 3 * time.Second

// recordStart: alice dials *2252001; a live recording of the agent's call
// must exist in Asterisk, and go on once alice's line is released.
func (d *demo) recordStart(ctx context.Context, call agentCall) (enforce.Recording, *stepResult) {
	r := &stepResult{
		Title: fmt.Sprintf("alice dials *225%s: record agent %s's call", agentExt, agentExt),
		Want:  "Asterisk records the agent's call (a live recording) and goes on after alice's line is released; audit: allow recording.start",
	}
	since := time.Now()
	line, err := d.dial(ctx, alice, "*225"+agentExt)
	if err != nil {
		r.failErr("originate", err)
		return enforce.Recording{}, r
	}
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "recording.start", Decision: "allow"})
	rec, err := d.waitRecording(ctx, since)
	if err != nil {
		r.failErr("no recording stored by callwarden", err)
	} else {
		d.describeLiveRecording(ctx, r, call, rec)
	}
	d.release(ctx, r, line)
	if rec.Name != "" {
		if live, err := d.pbx.liveRecording(ctx, rec.Name); err == nil {
			r.pbx("alice's line is gone and the recording goes on (state %s)", live.State)
		} else {
			r.fail("the recording stopped with alice's line: %s", oneLine(err.Error()))
		}
	}
	return rec, r
}

// release waits for callwarden to release a supervisor's line (a short
// tone, then the dialplan's Hangup), hangs it up if it is still there, and
// describes how it ended.
func (d *demo) release(ctx context.Context, r *stepResult, line supervisorLine) {
	if _, err := d.pbx.waitGone(ctx, d.opts.wait, line.First); err != nil {
		r.fail("%s's line was not released within %s", line.who.user, d.opts.wait)
		_ = d.pbx.hangup(ctx, line.Second)
		_, _ = d.pbx.waitGone(ctx, d.opts.wait, line.First)
	}
	d.describeLine(r, line)
}

// recordStop: a few seconds later alice dials *2292001
// (Stasis(callwarden,record,stop,2001)); the live recording must end and be
// stored in Asterisk.
func (d *demo) recordStop(ctx context.Context, rec enforce.Recording) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("%s later, alice dials *229%s: stop the recording", recordFor, agentExt),
		Want:  "the live recording ends and Asterisk lists it as stored; audit: allow recording.stop",
	}
	if rec.Name == "" {
		r.fail("no recording to stop (previous step failed)")
		return r
	}
	select {
	case <-time.After(time.Until(rec.StartedAt.Add(recordFor))):
	case <-ctx.Done():
		return r
	}
	since := time.Now()
	line, err := d.dial(ctx, alice, "*229"+agentExt)
	if err != nil {
		r.failErr("originate", err)
		return r
	}
	d.expectAudit(ctx, r, since, auditWant{User: alice.user, Action: "recording.stop", Decision: "allow"})
	stored, err := d.waitStored(ctx, rec.Name)
	if err != nil {
		r.failErr("recording "+rec.Name, err)
	} else {
		r.pbx("live recording %s ended; Asterisk lists stored recording %s (%s)", rec.Name, stored.Name, stored.Format)
	}
	isRec := func(typ string) func(lab.Event) bool {
		return func(ev lab.Event) bool {
			d := detail(ev)
			return ev.Type == typ && d.Recording != nil && d.Recording.Name == rec.Name
		}
	}
	started, okStart := d.pbx.find(isRec("RecordingStarted"))
	finished, okEnd := d.pbx.find(isRec("RecordingFinished"))
	if okStart && okEnd {
		r.pbx("RecordingStarted -> RecordingFinished: %s of the call recorded", eventGap(started, finished))
	}
	d.release(ctx, r, line)
	return r
}

// playback: a teacher dials *227<id>. Inside its period Asterisk must play
// the whole recording to the teacher's line; outside it the line is hung up
// without hearing it.
func (d *demo) playback(ctx context.Context, who actor, rec enforce.Recording, allowed bool) *stepResult {
	r := &stepResult{Title: fmt.Sprintf("%s dials *227<id>: play back the recording", who)}
	want := auditWant{User: who.user, Action: "recording.playback", Decision: "allow"}
	if allowed {
		r.Want = "Asterisk plays the recording to the teacher's line, to the end; audit: allow recording.playback"
	} else {
		r.Want = "the line is hung up without hearing the recording; audit: deny recording.playback, reason outside_window"
		want.Decision, want.Reason = "deny", "outside_window"
	}
	if rec.ID == "" {
		r.fail("no recording to play (recording steps failed)")
		return r
	}
	r.Title = fmt.Sprintf("%s dials *227%s: play back the recording", who, rec.ID)
	since := time.Now()
	line, err := d.dial(ctx, who, "*227"+rec.ID)
	if err != nil {
		r.failErr("originate", err)
		return r
	}
	media := "recording:" + rec.Name
	playback := func(typ string) func(lab.Event) bool {
		return func(ev lab.Event) bool {
			d := detail(ev)
			return ev.Type == typ && d.Playback != nil &&
				d.Playback.TargetURI == "channel:"+line.First && d.Playback.MediaURI == media
		}
	}
	if allowed {
		start, err := d.pbx.wait(ctx, d.opts.wait, "PlaybackStarted "+media, playback("PlaybackStarted"))
		if err != nil {
			r.failErr("Asterisk never played "+media+" to "+who.user, err)
		} else if end, err := d.pbx.wait(ctx, recordFor+d.opts.wait, "PlaybackFinished "+media, playback("PlaybackFinished")); err != nil {
			r.failErr("the playback never finished", err)
		} else if st := detail(end).Playback.State; st != "done" {
			r.fail("Asterisk could not play %s: PlaybackFinished state %s", media, st)
		} else {
			r.pbx("Asterisk played %s to %s, to the end (%s, PlaybackFinished state done)", media, line.name, eventGap(start, end))
		}
	} else if _, err := d.pbx.waitGone(ctx, d.opts.wait, line.First); err != nil {
		r.fail("%s's line is still up after %s", who.user, d.opts.wait)
		defer func() { _ = d.pbx.hangup(ctx, line.Second) }() // do not leave it to the next steps
	}
	if _, played := d.pbx.find(playback("PlaybackStarted")); played && !allowed {
		r.fail("Asterisk played %s to %s", media, who.user)
	}
	d.expectAudit(ctx, r, since, want)
	if allowed {
		d.release(ctx, r, line)
	} else {
		d.describeLine(r, line)
	}
	return r
}

// rogueChanSpy: someone dials an unguarded ChanSpy straight from the
// dialplan (no callwarden in the path); the watchdog must hang it up.
func (d *demo) rogueChanSpy(ctx context.Context) *stepResult {
	r := &stepResult{
		Title: fmt.Sprintf("a rogue dialplan runs ChanSpy on agent %s without asking callwarden (context cw-unguarded, *999%s)", agentExt, agentExt),
		Want:  "callwarden's watchdog hangs the ChanSpy channel up; audit: deny from the watchdog",
	}
	since := time.Now()
	id := d.newID("rogue")
	line := lab.LocalCall{First: id, Second: id + "-handset"}
	d.track(line.First, line.Second)
	if _, err := d.lab.ARI.Originate(ctx, lab.OriginateParams{
		Endpoint:       "Local/" + carol.phone + "@cw-supervisor-line/n",
		Context:        "cw-unguarded",
		Extension:      "*999" + agentExt,
		Priority:       1,
		CallerID:       fmt.Sprintf("%q <%s>", carol.user, carol.phone),
		ChannelID:      line.First,
		OtherChannelID: line.Second,
	}); err != nil {
		r.failErr("originate", err)
		return r
	}
	spy, err := d.pbx.wait(ctx, d.opts.wait, "ChanSpy on the rogue line", func(ev lab.Event) bool {
		return ev.Type == "ChannelDialplan" && ev.ChannelID() == line.First && ev.DialplanApp == "ChanSpy"
	})
	if err != nil {
		r.failErr("the rogue line never started ChanSpy", err)
		return r
	}
	r.pbx("%s runs ChanSpy(%s) from context cw-unguarded", spy.Channel.Name, spy.DialplanAppData)
	gone, err := d.pbx.waitGone(ctx, d.opts.wait, line.First)
	if err != nil {
		r.fail("the rogue ChanSpy is still running after %s", d.opts.wait)
	} else {
		r.pbx("the ChanSpy line %s, %s after ChanSpy started", d.pbx.hangupSummary(line.First), eventGap(spy, gone))
	}
	d.expectAudit(ctx, r, since, auditWant{Source: "watchdog", Decision: "deny"})
	return r
}

// auditVerify: the audit trail's hash chain must verify.
func (d *demo) auditVerify(ctx context.Context) *stepResult {
	r := &stepResult{
		Title: "the auditor checks the trail: callwarden audit verify",
		Want:  "the hash chain of the audit stream is intact",
	}
	out, err := runCLI(ctx, d.opts.callwarden, "audit", "verify", "--redis-addr", d.lab.RedisAddr)
	if err != nil {
		r.failErr("audit verify", err)
		return r
	}
	r.Audit = append(r.Audit, oneLine(out))
	return r
}

// describeLine adds what the line ran in the dialplan (the Stasis call,
// put first: it is where the story of the step starts), what callwarden
// told it, and how it ended.
func (d *demo) describeLine(r *stepResult, line supervisorLine) {
	if apps := d.pbx.describeDialplan(line.First, "Stasis"); len(apps) > 0 {
		r.PBX = append([]string{fmt.Sprintf("%s entered %s", line.name, strings.Join(apps, ", "))}, r.PBX...)
	} else if line.name != "" {
		r.PBX = append([]string{line.name + " never entered Stasis"}, r.PBX...)
	}
	decision := d.pbx.varsetOn(line.First, "CALLWARDEN_DECISION")
	reason := d.pbx.varsetOn(line.First, "CALLWARDEN_REASON")
	if len(decision) > 0 && len(reason) > 0 {
		r.pbx("CALLWARDEN_DECISION=%s CALLWARDEN_REASON=%s on the line", decision[len(decision)-1], reason[len(reason)-1])
	}
	for _, media := range d.pbx.playbacksOn(line.First) {
		if !strings.HasPrefix(media, "recording:") {
			r.pbx("%s played to the line", media)
		}
	}
	if _, gone := d.pbx.find(lab.OnChannel("ChannelDestroyed", line.First)); gone {
		r.pbx("the line %s", d.pbx.hangupSummary(line.First))
	}
}

// describeLeg adds the snoop and bridge of a monitor session, and checks
// that the snoop is on the monitored call.
func (d *demo) describeLeg(r *stepResult, call agentCall, line supervisorLine, leg monitorLeg) {
	role, onCall := call.roles[leg.Spied.ID]
	spied := leg.Spied.Name
	if spied == "" {
		spied = leg.Spied.ID
	}
	if onCall {
		r.pbx("%s spies on %s (%s)", leg.Snoop.Name, spied, role)
	} else {
		r.fail("%s spies on %s, which is not a channel of the agent's call", leg.Snoop.Name, spied)
	}
	// ARI does not show a snoop's spy/whisper directions; the Stasis
	// arguments Asterisk holds for the snoop are the closest it shows.
	if apps := d.pbx.describeDialplan(leg.Snoop.ID, "Stasis"); len(apps) > 0 {
		r.pbx("%s runs %s", leg.Snoop.Name, apps[len(apps)-1])
	}
	r.pbx("bridge %s holds %s's line and %s", leg.Bridge.ID, line.who.user, leg.Snoop.Name)
}

// describeLiveRecording adds the live recording Asterisk has under the
// name callwarden stored, and checks that it records the agent's call.
func (d *demo) describeLiveRecording(ctx context.Context, r *stepResult, call agentCall, rec enforce.Recording) {
	live, err := d.pbx.liveRecording(ctx, rec.Name)
	if err != nil {
		r.failErr(fmt.Sprintf("Asterisk has no live recording %q (callwarden stored id %s)", rec.Name, rec.ID), err)
		return
	}
	target := strings.TrimPrefix(live.TargetURI, "channel:")
	what := live.TargetURI
	if ch, err := d.lab.ARI.Channel(ctx, target); err == nil {
		what = ch.Name
		if spied, ok := snoopTarget(ch.Name); ok {
			if role, ok := call.roles[spied]; ok {
				what += ", a snoop on " + role
			}
		} else if role, ok := call.roles[target]; ok {
			what += ", " + role
		}
	}
	r.pbx("live recording %s (%s, state %s) of %s", live.Name, live.Format, live.State, what)
	r.pbx("callwarden's id for it: %s (the one *227<id> takes)", rec.ID)
	if live.State != "recording" {
		r.fail("live recording %s is %s, not recording", live.Name, live.State)
	}
}

// expectNoSnoopSince fails the step if a snoop channel was created since
// event index mark.
func (d *demo) expectNoSnoopSince(r *stepResult, mark int, when string) {
	evs := d.pbx.events.Events()
	if mark > len(evs) {
		return
	}
	for _, ev := range evs[mark:] {
		if ev.Type == "ChannelCreated" && ev.Channel != nil && strings.HasPrefix(ev.Channel.Name, "Snoop/") {
			r.fail("a snoop channel %s was created %s", ev.Channel.Name, when)
		}
	}
}

// expectAudit waits for the audit record w describes, written since the
// step started, and adds it to the step (or the records seen instead).
func (d *demo) expectAudit(ctx context.Context, r *stepResult, since time.Time, w auditWant) {
	var recs []enforce.AuditRecord
	err := poll(ctx, d.opts.wait, func(ctx context.Context) (bool, error) {
		// Records carry the decider's clock; callwarden runs on this host.
		got, err := d.store.ReadAudit(ctx, enforce.AuditFilter{Since: since.Add(-time.Second)})
		if err != nil {
			return false, err
		}
		recs = got
		if rec, ok := findAudit(recs, w); ok {
			r.Audit = append(r.Audit, formatAudit(rec))
			return true, nil
		}
		return false, nil
	})
	switch {
	case err == nil:
		return
	case !errors.Is(err, errPollTimeout):
		r.failErr("read the audit stream", err)
		return
	}
	r.fail("no audit record %s within %s", w, d.opts.wait)
	for i, rec := range recs {
		if i == 5 {
			r.Audit = append(r.Audit, fmt.Sprintf("... and %d more", len(recs)-5))
			break
		}
		r.Audit = append(r.Audit, "seen instead: "+formatAudit(rec))
	}
}

// waitRecording waits for the recording in progress on the agent's call,
// started since the step began, as callwarden stored it (the
// RecordingStore in Redis). The demo reads it for the id *227<id> takes;
// what it claims is then checked in Asterisk.
func (d *demo) waitRecording(ctx context.Context, since time.Time) (enforce.Recording, error) {
	var rec enforce.Recording
	err := poll(ctx, d.opts.wait, func(ctx context.Context) (bool, error) {
		var err error
		rec, err = d.store.ActiveRecording(ctx, agentUser)
		if errors.Is(err, enforce.ErrNotFound) {
			return false, nil
		}
		return err == nil && !rec.StartedAt.Before(since.Add(-time.Second)), err
	})
	if errors.Is(err, errPollTimeout) {
		return rec, fmt.Errorf("no recording of %s in progress in Redis after %s", agentUser, d.opts.wait)
	}
	return rec, err
}

// waitStored waits until Asterisk lists the recording as stored (it has
// finished).
func (d *demo) waitStored(ctx context.Context, name string) (storedRecording, error) {
	var st storedRecording
	err := poll(ctx, d.opts.wait, func(ctx context.Context) (bool, error) {
		var err error
		if st, err = d.pbx.storedRecording(ctx, name); err != nil {
			return false, err
		}
		_, err = d.pbx.liveRecording(ctx, name)
		if errors.Is(err, lab.ErrNotFound) {
			return true, nil
		}
		if err == nil {
			err = errors.New("still live")
		}
		return false, err
	})
	if errors.Is(err, errPollTimeout) {
		err = fmt.Errorf("not stored after %s", d.opts.wait)
	}
	return st, err
}

// eventGap is the time between two ARI events, from their timestamps.
func eventGap(from, to lab.Event) string {
	a, errA := parseARITime(from.Timestamp)
	b, errB := parseARITime(to.Timestamp)
	if errA != nil || errB != nil {
		return "some time"
	}
	return b.Sub(a).Round(time.Millisecond).String()
}

// parseARITime parses an ARI event timestamp, e.g.
// 2026-11-23T19:20:01.123+0000.
func parseARITime(s string) (time.Time, error) {
	return time.Parse("2006-01-02T15:04:05.000-0700", s)
}
