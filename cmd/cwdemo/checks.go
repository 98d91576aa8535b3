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
