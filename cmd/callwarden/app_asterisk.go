package main

import (
	"fmt"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/inconshreveable/log15"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/session"
)

// newAsterisk builds the Stasis application from cfg (nil, nil when
// cfg.URL is empty). shared is the Redis store the daemons share the
// watchdog lease in, nil when serving a profiles file. Every library option is set from cfg: the ARI library
// never reads ARI_* variables. It also sends the ARI library's own logger
// (log15, a process-wide value of that library) to logger.
func newAsterisk(cfg config.Asterisk, snapshot func() *enforce.Snapshot, auditor enforce.Auditor,
	recordings enforce.RecordingStore, sessions *session.Registry, shared enforce.WatchdogStore, logger *zap.Logger, reg prometheus.Registerer) (*pbxService[*asterisk.Adapter], error) {
	if cfg.URL == "" {
		return nil, nil
	}
	ari.Logger.SetHandler(log15Bridge(logger.Named("ari")))
	a, err := asterisk.New(asterisk.Options{
		URL:          cfg.URL,
		WebsocketURL: cfg.WebsocketURL,
		User:         cfg.User,
		Password:     cfg.Password.Reveal(),
		App:          cfg.App,
		Timeout:      cfg.Timeout,
		Snapshot:     snapshot,
		Auditor:      auditor,
		Recordings:   recordings,
		Sessions:     sessions,
		Logger:       logger,
		Registerer:   reg,
		Watchdog:     asterisk.WatchdogMode(cfg.Watchdog),
		RefusalSound: cfg.RefusalSound,
		NotifySound:  cfg.NotifySound,
		PBX:          cfg.PBX,
		Siblings:     cfg.Siblings,
		Shared:       shared,
	})
	return newPBXService("asterisk", a, err, logger)
}

// log15Bridge forwards the ARI library's log15 records to zap.
func log15Bridge(l *zap.Logger) log15.Handler {
	return log15.FuncHandler(func(r *log15.Record) error {
		fields := make([]zap.Field, 0, len(r.Ctx)/2)
		for i := 0; i+1 < len(r.Ctx); i += 2 {
			fields = append(fields, zap.Any(fmt.Sprint(r.Ctx[i]), r.Ctx[i+1]))
		}
		switch r.Lvl {
		case log15.LvlCrit, log15.LvlError:
			l.Error(r.Msg, fields...)
		case log15.LvlWarn:
			l.Warn(r.Msg, fields...)
		case log15.LvlInfo:
			l.Info(r.Msg, fields...)
		default:
			l.Debug(r.Msg, fields...)
		}
		return nil
	})
}
