package main

import (
	"context"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// pbxAudio reaches each PBX's recording audio by the PBX's name, the one
// its recordings carry (Recording.PBX): several PBXs may share a daemon.
type pbxAudio map[string]enforce.RecordingAudio

var _ enforce.RecordingAudio = pbxAudio{}

func (m pbxAudio) of(rec enforce.Recording) (enforce.RecordingAudio, error) {
	if a, ok := m[rec.PBX]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("recording %s: this daemon reaches no audio of PBX %q: %w", rec.ID, rec.PBX, enforce.ErrNotFound)
}

// OpenAudio implements enforce.RecordingAudio. Errors: enforce.ErrNotFound
// also for a PBX this daemon does not reach.
func (m pbxAudio) OpenAudio(ctx context.Context, rec enforce.Recording) (enforce.Audio, error) {
	a, err := m.of(rec)
	if err != nil {
		return enforce.Audio{}, err
	}
	return a.OpenAudio(ctx, rec)
}

// DeleteAudio implements enforce.RecordingAudio. Errors: enforce.ErrNotFound
// for a PBX this daemon does not reach.
func (m pbxAudio) DeleteAudio(ctx context.Context, rec enforce.Recording) error {
	a, err := m.of(rec)
	if err != nil {
		return err
	}
	return a.DeleteAudio(ctx, rec)
}

// newUpkeeps builds the catalogue's upkeep from cfg: the retention sweep
// over every PBX's audio, and one importer of foreign recordings per PBX
// that lists its stored recordings (recordings.import_foreign).
func newUpkeeps(cfg config.Recordings, cat enforce.RecordingCatalogue, audio pbxAudio, audit enforce.Auditor, log *zap.Logger) []*session.Upkeep {
	var ups []*session.Upkeep
	if retain := cfg.RetainFor(); retain > 0 && len(audio) > 0 {
		ups = append(ups, &session.Upkeep{Catalogue: cat, Audio: audio, Audit: audit, Retain: retain,
			Batch: cfg.SweepBatch, Interval: cfg.SweepInterval, Logger: log})
	}
	if cfg.ImportForeign {
		for pbx, a := range audio {
			if l, ok := a.(enforce.ForeignLister); ok {
				ups = append(ups, &session.Upkeep{Catalogue: cat, Audio: a, Foreign: l, PBX: pbx,
					Interval: cfg.SweepInterval, Logger: log.With(zap.String("pbx", pbx))})
			}
		}
	}
	return ups
}

// runUpkeeps runs the catalogue's upkeeps until the returned function is
// called.
func (a *App) runUpkeeps(ctx context.Context) (stop func()) {
	uctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, u := range a.upkeeps {
		wg.Go(func() { _ = u.Run(uctx) })
	}
	return func() { cancel(); wg.Wait() }
}
