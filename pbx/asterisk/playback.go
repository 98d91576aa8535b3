package asterisk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// playbackControls maps DTMF during a playback to ARI playback operations:
// 4 back, 5 pause/resume, 6 skip forward, 0 restart; # stops.
var playbackControls = map[string]string{"4": "reverse", "6": "forward", "0": "restart"}

// playback serves Stasis(callwarden,playback,<recording-id>): it decides
// recording.playback with the recording's queue, agent and age, then plays
// it with DTMF controls and continues the dialplan when it ends.
func (a *Adapter) playback(ctx context.Context, in *inbox, ch ari.ChannelData, rq request, log *zap.Logger) {
	e := auditEntry{verb: verbPlayback, action: enforce.RecordingPlayback, channels: []string{ch.ID}, detail: "recording " + rq.recording, recording: rq.recording, requester: ch}
	o, rec := a.decidePlayback(ctx, ch, rq, &e, log)
	o = a.audited(ctx, e, o)
	if !o.Allow {
		a.conclude(ctx, in, ch.ID, o, a.o.RefusalSound, !rq.continueOnDeny)
		return
	}
	a.setOutcome(ctx, ch.ID, o)
	if ch.State != "Up" {
		if err := a.rest.answer(ctx, ch.ID); err != nil {
			log.Warn("cannot answer for playback", zap.Error(err))
		}
	}
	pb := a.newID(kindPlay)
	a.follow(in, pb)
	if err := a.rest.play(ctx, ch.ID, pb, "recording:"+rec.Name); err != nil {
		log.Error("cannot play the recording", zap.String("recording", rec.ID), zap.Error(err))
		a.auditResult(ctx, e, o, fmt.Errorf("play the recording: %w", err))
		a.conclude(ctx, in, ch.ID, session.Refused(session.ReasonPBXError), a.o.RefusalSound, true)
		return
	}
	a.auditResult(ctx, e, o, nil)
	for {
		select {
		case ev := <-in.ch:
			switch e := ev.(type) {
			case *ari.PlaybackFinished:
				if e.Playback.ID == pb {
					a.conclude(ctx, in, ch.ID, o, "", false)
					return
				}
			case *ari.ChannelDtmfReceived:
				if e.Channel.ID != ch.ID {
					continue
				}
				op, ok := playbackControls[e.Digit]
				switch e.Digit {
				case "5":
					// Asterisk's own state decides: a restart or a failed
					// control must not leave 5 doing the opposite.
					op, ok = "pause", true
					if st, err := a.rest.playbackState(ctx, pb); err == nil && st == "paused" {
						op = "unpause"
					}
				case "#":
					if err := a.rest.stopPlayback(ctx, pb); err != nil && !errors.Is(err, ErrNotFound) {
						log.Warn("cannot stop the playback", zap.Error(err))
					}
					continue
				}
				if ok {
					if err := a.rest.controlPlayback(ctx, pb, op); err != nil && !errors.Is(err, ErrNotFound) {
						log.Debug("playback control failed", zap.String("operation", op), zap.Error(err))
					}
				}
				continue
			}
			if gone(ev, ch.ID) {
				return
			}
		case <-ctx.Done():
			cctx, cancel := a.cleanupCtx(ctx)
			_ = a.rest.stopPlayback(cctx, pb)
			_ = a.rest.continueDialplan(cctx, ch.ID)
			cancel()
			return
		}
	}
}

func (a *Adapter) decidePlayback(ctx context.Context, ch ari.ChannelData, rq request, e *auditEntry, log *zap.Logger) (outcome, enforce.Recording) {
	snap := a.snapshot()
	if snap == nil {
		return session.Decided(enforce.Decide(nil, &enforce.Request{}, a.o.Now())), enforce.Recording{}
	}
	user, err := a.resolveCaller(ctx, snap, ch)
	if err != nil {
		log.Warn("cannot identify the requester", zap.Error(err))
		return session.Refused(session.ReasonPBXError), enforce.Recording{}
	}
	e.user = user
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	o, rec, err := session.DecidePlayback(sctx, a.o.Recordings, snap, user, rq.recording, a.o.Now())
	cancel()
	if err != nil {
		log.Warn("recording store unavailable", zap.Error(err))
	}
	e.target, e.queue, e.caller, e.recordedAt = rec.Target, rec.Queue, rec.Caller, rec.StartedAt
	return o, rec
}
