package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/freeswitch"
	"github.com/callwarden/callwarden/pbx/session"
)

// newFreeSWITCH builds the ESL adapter from cfg (nil, nil when
// cfg.ESLAddress is empty); it binds the outbound socket listener. shared
// is the Redis store the daemons of one FreeSWITCH share the watchdog in
// (freeswitch.watchdog_lease), nil otherwise.
func newFreeSWITCH(cfg config.FreeSWITCH, snapshot func() *enforce.Snapshot, auditor enforce.Auditor,
	recordings enforce.RecordingStore, sessions *session.Registry, shared enforce.WatchdogStore, logger *zap.Logger, reg prometheus.Registerer) (*pbxService[*freeswitch.Adapter], error) {
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
		Recordings:     recordings,
		Sessions:       sessions,
		RecordingsDir:  cfg.RecordingsDir,
		Snapshot:       snapshot,
		Auditor:        auditor,
		Logger:         logger,
		Registerer:     reg,
		Shared:         shared,
	})
	return newPBXService("freeswitch", a, err, logger)
}

// The FreeSWITCH adapter binds its listener in New: pbxService.close
// releases it through this method.
var _ interface{ Close() } = (*freeswitch.Adapter)(nil)
