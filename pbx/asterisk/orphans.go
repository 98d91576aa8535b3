package asterisk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// orphanGrace is how long a channel found in the application's Stasis, with
// no handler, is given for its StasisStart to reach this process before it
// is taken for an orphan: it may have entered Stasis just now.
const orphanGrace = time.Second

// sweepOrphans ends what this application left in Asterisk and this
// process does not own: monitor bridges and the channels in them (the snoop
// and the supervisor), snoops (monitor, notify, recording: hanging a
// recording's snoop up ends its live recording, which is then marked
// stopped in the recording store). Requests waiting in the application's
// Stasis that no handler serves (Asterisk does not send their StasisStart
// again to a new connection) are asked again (askAgain): undecided, they
// are decided now. It runs at start and after every reconnection, before
// the adapter reports itself connected.
//
// Ending, not adopting, a monitor session is deliberate: callwarden cannot
// tell what an orphan was doing since the crash, and a live session must
// rest on a decision; an orphan fails closed. Each one is audited (Source
// watchdog, reason orphaned_session); the session registry then ends its
// record (cause daemon_restart, session.Registry.Converge). A recording
// whose metadata says it runs and that Asterisk still records is the
// exception: it rests on the decision that started it, and is re-attached.
//
// An error listing channels or bridges is returned; a failure to end one
// orphan is logged and audited (outcome failed), and the next connection
// tries again.
func (a *Adapter) sweepOrphans(ctx context.Context) error {
	bridges, err := a.rest.bridges(ctx)
	if err != nil {
		return fmt.Errorf("list bridges: %w", err)
	}
	chans, err := a.rest.listChannels(ctx)
	if err != nil {
		return fmt.Errorf("list channels: %w", err)
	}
	byID := make(map[string]listedChannel, len(chans))
	for _, c := range chans {
		byID[c.ID] = c
	}
	done := make(map[string]bool) // channels already ended with their bridge
	for _, b := range bridges {
		if kind, _, ok := a.ownedKind(b.ID); !ok || kind != kindBridge || a.owns(b.ID) {
			continue
		}
		a.endOrphanBridge(ctx, a.o.App, "after restart", b.ID, b.ChannelIDs, byID)
		for _, id := range b.ChannelIDs {
			done[id] = true
		}
	}
	var waiting []listedChannel
	for _, c := range chans {
		if done[c.ID] || a.owns(c.ID) {
			continue
		}
		if kind, suffix, ok := a.ownedKind(c.ID); ok {
			a.endOrphanSnoop(ctx, c, kind, suffix, byID)
			continue
		}
		if _, ok := c.stasisArgs(a.o.App); ok {
			waiting = append(waiting, c)
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	t := time.NewTimer(orphanGrace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, c := range waiting {
		// Asked again: a request served meanwhile (claimed, answered and
		// sent on in the dialplan) must not be hung up where it went.
		now, err := a.rest.listedChannel(ctx, c.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("channel %s: %w", c.ID, err)
		}
		if _, ok := now.stasisArgs(a.o.App); ok && !a.owns(c.ID) && now.Dialplan.AppData == c.Dialplan.AppData {
			a.askAgain(ctx, now)
		}
	}
	return nil
}

// endOrphanBridge destroys a monitor bridge application app left behind
// (this one's previous process, or a dead sibling's: why says which) and
// hangs up every channel in it: the snoop and the supervisor, who would
// otherwise go on listening unsupervised for as long as the call lasts.
func (a *Adapter) endOrphanBridge(ctx context.Context, app, why, bridgeID string, members []string, byID map[string]listedChannel) {
	e := orphanEntry{action: enforce.MonitorListen, channels: append([]string(nil), members...)}
	var failures []error
	// The bridge goes first, as in a session's teardown.
	if err := a.rest.destroyBridge(ctx, bridgeID); err != nil && !errors.Is(err, ErrNotFound) {
		failures = append(failures, fmt.Errorf("destroy bridge %s: %w", bridgeID, err))
	}
	var sup []string
	for _, id := range members {
		c, listed := byID[id]
		switch kind, _, ours := parseOwnedID(app, id); {
		case ours && kind == kindSnoop:
			if args, ok := c.stasisArgs(app); ok && len(args) > 1 {
				if m, ok := parseMode(args[1]); ok {
					e.action = m.Action()
				}
			}
			e.target = a.snoopTarget(c, byID)
		case listed:
			e.user = a.channelUser(c)
			sup = append(sup, c.Name)
		}
		if err := a.rest.hangup(ctx, id, "normal"); err != nil && !errors.Is(err, ErrNotFound) {
			failures = append(failures, fmt.Errorf("hang up %s: %w", id, err))
		}
	}
	e.detail = fmt.Sprintf("ended orphaned %s session %s: bridge %s, supervisor %s",
		strings.TrimPrefix(e.action.String(), "monitor."), why, bridgeID, session.OrNone(strings.Join(sup, ", ")))
	a.auditOrphan(ctx, e, errors.Join(failures...))
}

// endOrphanSnoop hangs up a snoop of ours outside any orphaned bridge (a
// notify tone, a recording, a monitor snoop not bridged yet). A recording
// Asterisk still records, and its metadata says runs, is re-attached
// instead (reattachRecording): it rests on the decision that started it.
// Any other recording's live recording ends with its snoop; its metadata
// is marked stopped.
func (a *Adapter) endOrphanSnoop(ctx context.Context, c listedChannel, kind, suffix string, byID map[string]listedChannel) {
	e := orphanEntry{action: enforce.MonitorListen, channels: []string{c.ID}, target: a.snoopTarget(c, byID)}
	if kind == kindRecSnoop {
		if rec, err := a.o.Recordings.Recording(ctx, suffix); err == nil && a.reattachRecording(ctx, c.ID, rec) {
			return
		}
	}
	var failures []error
	if err := a.rest.hangup(ctx, c.ID, "normal"); err != nil && !errors.Is(err, ErrNotFound) {
		failures = append(failures, fmt.Errorf("hang up %s: %w", c.ID, err))
	}
	e.detail = "ended orphaned " + kind + " channel after restart"
	if kind == kindRecSnoop {
		e.action = enforce.RecordingStop
		e.detail = "ended orphaned recording " + suffix + " after restart"
		rec, err := a.o.Recordings.Recording(ctx, suffix)
		switch {
		case err != nil && !errors.Is(err, enforce.ErrNotFound):
			failures = append(failures, fmt.Errorf("read recording %s: %w", suffix, err))
		case err == nil:
			e.user, e.target = rec.StartedBy, rec.Target
			if rec.State != enforce.RecordingStopped {
				session.Stopped(&rec, "callwarden:orphaned", a.o.Now().UTC())
				if err := a.o.Recordings.SaveRecording(ctx, rec); err != nil {
					failures = append(failures, fmt.Errorf("mark recording %s stopped: %w", suffix, err))
				}
			}
		}
	}
	a.auditOrphan(ctx, e, errors.Join(failures...))
}

// askAgain sends a request left in the application's Stasis with no
// handler into the application again (POST /channels/{id}/move to this
// application, with its own arguments): Asterisk ends its Stasis and
// starts it anew, and this process decides it like any other, where the
// previous process died before it could. Only when that fails is the
// request ended (endOrphanRequest).
func (a *Adapter) askAgain(ctx context.Context, c listedChannel) {
	args, err := a.moveHere(ctx, c.ID, c.Dialplan.AppData)
	log := a.log.With(zap.String("channel", c.ID), zap.String("args", args))
	switch {
	case err == nil:
		log.Warn("request left undecided by the previous process asked again")
	case errors.Is(err, ErrNotFound):
	default:
		log.Error("a request left undecided by the previous process could not be asked again; ending it", zap.Error(err))
		a.endOrphanRequest(ctx, c)
	}
}

// endOrphanRequest hangs up a channel left in the application's Stasis
// with no handler: a supervisor whose session was being set up, or any
// request in flight when the previous process died. Nothing would ever
// release it otherwise.
func (a *Adapter) endOrphanRequest(ctx context.Context, c listedChannel) {
	args, _ := c.stasisArgs(a.o.App)
	e := orphanEntry{channels: []string{c.ID}, user: a.channelUser(c),
		detail: "ended orphaned request " + strings.Join(args, ",") + " after restart; channel " + c.Name}
	if rq, err := parseArgs(args); err == nil {
		switch rq.verb {
		case verbMonitor:
			e.action = rq.mode.Action()
		case verbCheck:
			e.action = rq.action
		case verbRecord:
			e.action = rq.op.Action()
		case verbPlayback:
			e.action = enforce.RecordingPlayback
		}
		e.target = rq.target
	}
	var failure error
	if err := a.rest.hangup(ctx, c.ID, "normal"); err != nil && !errors.Is(err, ErrNotFound) {
		failure = fmt.Errorf("hang up %s: %w", c.ID, err)
	}
	a.auditOrphan(ctx, e, failure)
}

// snoopTarget names the user whose call a snoop listens to, from the snoop
// channel's name (Snoop/<target channel id>-<n>); "" when unknown.
func (a *Adapter) snoopTarget(c listedChannel, byID map[string]listedChannel) string {
	rest, ok := strings.CutPrefix(c.Name, "Snoop/")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		rest = rest[:i]
	}
	t, ok := byID[rest]
	if !ok {
		return ""
	}
	return a.channelUser(t)
}

// channelUser names the user of a channel by its name or caller id; ""
// without a snapshot or a match.
func (a *Adapter) channelUser(c listedChannel) string {
	snap := a.snapshot()
	if snap == nil {
		return ""
	}
	return resolveChannelUser(snap, c.data(), true)
}

// orphanEntry is what the audit record of an ended orphan says.
type orphanEntry struct {
	user, target string
	action       enforce.Action
	channels     []string
	detail       string
}

// auditOrphan writes the audit record of an ended orphan: outcome enforced
// when it is gone, failed (with the failure) when Asterisk refused.
func (a *Adapter) auditOrphan(ctx context.Context, e orphanEntry, failure error) {
	rec := a.audit.Watchdog(session.WatchdogEntry{
		User:     e.user,
		Target:   e.target,
		Action:   e.action,
		Reason:   session.ReasonOrphaned,
		Channels: e.channels,
		Detail:   e.detail,
		Outcome:  enforce.OutcomeEnforced,
		Failure:  failure,
	})
	a.m.watchdog.WithLabelValues("orphan", string(WatchdogEnforce)).Inc()
	log := a.log.With(zap.String("user", e.user), zap.String("action", rec.Action), zap.Strings("channels", e.channels))
	if failure != nil {
		log.Error("cannot end an orphan left in Asterisk", zap.String("detail", e.detail), zap.Error(failure))
	} else {
		log.Warn("ended an orphan left in Asterisk", zap.String("detail", e.detail))
	}
	if err := a.audit.Write(ctx, rec); err != nil {
		log.Error("audit write failed", zap.Error(err))
	}
}
