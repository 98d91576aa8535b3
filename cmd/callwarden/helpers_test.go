package main

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/callwarden/callwarden/config"
)

// runningDaemon is an App serving on a :0 port, as MustServe and
// MustRunDaemon start it.
type runningDaemon struct {
	app  *App
	base string
	// ctx is the daemon's context; Stop cancels it.
	ctx context.Context
	// Stop cancels the daemon, waits for Run to return and closes the
	// App; it returns Close's error and may be called more than once.
	Stop func() error
}

// MustServe starts the daemon of cfg as NewApp builds it, logging to logs,
// and stops it when the test ends unless the test stopped it first.
func MustServe(tb testing.TB, cfg config.Config, logs io.Writer) *runningDaemon {
	tb.Helper()
	return mustStart(tb, cfg, logs, appDeps{open: openRedis})
}

// MustRunDaemon starts adminConfig in Redis mode (the store is st, not a
// server), edited by edit when it is not nil, and stops it when the test
// ends unless the test stopped it first.
func MustRunDaemon(tb testing.TB, st store, edit func(*config.Config)) *runningDaemon {
	tb.Helper()
	cfg := adminConfig()
	cfg.Redis.Addrs = []string{"127.0.0.1:1"}
	if edit != nil {
		edit(&cfg)
	}
	return mustStart(tb, cfg, io.Discard, appDeps{open: openFake(st)})
}

func mustStart(tb testing.TB, cfg config.Config, logs io.Writer, deps appDeps) *runningDaemon {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	app, err := newApp(ctx, cfg, logs, deps)
	if err != nil {
		cancel()
		tb.Fatalf("NewApp: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = app.Run(ctx) }()
	var once sync.Once
	var closeErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			wg.Wait()
			closeErr = app.Close()
		})
		return closeErr
	}
	tb.Cleanup(func() { _ = stop() })
	return &runningDaemon{app: app, base: "http://" + app.Addr().String(), ctx: ctx, Stop: stop}
}
