package main

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/pbx/checkapi"
)

// readyPoll is how often serve checks readiness until the service
// manager has been told READY=1.
const readyPoll = 100 * time.Millisecond

// serve runs the daemon until ctx is cancelled (SIGINT/SIGTERM), reloading
// the policy (profiles files, or Redis) on every value from e.reload
// (SIGHUP).
//
// Configuration precedence is flags > CALLWARDEN_* environment > --config
// file > config.Default(), then cfg.Validate().
func (e *env) serve(ctx context.Context, args []string) int {
	fs := e.newFlagSet("serve", "serve [-f FILE...] [--listen ADDR] [--config FILE] [--log-level LEVEL]  (profiles files, or redis.addrs in --config / CALLWARDEN_REDIS_ADDRS)")
	var files stringList
	fileFlags(fs, &files, false)
	listen := fs.String("listen", "", "HTTP listen `ADDR`ESS, e.g. 127.0.0.1:8080 (default from config, :8080)")
	configFile := fs.String("config", "", "daemon config `FILE` (YAML)")
	logLevel := fs.String("log-level", "", "log `LEVEL`: debug, info, warn or error (default from config, info)")
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}

	cfg := config.Default()
	if *configFile != "" {
		var err error
		if cfg, err = config.LoadFile(*configFile); err != nil {
			return e.badInput("--config: %s", oneLine(err))
		}
	}
	if err := cfg.ApplyEnv(e.getenv); err != nil {
		return e.badInput("environment: %s", oneLine(err))
	}
	if len(files) > 0 {
		cfg.Profiles = files
	}
	if *listen != "" {
		cfg.HTTP.Listen = *listen
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		return e.badInput("config: %s", oneLine(err))
	}
	if len(cfg.Profiles) == 0 && len(cfg.Redis.Addrs) == 0 {
		return e.badInput("serve: no profiles files and no Redis (give -f FILE, CALLWARDEN_PROFILES or profiles: in --config, or redis.addrs)")
	}
	if containsDash(cfg.Profiles) {
		return e.badInput("serve: -f - is not supported: profiles are re-read on SIGHUP")
	}

	// A unit of Type=notify names its socket in NOTIFY_SOCKET; read here,
	// before anything starts, so a malformed one is bad input.
	notifier, err := checkapi.NewNotifier(e.getenv("NOTIFY_SOCKET"))
	if err != nil {
		return e.badInput("%v", err)
	}

	app, err := newApp(ctx, cfg, e.stderr, appDeps{open: e.open})
	if err != nil {
		var pe *profilesError
		if errors.As(err, &pe) {
			return e.badInput("%s", oneLine(pe.err))
		}
		var ce *configError
		if errors.As(err, &ce) {
			return e.badInput("%v", ce)
		}
		return e.failure("%v", err)
	}
	defer app.Close()
	defer keepGCHeadroom(e.getenv)()

	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	// The service manager hears READY=1 when /readyz first answers ready,
	// and STOPPING=1 when the shutdown starts (or Run failed).
	nctx, stopNotify := context.WithCancel(ctx)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		if err := notifier.WhenReady(nctx, app.Ready, readyPoll); err != nil {
			app.log.Warn("systemd notification failed", zap.Error(err))
		}
	}()
	defer func() { stopNotify(); <-notified }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return e.failure("%v", err)
			}
			return exitOK
		case <-e.reload:
			// Reload logs its outcome; a failure keeps the old snapshot.
			_ = app.Reload()
		}
	}
}
