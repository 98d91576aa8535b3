// This file holds convergence after a crash: the records of live sessions
// and recordings a dead daemon left in the store (its own previous run
// after kill -9, or another daemon whose heartbeat expired) are checked
// against the PBX, then re-attached or ended, and audited.

package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// ByRestart names callwarden in the metadata of a recording found ended
// after the daemon that followed it died (Recording.StoppedBy).
const ByRestart = "callwarden:restart"

// ReasonReattached is the reason of the audit record of a recording
// re-attached after the daemon that followed it died.
const ReasonReattached = "reattached"

// Prober says what still runs in one PBX, for the records a dead daemon
// left. Each call crosses the network and takes a deadline.
type Prober interface {
	// SessionRuns reports whether the PBX still runs the monitor session
	// s (its supervisor's channel is still there). Errors: the PBX's; the
	// record is then left as it is.
	SessionRuns(ctx context.Context, s enforce.LiveSession) (bool, error)
	// RecordingRuns reports whether the PBX still records rec. Errors:
	// the PBX's; the record is then left as it is.
	RecordingRuns(ctx context.Context, rec enforce.Recording) (bool, error)
}

// Claimant is one PBX adapter's part in convergence (Registry.Claim): the
// records naming its PBX are checked with Probe, audited with Audit, and
// its recordings re-attached or stopped through Recordings, their limits
// re-armed to act through Timers.
type Claimant struct {
	PBX        string
	Probe      Prober
	Audit      *Audit
	Recordings *Recordings
	Timers     Recorder
}

// Claim makes the registry converge the records of c.PBX (Run). An
// adapter claims its PBX once, before it serves.
func (r *Registry) Claim(c Claimant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.claims = append(r.claims, c)
}

func (r *Registry) claimant(pbx string) (Claimant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.claims {
		if c.PBX == pbx {
			return c, true
		}
	}
	return Claimant{}, false
}

// beat writes this daemon's heartbeat; a failure is logged and counted
// (the next beat tries again, within the ttl).
func (r *Registry) beat(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	if err := r.o.Store.Beat(sctx, r.o.Instance, r.o.HeartbeatTTL); err != nil && !errors.Is(err, context.Canceled) {
		r.m.errors.Inc()
		r.log.Warn("cannot write this daemon's heartbeat", zap.Error(err))
	}
}

// Converge settles, once, the records a dead daemon left for the PBXs
// claimed here: a daemon is dead when its heartbeat expired (a record
// with no owner is a dead one's). A monitor session the PBX no longer
// runs is audited as ended (cause daemon_restart) and then removed; one
// it still runs stays listed (on Asterisk the orphan sweep ends it at the
// next connection). A recording the PBX still records is re-attached to
// this daemon, else marked stopped and audited (Recordings.Reclaim).
//
// Nothing is half-applied: a record whose PBX or store cannot answer, or
// whose end cannot be audited, is left as it is for the next pass. It
// returns the first store error met listing records.
func (r *Registry) Converge(ctx context.Context) error {
	if r.o.Store == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	sessions, err := r.o.Store.LiveSessions(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("list live sessions: %w", err)
	}
	var recs []enforce.Recording
	if r.o.Recordings != nil {
		sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		recs, err = r.o.Recordings.ActiveRecordings(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("list active recordings: %w", err)
		}
	}
	var owners []string
	for _, s := range sessions {
		owners = r.appendForeign(owners, s.Instance, s.PBX)
	}
	for _, rec := range recs {
		owners = r.appendForeign(owners, rec.Instance, rec.PBX)
	}
	if len(owners) == 0 {
		return nil
	}
	sctx, cancel = context.WithTimeout(ctx, r.o.Timeout)
	alive, err := r.o.Store.Alive(sctx, owners)
	cancel()
	if err != nil {
		return fmt.Errorf("read heartbeats: %w", err)
	}
	dead := func(instance, pbx string) (Claimant, bool) {
		if instance == r.o.Instance || alive[instance] {
			return Claimant{}, false
		}
		return r.claimant(pbx)
	}
	for _, s := range sessions {
		if c, ok := dead(s.Instance, s.PBX); ok {
			r.reclaimSession(ctx, c, s)
		}
	}
	for _, rec := range recs {
		if c, ok := dead(rec.Instance, rec.PBX); ok {
			r.reclaimRecording(ctx, c, rec)
		}
	}
	return nil
}

// appendForeign adds instance to owners when it is another daemon's, of a
// PBX claimed here, and not there yet. A record with no owner is never
// alive: it is left out of the question.
func (r *Registry) appendForeign(owners []string, instance, pbx string) []string {
	if instance == "" || instance == r.o.Instance {
		return owners
	}
	if _, ok := r.claimant(pbx); !ok {
		return owners
	}
	for _, o := range owners {
		if o == instance {
			return owners
		}
	}
	return append(owners, instance)
}

// reclaimSession ends the record of s when its PBX no longer runs it:
// first the audit record of the end, then the removal (a failed removal
// is tried again, and audited again, on the next pass; a lost end never).
func (r *Registry) reclaimSession(ctx context.Context, c Claimant, s enforce.LiveSession) {
	log := r.log.With(zap.String("session", s.ID), zap.String("user", s.User), zap.String("owner", s.Instance))
	pctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	runs, err := c.Probe.SessionRuns(pctx, s)
	cancel()
	switch {
	case err != nil:
		log.Warn("cannot ask the PBX about a dead daemon's session; it stays listed", zap.Error(err))
		return
	case runs:
		log.Info("a dead daemon's session still runs in the PBX; it stays listed")
		return
	}
	now := r.now()
	rec := c.Audit.Record(Entry{User: s.User, Action: modeAction(s.Mode), Target: s.Target, Queue: s.Queue,
		Channels: nonEmpty(s.Channel, s.TargetChannel), Session: s.ID,
		Detail: fmt.Sprintf("session ended: daemon %s died (last write %s) and %s no longer runs it; ended at the latest at %s",
			s.Instance, s.UpdatedAt.Format(time.RFC3339), c.PBX, now.Format(time.RFC3339))},
		Outcome{Allow: true, Reason: enforce.CauseDaemonRestart, Decision: enforce.Decision{Allow: true, Profile: s.Profile, Grant: s.Grant}})
	rec.Outcome, rec.Cause = enforce.OutcomeEnded, enforce.CauseDaemonRestart
	rec.Duration = seconds(now.Sub(s.StartedAt))
	if err := c.Audit.Write(ctx, rec); err != nil {
		log.Error("cannot audit the end of a dead daemon's session; it stays listed", zap.Error(err))
		return
	}
	sctx, cancel := r.storeCtx(ctx)
	defer cancel()
	if err := r.o.Store.EndSession(sctx, enforce.EndedSession{ID: s.ID, Cause: enforce.CauseDaemonRestart, At: now}); err != nil {
		r.m.errors.Inc()
		log.Warn("cannot remove a dead daemon's ended session from the registry", zap.Error(err))
		return
	}
	r.m.ends.WithLabelValues(enforce.CauseDaemonRestart).Inc()
	log.Warn("ended the record of a dead daemon's session the PBX no longer runs")
}

// reclaimRecording re-attaches or stops rec, as its PBX says.
func (r *Registry) reclaimRecording(ctx context.Context, c Claimant, rec enforce.Recording) {
	log := r.log.With(zap.String("recording", rec.ID), zap.String("owner", rec.Instance))
	pctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	runs, err := c.Probe.RecordingRuns(pctx, rec)
	cancel()
	if err != nil {
		log.Warn("cannot ask the PBX about a dead daemon's recording; it stays as it is", zap.Error(err))
		return
	}
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	if err := c.Recordings.Reclaim(sctx, rec, runs, c.Timers); err != nil {
		log.Warn("cannot reclaim a dead daemon's recording; it stays as it is", zap.Error(err))
		return
	}
	log.Warn("reclaimed a dead daemon's recording", zap.Bool("reattached", runs))
}

// modeAction is the action of a session's mode name (listen when
// unknown: the least the session did).
func modeAction(mode string) enforce.Action {
	if m, ok := ParseMode(mode); ok {
		return m.Action()
	}
	return enforce.MonitorListen
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Reclaim settles rec, a recording whose daemon died. When the PBX still
// records it (runs), this daemon re-attaches it: it becomes rec's
// Instance, follows its end (Live) and re-arms its limits, to act through
// timers, from the deadlines the metadata keeps (one already passed acts
// at once). Otherwise it is marked stopped by ByRestart, now being the
// best time known. Either is audited (Audit), after the metadata is saved.
// Errors: the store's; nothing changed then. Reclaiming a recording this
// daemon already follows does nothing.
func (r *Recordings) Reclaim(ctx context.Context, rec enforce.Recording, runs bool, timers Recorder) error {
	now := r.now()
	e := Entry{User: ByRestart, Target: rec.Target, Queue: rec.Queue, Channels: nonEmpty(rec.Channel)}
	o := Outcome{Allow: true, Decision: enforce.Decision{Allow: true}}
	if runs {
		r.mu.Lock()
		id, following := r.live[rec.Name]
		r.mu.Unlock()
		if following && id == rec.ID && rec.Instance == r.Instance {
			return nil
		}
		from := rec.Instance
		rec.Instance = r.Instance
		if err := r.Store.SaveRecording(ctx, rec); err != nil {
			return fmt.Errorf("re-attach recording %s: %w", rec.ID, err)
		}
		r.setLive(rec.Name, rec.ID)
		if rec.State == enforce.RecordingPaused {
			r.Sessions.hush(ctx, rec.Target, rec.ID, lastPause(rec), true) // a pause outlives its daemon
		}
		e.Action, o.Reason = enforce.RecordingStart, ReasonReattached
		e.Detail = fmt.Sprintf("recording %s re-attached by daemon %s: its daemon %s died and %s still records it",
			rec.ID, r.Instance, orNone(from), r.PBX)
		r.auditReclaim(ctx, e, o, "", 0)
		r.rearm(timers, rec, now) // after the record: a limit passed meanwhile acts at once
		return nil
	}
	Stopped(&rec, ByRestart, now)
	if err := r.Store.SaveRecording(ctx, rec); err != nil {
		return fmt.Errorf("mark recording %s stopped: %w", rec.ID, err)
	}
	r.cancelLimits(rec.ID)
	r.setLive(rec.Name, "")
	e.Action, o.Reason = enforce.RecordingStop, enforce.CauseDaemonRestart
	e.Detail = fmt.Sprintf("recording %s stopped: its daemon %s died and %s no longer records it; ended at the latest at %s",
		rec.ID, orNone(rec.Instance), r.PBX, now.Format(time.RFC3339))
	r.auditReclaim(ctx, e, o, enforce.CauseDaemonRestart, now.Sub(rec.StartedAt))
	return nil
}

// rearm arms the limits rec's metadata keeps: its max_duration deadline,
// and the max_pause deadline of an open pause.
func (r *Recordings) rearm(timers Recorder, rec enforce.Recording, now time.Time) {
	if !rec.Until.IsZero() {
		r.arm(timers, rec.ID, recLimit{op: RecStop, limit: rec.Until.Sub(rec.StartedAt)}, rec.Until.Sub(now), enforce.Decision{Allow: true})
	}
	if n := len(rec.Pauses); rec.State == enforce.RecordingPaused && n > 0 && !rec.Pauses[n-1].Until.IsZero() {
		p := rec.Pauses[n-1]
		r.arm(timers, rec.ID, recLimit{op: RecResume, limit: p.Until.Sub(p.At), pause: n - 1}, p.Until.Sub(now), enforce.Decision{Allow: true})
	}
}

// auditReclaim writes the record of a reclaimed recording (with cause and
// length when it was stopped); without Audit it writes nothing.
func (r *Recordings) auditReclaim(ctx context.Context, e Entry, o Outcome, cause string, d time.Duration) {
	if r.Audit == nil {
		return
	}
	rec := r.Audit.resultRecord(e, o, nil)
	rec.Cause = cause
	if d > 0 {
		rec.Duration = seconds(d)
	}
	_ = r.Audit.Write(ctx, rec)
}
