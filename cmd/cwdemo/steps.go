package main

import (
	"context"
	"fmt"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// monitorSession is a supervisor bridged with a snoop.
type monitorSession struct {
	line supervisorLine
	leg  monitorLeg
	ok   bool
}

// listenStep is the first step of the story on either PBX: want is what
// the PBX must show.
func listenStep(want string) *stepResult {
	return &stepResult{
		Title: fmt.Sprintf("%s dials *222%s: listen to agent %s's call on %s", alice, agentExt, agentExt, queue),
		Want:  want + "; audit: allow monitor.listen",
	}
}

// recordStartStep is alice's *2252001 on either PBX: want is what the PBX
// must show.
func recordStartStep(want string) *stepResult {
	return &stepResult{
		Title: fmt.Sprintf("alice dials *225%s: record agent %s's call", agentExt, agentExt),
		Want:  want + "; audit: allow recording.start",
	}
}

// listen: alice dials *2222001 and must be bridged with a snoop on agent
// 2001's call.
func (d *demo) listen(ctx context.Context, call agentCall) (monitorSession, *stepResult) {
	r := listenStep("alice is bridged with a snoop channel on the agent's call")
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
	r := recordStartStep("Asterisk records the agent's call (a live recording) and goes on after alice's line is released")
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
