package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// RecordOp is an operation on a call's recording.
type RecordOp uint8

// The recording operations.
const (
	RecStart RecordOp = iota + 1
	RecStop
	RecPause
	RecResume
	RecToggle // pause when recording, resume when paused
)

var recordOpNames = [...]string{RecStart: "start", RecStop: "stop", RecPause: "pause", RecResume: "resume", RecToggle: "toggle"}

// recordOpActions holds the right each operation needs; toggle has none
// of its own.
var recordOpActions = [...]enforce.Action{RecStart: enforce.RecordingStart, RecStop: enforce.RecordingStop, RecPause: enforce.RecordingPause, RecResume: enforce.RecordingResume}

// ParseRecordOp parses start, stop, pause, resume or toggle.
func ParseRecordOp(s string) (RecordOp, bool) {
	for op, name := range recordOpNames {
		if name != "" && name == s {
			return RecordOp(op), true
		}
	}
	return 0, false
}

func (o RecordOp) String() string {
	if o > 0 && int(o) < len(recordOpNames) {
		return recordOpNames[o]
	}
	return "invalid"
}

// Action is the right the operation needs; toggle is resolved against the
// recording's state (Resolve) before deciding.
func (o RecordOp) Action() enforce.Action {
	if o > 0 && int(o) < len(recordOpActions) {
		return recordOpActions[o]
	}
	return 0
}

// Resolve turns toggle into pause or resume from rec's state; other
// operations stay.
func (o RecordOp) Resolve(rec enforce.Recording) RecordOp {
	if o != RecToggle {
		return o
	}
	if rec.State == enforce.RecordingPaused {
		return RecResume
	}
	return RecPause
}

// ChangeRequest is what the engine decides for pause, resume or stop of
// the active recording rec by user: the recording's queue, agent and age.
func ChangeRequest(user string, op RecordOp, rec enforce.Recording) enforce.Request {
	return enforce.Request{User: user, Action: op.Action(), Queue: rec.Queue, Agent: rec.Target, RecordedAt: rec.StartedAt}
}

// DecidePlayback reads recording id from store and decides its playback
// for user (PlaybackOutcome). A store error is refused store_unavailable
// (fail closed) and returned for the caller to log; rec is the zero
// Recording unless it was found.
func DecidePlayback(ctx context.Context, store enforce.RecordingStore, snap *enforce.Snapshot, user, id string, now time.Time) (o Outcome, rec enforce.Recording, err error) {
	rec, err = store.Recording(ctx, id)
	switch {
	case errors.Is(err, enforce.ErrNotFound):
		return PlaybackOutcome(snap, user, enforce.Recording{}, false, now), enforce.Recording{}, nil
	case err != nil:
		return Refused(enforce.ReasonStoreUnavailable.String()), enforce.Recording{}, err
	}
	return PlaybackOutcome(snap, user, rec, true, now), rec, nil
}

// PlaybackOutcome decides recording.playback of rec for user with the
// recording's queue, agent and age. A recording that was not found is
// decided anyway, so that a requester who may play nothing is told why
// (no_profile, unknown_user, ...) and not whether the recording exists;
// any other is no_recording.
func PlaybackOutcome(snap *enforce.Snapshot, user string, rec enforce.Recording, found bool, now time.Time) Outcome {
	if !found {
		d := enforce.Decide(snap, &enforce.Request{User: user, Action: enforce.RecordingPlayback}, now)
		if !d.Allow && d.Reason != enforce.ReasonOutOfScope {
			return Decided(d)
		}
		return Refused(ReasonNoRecording)
	}
	return Decided(enforce.Decide(snap, &enforce.Request{User: user, Action: enforce.RecordingPlayback, Queue: rec.Queue,
		Agent: rec.Target, RecordedAt: rec.StartedAt}, now))
}

// StartOutcome applies the recording rule beside the engine's decision d
// on a start: one recording per target at a time.
func StartOutcome(d enforce.Decision, targetHasActive bool) Outcome {
	if d.Allow && targetHasActive {
		return Refused(ReasonAlreadyRecording)
	}
	return Decided(d)
}

// Recorder is what recordings need from a PBX. Asterisk implements it
// with a snoop channel on the target and an ARI live recording of it;
// FreeSWITCH with uuid_record start/stop and mask/unmask.
type Recorder interface {
	// StartRecording records both sides of the call of channel target
	// under name; leg is the PBX's own channel doing it ("" when none),
	// hung up with the recording. On error nothing is left recording.
	StartRecording(ctx context.Context, target, id, name string) (leg string, err error)
	// PauseRecording and ResumeRecording leave the paused interval
	// without audio; one already in that state is not an error.
	PauseRecording(ctx context.Context, rec enforce.Recording) error
	ResumeRecording(ctx context.Context, rec enforce.Recording) error
	// StopRecording ends the recording (and its leg); one already ended is
	// not an error.
	StopRecording(ctx context.Context, rec enforce.Recording) error
}

// Recordings starts and changes recordings on a PBX and keeps their
// metadata in the store.
type Recordings struct {
	Store enforce.RecordingStore
	PBX   string // names the PBX in the metadata
	// Format is the audio format the PBX records in ("wav"), kept in the
	// metadata for the catalogue.
	Format string
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Audit, when set, receives the records of what the grants' limits
	// did (Limit) and of the recordings reclaimed after a restart
	// (Reclaim).
	Audit *Audit
	// Sessions, when set, is the daemon's live session registry: it
	// counts the limits' actions (callwarden_recording_limit_actions_total),
	// and a pause mutes the live monitor sessions on the recorded call,
	// the resume, the stop or the PBX's end of the recording unmutes them
	// (mute.go).
	Sessions *Registry
	// Instance names this daemon in the recordings it starts or
	// re-attaches (Recording.Instance, Registry.Instance).
	Instance string

	mu     sync.Mutex
	live   map[string]string     // recording name -> id, until the PBX ends it
	limits map[string][]recLimit // recording id -> its armed limits (Limit)
}

func (r *Recordings) now() time.Time {
	if r.Now == nil {
		return time.Now().UTC()
	}
	return r.Now().UTC()
}

// Active is target's active (recording or paused) recording; ok false when
// it has none. An error is the store's.
func (r *Recordings) Active(ctx context.Context, target string) (rec enforce.Recording, ok bool, err error) {
	rec, err = r.Store.ActiveRecording(ctx, target)
	switch {
	case errors.Is(err, enforce.ErrNotFound):
		return enforce.Recording{}, false, nil
	case err != nil:
		return enforce.Recording{}, false, err
	}
	return rec, true, nil
}

// CallInfo is what a recording's metadata says of the recorded call.
type CallInfo struct {
	Channel string // the target's channel
	Queue   string
	Caller  string // the customer's number, unmasked
}

// Start records the call of target (a user id) for user, allowed by d: a
// fresh id, the PBX's recording, then the metadata (with d's max_duration
// deadline, for a daemon that re-attaches it after a restart). A
// recording whose metadata cannot be saved is stopped: one nobody can find
// again must not go on.
func (r *Recordings) Start(ctx context.Context, pbx Recorder, user, target string, c CallInfo, d enforce.Decision) (enforce.Recording, error) {
	id := NewRecordingID()
	rec := enforce.Recording{
		ID: id, Name: "callwarden-" + id, PBX: r.PBX,
		Target: target, Queue: c.Queue, Caller: c.Caller,
		StartedBy: user, State: enforce.RecordingActive, Instance: r.Instance, Format: r.Format,
	}
	r.setLive(rec.Name, id)
	leg, err := pbx.StartRecording(ctx, c.Channel, id, rec.Name)
	if err != nil {
		return enforce.Recording{}, err
	}
	rec.Channel, rec.StartedAt = leg, r.now()
	if d.MaxDuration > 0 {
		rec.Until = rec.StartedAt.Add(d.MaxDuration)
	}
	if err := r.Store.SaveRecording(ctx, rec); err != nil {
		_ = pbx.StopRecording(ctx, rec)
		return enforce.Recording{}, fmt.Errorf("save recording metadata: %w", err)
	}
	return rec, nil
}

// Change pauses, resumes or stops rec for user (op already resolved,
// allowed by d) and keeps who did it, and when, in the metadata; a pause
// keeps when d's max_pause ends it. A pause returns once the live
// sessions on the call are muted, a resume or a stop once they are
// unmuted (Sessions).
func (r *Recordings) Change(ctx context.Context, pbx Recorder, user string, rec enforce.Recording, op RecordOp, d enforce.Decision) (enforce.Recording, error) {
	now := r.now()
	switch op {
	case RecPause:
		if err := pbx.PauseRecording(ctx, rec); err != nil {
			return rec, fmt.Errorf("pause: %w", err)
		}
		Paused(&rec, user, now)
		if d.MaxPause > 0 {
			rec.Pauses[len(rec.Pauses)-1].Until = now.Add(d.MaxPause)
		}
		r.Sessions.hush(ctx, rec.Target, rec.ID, lastPause(rec), true)
	case RecResume:
		if err := pbx.ResumeRecording(ctx, rec); err != nil {
			return rec, fmt.Errorf("resume: %w", err)
		}
		Resumed(&rec, user, now)
		r.Sessions.hush(ctx, rec.Target, rec.ID, lastPause(rec), false)
		r.cancelLimits(rec.ID, RecResume)
	case RecStop:
		// The PBX reports the end of a recording a user stops too: it must
		// not be taken for the PBX ending it (Ended would then record the
		// PBX as the one who stopped it, racing this save).
		r.setLive(rec.Name, "")
		if err := pbx.StopRecording(ctx, rec); err != nil {
			r.setLive(rec.Name, rec.ID)
			return rec, fmt.Errorf("stop: %w", err)
		}
		Stopped(&rec, user, now)
		r.cancelLimits(rec.ID)
		r.Sessions.hush(ctx, rec.Target, rec.ID, time.Time{}, false)
	default:
		return rec, fmt.Errorf("recording operation %s cannot change a recording", op)
	}
	if err := r.Store.SaveRecording(ctx, rec); err != nil {
		return rec, fmt.Errorf("save recording metadata: %w", err)
	}
	return rec, nil
}

// setLive notes that the recording named name (id) runs, or with id ""
// that it no longer does.
func (r *Recordings) setLive(name, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "" {
		delete(r.live, name)
		return
	}
	if r.live == nil {
		r.live = make(map[string]string)
	}
	r.live[name] = id
}

// Live reports the id of the recording named name that this process
// started and forgets it: the PBX says it ended. ok is false for a
// recording that is not callwarden's or already ended.
func (r *Recordings) Live(name string) (id string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok = r.live[name]
	delete(r.live, name)
	return id, ok
}

// Ended marks recording id stopped by by ("asterisk:finished",
// "callwarden:orphaned") when the PBX ended it, unless a user stopped it
// first; the live sessions muted for its pause are unmuted. It reports
// the store's error.
func (r *Recordings) Ended(ctx context.Context, id, by string) error {
	r.cancelLimits(id)
	r.Sessions.recordingEnded(ctx, id)
	rec, err := r.Store.Recording(ctx, id)
	if err != nil {
		return fmt.Errorf("read recording %s: %w", id, err)
	}
	if rec.State == enforce.RecordingStopped {
		return nil
	}
	rec.State, rec.StoppedAt = enforce.RecordingStopped, r.now()
	if rec.StoppedBy == "" {
		rec.StoppedBy = by
	}
	if err := r.Store.SaveRecording(ctx, rec); err != nil {
		return fmt.Errorf("mark recording %s stopped: %w", id, err)
	}
	return nil
}

// ChangeDuration is what op, just applied to rec, closed: the recording's
// length for a stop, the pause's for a resume; zero otherwise.
func ChangeDuration(rec enforce.Recording, op RecordOp) time.Duration {
	switch n := len(rec.Pauses); {
	case op == RecStop && !rec.StoppedAt.IsZero():
		return rec.StoppedAt.Sub(rec.StartedAt)
	case op == RecResume && n > 0 && !rec.Pauses[n-1].ResumedAt.IsZero():
		return rec.Pauses[n-1].ResumedAt.Sub(rec.Pauses[n-1].At)
	}
	return 0
}

// Paused records that user paused rec at now.
func Paused(rec *enforce.Recording, user string, now time.Time) {
	rec.State = enforce.RecordingPaused
	rec.Pauses = append(rec.Pauses, enforce.Pause{By: user, At: now})
}

// Resumed records that user resumed rec at now: it closes the open pause.
func Resumed(rec *enforce.Recording, user string, now time.Time) {
	rec.State = enforce.RecordingActive
	closePause(rec, user, now)
}

// Stopped records that by stopped rec at now; an open pause ends with it.
func Stopped(rec *enforce.Recording, by string, now time.Time) {
	rec.State, rec.StoppedBy, rec.StoppedAt = enforce.RecordingStopped, by, now
	closePause(rec, by, now)
}

func closePause(rec *enforce.Recording, by string, now time.Time) {
	if n := len(rec.Pauses); n > 0 && rec.Pauses[n-1].ResumedAt.IsZero() {
		rec.Pauses[n-1].ResumedBy, rec.Pauses[n-1].ResumedAt = by, now
	}
}

// NewRecordingID returns a 12-digit recording id: digits only, so a phone
// can dial it after the playback feature code (*227<id>).
func NewRecordingID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return fmt.Sprintf("%012d", binary.BigEndian.Uint64(b[:])%1_000_000_000_000)
}
