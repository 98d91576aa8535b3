package asterisk

import (
	"context"
	"errors"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// handleStart serves one channel that entered Stasis(callwarden,...).
func (a *Adapter) handleStart(ctx context.Context, e *ari.StasisStart) {
	started := time.Now()
	ch := e.Channel
	in := a.subscribe(ch.ID)
	defer a.unsubscribe(in)
	log := a.log.With(zap.String("channel", ch.ID), zap.Strings("args", e.Args))
	rq, err := parseArgs(e.Args)
	if err != nil {
		log.Warn("refusing malformed Stasis request", zap.Error(err))
		var user string
		if snap := a.snapshot(); snap != nil {
			user = resolveChannelUser(snap, ch, true)
		}
		o := a.audited(ctx, auditEntry{user: user, channels: []string{ch.ID}, detail: err.Error(), requester: ch}, session.Refused(session.ReasonInvalid))
		a.conclude(ctx, in, ch.ID, o, a.o.RefusalSound, true)
		return
	}
	switch rq.verb {
	case verbMonitor:
		a.monitor(ctx, in, ch, rq, started, log)
	case verbCheck:
		a.check(ctx, in, ch, rq, log)
	case verbRecord:
		a.recordOp(ctx, in, ch, rq, log)
	case verbPlayback:
		a.playback(ctx, in, ch, rq, log)
	}
}

func callerNumber(ch ari.ChannelData) string {
	if ch.Caller != nil {
		return ch.Caller.Number
	}
	return ""
}

// snapshot returns the snapshot to decide from, or nil (fail closed).
func (a *Adapter) snapshot() *enforce.Snapshot { return a.o.Snapshot() }

// conclude tells the channel the outcome (CALLWARDEN_DECISION and
// CALLWARDEN_REASON), plays sound when set, then hangs the channel up or
// lets it continue in the dialplan.
func (a *Adapter) conclude(ctx context.Context, in *inbox, channelID string, o outcome, sound string, hangup bool) {
	// Not cut short by shutdown: a refused caller still hears why and is
	// released. Every REST call keeps its own deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), concludeLimit)
	defer cancel()
	a.setOutcome(ctx, channelID, o)
	if sound != "" {
		if err := a.rest.answer(ctx, channelID); err != nil && !errors.Is(err, ErrNotFound) {
			a.log.Debug("answer before playing", zap.String("channel", channelID), zap.Error(err))
		}
		if !a.playAndWait(ctx, in, channelID, sound, concludeLimit-5*time.Second) {
			return // the channel is gone
		}
	}
	var err error
	if hangup {
		err = a.rest.hangup(ctx, channelID, "normal")
	} else {
		err = a.rest.continueDialplan(ctx, channelID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		a.log.Warn("cannot release channel", zap.String("channel", channelID), zap.Bool("hangup", hangup), zap.Error(err))
		if !hangup {
			// A channel callwarden cannot hand back must not linger in Stasis.
			_ = a.rest.hangup(ctx, channelID, "normal")
		}
	}
}

// concludeLimit bounds telling a channel the outcome, prompt included.
const concludeLimit = 40 * time.Second

// setOutcome writes CALLWARDEN_DECISION and CALLWARDEN_REASON on the channel.
func (a *Adapter) setOutcome(ctx context.Context, channelID string, o outcome) {
	for _, kv := range [...][2]string{{varDecision, o.Verdict()}, {varReason, o.Reason}} {
		if err := a.rest.setVar(ctx, channelID, kv[0], kv[1]); err != nil && !errors.Is(err, ErrNotFound) {
			a.log.Warn("cannot set channel variable", zap.String("channel", channelID), zap.String("variable", kv[0]), zap.Error(err))
		}
	}
}

// gone reports whether ev says the channel left (hung up or left Stasis).
func gone(ev ari.Event, channelID string) bool {
	switch e := ev.(type) {
	case *ari.StasisEnd:
		return e.Channel.ID == channelID
	case *ari.ChannelDestroyed:
		return e.Channel.ID == channelID
	case *ari.ChannelHangupRequest:
		return e.Channel.ID == channelID
	}
	return false
}

// playAndWait plays media on the channel and waits until it ends; it
// returns false when the channel left meanwhile.
func (a *Adapter) playAndWait(ctx context.Context, in *inbox, channelID, media string, limit time.Duration) bool {
	pb := a.newID(kindPlay)
	a.follow(in, pb)
	if err := a.rest.play(ctx, channelID, pb, media); err != nil {
		a.log.Warn("cannot play", zap.String("channel", channelID), zap.String("media", media), zap.Error(err))
		return !errors.Is(err, ErrNotFound)
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		select {
		case ev := <-in.ch:
			if gone(ev, channelID) {
				return false
			}
			if f, ok := ev.(*ari.PlaybackFinished); ok && f.Playback.ID == pb {
				return true
			}
		case <-t.C:
			_ = a.rest.stopPlayback(ctx, pb)
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// waitStasis waits for channel id to enter Stasis (a snoop just created).
func (a *Adapter) waitStasis(ctx context.Context, in *inbox, id, watch string) error {
	t := time.NewTimer(2 * a.o.Timeout)
	defer t.Stop()
	for {
		select {
		case ev := <-in.ch:
			if s, ok := ev.(*ari.StasisStart); ok && s.Channel.ID == id {
				return nil
			}
			if gone(ev, watch) {
				return errChannelGone
			}
			if gone(ev, id) {
				return errors.New("snoop channel ended before entering Stasis")
			}
		case <-t.C:
			return errors.New("snoop channel never entered Stasis")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errChannelGone means the requester hung up while callwarden was acting.
var errChannelGone = errors.New("requesting channel hung up")
