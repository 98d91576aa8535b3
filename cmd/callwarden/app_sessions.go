package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// liveRecordingStore is the recording store the daemon hands to the PBX
// adapters, which the admin API also lists the recordings in progress and
// the catalogue of.
type liveRecordingStore interface {
	enforce.RecordingCatalogue
	enforce.ActiveRecordingLister
}

// newSessions builds the daemon's live session registry over st (Redis,
// shared by every daemon, or this process's memory), converging the
// sessions and the recordings in progress (recs) a dead daemon left. Its
// instance id is the host name and a random suffix, so the records of a
// daemon that died name the host it ran on and are never taken for its
// successor's: they are found by their owner's expired heartbeat.
func newSessions(st enforce.SessionStore, recs enforce.ActiveRecordingLister, policy func() *enforce.Snapshot, logger *zap.Logger, reg prometheus.Registerer) (*session.Registry, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "callwarden"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return session.NewRegistry(session.RegistryOptions{
		Store: st, Recordings: recs, Instance: host + "-" + hex.EncodeToString(b[:]), Logger: logger, Registerer: reg,
		Policy: policy, // timers re-decide from the Loader's snapshot (nil past the staleness bound)
	})
}

// runSessions follows, until the returned function is called (after the
// PBX adapters stopped), the session ends other daemons ask for, beats
// this daemon's heartbeat and converges what dead daemons left.
func (a *App) runSessions(ctx context.Context) (stop func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.sessions.Run(rctx)
	}()
	return func() { cancel(); <-done }
}
