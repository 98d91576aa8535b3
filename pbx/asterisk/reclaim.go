package asterisk

import (
	"context"
	"errors"
	"fmt"

	"github.com/CyCoreSystems/ari/v5"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// claimPBX hands the session registry what it needs to converge the records
// a dead daemon left on this Asterisk (session.Registry.Converge).
func (a *Adapter) claimPBX() {
	if a.o.Sessions == nil {
		return
	}
	a.o.Sessions.Claim(session.Claimant{PBX: a.o.PBX, Probe: prober{a}, Audit: a.audit, Recordings: a.recs, Timers: ariRecorder{a}})
}

// prober answers session.Prober from Asterisk's channels, bridges and live
// recordings.
type prober struct{ a *Adapter }

// SessionRuns reports whether a monitor bridge of this application still
// holds the session's supervisor channel (s.ChannelID, else s.Channel by
// name). After a restart the orphan sweep has ended every such bridge it
// found, so a crashed run's session no longer runs.
//
// The registry asks only about a dead daemon's sessions (its heartbeat
// expired). A sibling application's bridge (Options.Siblings) holding the
// supervisor is therefore one nobody supervises any more: it is ended
// here, audited as an orphan, and the session no longer runs. Without
// this the survivor would list it as ended while the supervisor goes on
// listening until the dead daemon comes back.
func (p prober) SessionRuns(ctx context.Context, s enforce.LiveSession) (bool, error) {
	if s.ChannelID == "" && s.Channel == "" {
		return false, nil
	}
	bridges, err := p.a.rest.bridges(ctx)
	if err != nil {
		return false, fmt.Errorf("list bridges: %w", err)
	}
	chans, err := p.a.rest.listChannels(ctx)
	if err != nil {
		return false, fmt.Errorf("list channels: %w", err)
	}
	byID := make(map[string]listedChannel, len(chans))
	for _, c := range chans {
		byID[c.ID] = c
	}
	holds := func(b ari.BridgeData) bool {
		for _, id := range b.ChannelIDs {
			if id == s.ChannelID || s.ChannelID == "" && byID[id].Name == s.Channel {
				return true
			}
		}
		return false
	}
	for _, b := range bridges {
		if kind, _, ok := p.a.ownedKind(b.ID); ok && kind == kindBridge && holds(b) {
			return true, nil
		}
		for _, app := range p.a.o.Siblings {
			if kind, _, ok := parseOwnedID(app, b.ID); ok && kind == kindBridge && holds(b) {
				p.a.endOrphanBridge(ctx, app, "of "+app+", whose daemon "+s.Instance+" died", b.ID, b.ChannelIDs, byID)
				return false, nil
			}
		}
	}
	return false, nil
}

// RecordingRuns reports whether Asterisk's live recording of rec is still
// recording or paused.
func (p prober) RecordingRuns(ctx context.Context, rec enforce.Recording) (bool, error) {
	lr, err := p.a.rest.liveRecording(ctx, rec.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("live recording %s: %w", rec.Name, err)
	}
	switch lr.State {
	case "queued", "recording", "paused":
		return true, nil
	}
	return false, nil
}

// reattachRecording re-attaches the recording whose snoop the orphan sweep
// found, when its metadata says it runs and Asterisk still records it: this
// process then owns the snoop, follows the recording's end and its limits.
// It reports whether it did; on false the sweep ends the snoop (fail
// closed) as any other orphan.
func (a *Adapter) reattachRecording(ctx context.Context, snoopID string, rec enforce.Recording) bool {
	if rec.State == enforce.RecordingStopped || rec.Channel != snoopID {
		return false
	}
	if runs, err := (prober{a}).RecordingRuns(ctx, rec); err != nil || !runs {
		return false
	}
	a.markOurs(snoopID)
	if err := a.recs.Reclaim(ctx, rec, true, ariRecorder{a}); err != nil {
		a.forget(snoopID)
		a.log.Warn("cannot re-attach a recording found after restart; ending it", zap.String("recording", rec.ID), zap.Error(err))
		return false
	}
	return true
}
