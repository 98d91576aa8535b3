package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch"
)

// freeswitchService is the ESL adapter of a serving daemon; nil when
// freeswitch.esl_address is not configured. Its methods are nil-safe so
// serve.go calls them unconditionally.
type freeswitchService struct {
	adapter *freeswitch.Adapter
	log     *zap.Logger
}

// newFreeSWITCH builds the ESL adapter from cfg (nil, nil when
// cfg.ESLAddress is empty); it binds the outbound socket listener.
func newFreeSWITCH(cfg config.FreeSWITCH, snapshot func() *enforce.Snapshot, auditor enforce.Auditor,
	logger *zap.Logger, reg prometheus.Registerer) (*freeswitchService, error) {
	if cfg.ESLAddress == "" {
		return nil, nil
	}
	a, err := freeswitch.New(freeswitch.Options{
		ESLAddress:     cfg.ESLAddress,
		ESLPassword:    cfg.ESLPassword.Reveal(),
		OutboundListen: cfg.OutboundListen,
		PBX:            cfg.PBX,
		Timeout:        cfg.Timeout,
		Watchdog:       freeswitch.WatchdogMode(cfg.Watchdog),
		Snapshot:       snapshot,
		Auditor:        auditor,
		Logger:         logger,
		Registerer:     reg,
	})
	if err != nil {
		return nil, fmt.Errorf("freeswitch: %w", err)
	}
	return &freeswitchService{adapter: a, log: logger}, nil
}

// start runs the adapter until ctx ends; the returned func waits for it to
// have stopped. A nil service does nothing.
func (s *freeswitchService) start(ctx context.Context) (wait func()) {
	if s == nil {
		return func() {}
	}
	return runAdapter(ctx, s.adapter.Run, s.log, "freeswitch adapter stopped")
}

// close releases the listener of an adapter that never ran.
func (s *freeswitchService) close() {
	if s != nil {
		s.adapter.Close()
	}
}
