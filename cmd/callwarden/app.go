package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/checkapi"
	"github.com/callwarden/callwarden/pbx/freeswitch"
	"github.com/callwarden/callwarden/pbx/httpauth"
	"github.com/callwarden/callwarden/pbx/session"
)

// profilesError marks a failure to load the profiles files at startup: bad
// input, as opposed to a failure of the process (a port in use).
type profilesError struct{ err error }

func (e *profilesError) Error() string { return "profiles: " + e.err.Error() }
func (e *profilesError) Unwrap() error { return e.err }

// configError marks a startup failure caused by the configuration beyond
// what Validate checks (an unreadable tokens file): bad input.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// appDeps are what the App gets from outside the config: how to open the
// shared store (Redis; tests inject an in-memory one).
type appDeps struct {
	open openStoreFunc
}

// App is the serving daemon: the snapshot decisions are made from, the
// HTTP check and admin APIs on one listener, its logger and metrics.
//
// A cache.Loader owns the snapshot decisions are made from, in both modes.
// With cfg.Redis.Addrs set, the policy lives in Redis: the Loader follows
// it (change notifications plus a periodic generation check, fail closed
// past cfg.Redis.Staleness), decisions and admin changes are audited to
// the Redis stream, and the admin API writes to Redis. Without Redis, the
// Loader's store is the profiles files (profilesFiles), read at start and
// on each Reload (SIGHUP) only; a file that fails to load keeps the last
// good snapshot, the audit trail is kept in memory, and admin writes
// answer 405 (read-only).
//
// NewApp builds it and binds the listener, Run serves until its context
// ends, Reload re-reads the policy, and Close releases what Run did not.
type App struct {
	cfg     config.Config
	log     *zap.Logger
	reg     *prometheus.Registry
	reloads *prometheus.CounterVec
	ln      net.Listener
	srv     *http.Server

	// decisionLog writes the per-check decision lines to log's output
	// through a buffer; stopDecisionLog flushes it and stops its timer.
	decisionLog     *zap.Logger
	stopDecisionLog func()

	// loader owns the snapshot decisions are made from; snapshot is its
	// Snapshot method.
	loader   *cache.Loader
	snapshot func() *enforce.Snapshot

	// Redis mode: the store, followed by the loader (Run).
	store store
	// File mode: the profiles files the loader reads, only on Reload.
	files *profilesFiles
	// audit writes decision records to the store off the request path
	// (Redis mode); Close flushes it.
	audit *cache.AsyncAuditor
	// pbxAudit is the auditor the PBX adapters write to: audit's PBX lane
	// in Redis mode.
	pbxAudit enforce.Auditor
	// dynTokens holds the admin token hashes stored in Redis, refreshed
	// every tokenPoll (Redis mode), beside the config's.
	dynTokens httpauth.DynamicTokens
	tokenPoll time.Duration

	// ast is the Asterisk ARI adapter; nil without asterisk.url.
	ast *pbxService[*asterisk.Adapter]
	// fs is the FreeSWITCH ESL adapter; nil without freeswitch.esl_address.
	fs *pbxService[*freeswitch.Adapter]
	// sessions is the live monitor session registry (Redis or memory).
	sessions *session.Registry
	// ready is what /readyz answers.
	ready func() error
	// upkeeps look after the recording catalogue: retention, foreign
	// recordings (app_recordings.go).
	upkeeps []*session.Upkeep
}

// NewApp builds the daemon from a validated cfg, logging to logOut: it
// opens Redis or loads the profiles files (a failure to load them is a
// *profilesError and nothing is served), and binds cfg.HTTP.Listen, so Addr
// is known before Run.
func NewApp(ctx context.Context, cfg config.Config, logOut io.Writer) (*App, error) {
	return newApp(ctx, cfg, logOut, appDeps{open: openRedis})
}

func newApp(ctx context.Context, cfg config.Config, logOut io.Writer, deps appDeps) (_ *App, err error) {
	logger, decisionLog, stopDecisionLog, err := newLogger(cfg.Log, logOut)
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg:             cfg,
		log:             logger,
		decisionLog:     decisionLog,
		stopDecisionLog: stopDecisionLog,
		reg:             prometheus.NewRegistry(),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callwarden_profile_reloads_total",
			Help: "Policy reloads (SIGHUP, or a change in Redis), by result; an error keeps the previous snapshot.",
		}, []string{"result"}),
	}
	// Both series exist from the start, so an alert on errors sees 0.
	a.reloads.WithLabelValues("ok")
	a.reloads.WithLabelValues("error")
	for _, c := range []prometheus.Collector{
		a.reloads,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := a.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	defer func() {
		if err != nil {
			a.stopDecisionLog()
		}
		if err != nil && a.audit != nil {
			_ = a.audit.Close(context.Background()) // nothing queued yet
		}
		if err != nil && a.store != nil {
			_ = a.store.Close()
		}
	}()

	tokens, err := adminTokens(cfg.Admin)
	if err != nil {
		return nil, &configError{err: err}
	}

	var (
		policy     enforce.PolicyStore
		auditLog   enforce.AuditLog
		recordings liveRecordingStore
		sessStore  enforce.SessionStore
		ready      func() error

		// decisionAudit receives the records of decisions (/v1/check);
		// pbxAudit those of the PBX adapters, in a lane of their own so
		// no flood of checks can fill it.
		decisionAudit, pbxAudit enforce.Auditor
	)
	if len(cfg.Redis.Addrs) > 0 {
		if len(cfg.Profiles) > 0 {
			// Redis is the source of truth; files are applied with
			// `callwarden profiles apply`, never served beside it.
			logger.Warn("profiles files ignored: serving the policy stored in Redis (apply them with `callwarden profiles apply`)",
				zap.Strings("files", cfg.Profiles))
		}
		if a.store, err = deps.open(ctx, cfg.Redis, logger.Named("redis")); err != nil {
			return nil, fmt.Errorf("open redis: %w", err)
		}
		poll := min(time.Second, cfg.Redis.Staleness/3)
		loadFailures, err := registerStoreMetrics(a.reg, a.store)
		if err != nil {
			return nil, err
		}
		if err := a.newLoader(cache.LoaderOptions{
			Store:        a.store,
			Incremental:  a.store,
			Watch:        a.store.Watch,
			Generation:   a.store.Generation,
			PollInterval: poll,
			Staleness:    cfg.Redis.Staleness,
			OnReload: func(_ uint64, _ time.Duration, err error) {
				if err != nil {
					a.reloads.WithLabelValues("error").Inc()
					loadFailures.WithLabelValues(cache.LoadFailureCause(err)).Inc()
				} else {
					a.reloads.WithLabelValues("ok").Inc()
				}
			},
		}); err != nil {
			return nil, err
		}
		// A first load now, so a reachable store is served from the first
		// request; if it fails, Run keeps trying and /readyz says why.
		if err := a.loader.Reload(ctx); err != nil {
			logger.Warn("first policy load failed; retrying in the background", zap.Error(err))
		}
		a.tokenPoll = poll
		if err := a.refreshTokens(ctx); err != nil {
			logger.Warn("admin tokens stored in Redis not loaded; retrying in the background", zap.Error(err))
		}
		policy, auditLog, recordings, sessStore = a.store, a.store, a.store, a.store
		// Decisions are audited through bounded queues and batched
		// writes, so a slow Redis never delays an answer; admin changes
		// stay synchronous (auditLog). The PBX adapters have a lane of
		// their own, drained first: they refuse an allow whose record
		// cannot be queued, so the HTTP checks must never fill it. Drops
		// are counted per lane (callwarden_audit_dropped_total{lane}),
		// logged, and a PBX-lane drop or a failing writer makes /readyz
		// answer 503.
		a.audit = cache.NewAsyncAuditor(a.store, cache.AsyncAuditOptions{
			QueueSize:    cfg.Audit.HTTPQueueSize,
			PBXQueueSize: cfg.Audit.PBXQueueSize,
			BatchSize:    cfg.Audit.BatchSize,
			DegradedFor:  cfg.Audit.PBXDropUnreadyFor,
			Logger:       logger,
		})
		// It writes until a.audit.Close at shutdown, on a context that
		// outlives ctx so that Close can still flush.
		go func() { _ = a.audit.Run(context.WithoutCancel(ctx)) }()
		decisionAudit, pbxAudit = a.audit.Lane(cache.LaneHTTP), a.audit.Lane(cache.LanePBX)
		ready = allReady(a.loader.Ready, a.audit.Ready)
		if err := registerAuditMetrics(a.reg, a.audit); err != nil {
			return nil, err
		}
	} else {
		// The Loader is not Run in file mode: the files are read at
		// start and on Reload (SIGHUP), never polled. Reloads are counted
		// by Reload, the first load is not one; both are logged here in
		// terms of files, so the Loader's own account of a store (and of
		// a staleness bound files do not have) is not logged.
		a.files = &profilesFiles{files: cfg.Profiles}
		if err := a.newLoader(cache.LoaderOptions{Store: a.files, Logger: zap.NewNop()}); err != nil {
			return nil, err
		}
		if err := a.loader.Reload(ctx); err != nil {
			return nil, asProfilesError(err)
		}
		profiles, users := a.files.counts()
		logger.Info("profiles loaded", zap.Uint64("generation", a.generation()), zap.Strings("files", cfg.Profiles),
			zap.Int("profiles", profiles), zap.Int("users", users))
		// The admin API reads the snapshot decisions are made from, not
		// the file on disk: a broken file then changes neither, and the
		// ETag is the generation Reload logs.
		policy = snapshotPolicy{snapshot: a.snapshot}
		auditLog = memory.NewAuditLog(memory.AuditOptions{MaxLen: memoryAuditLen})
		decisionAudit, pbxAudit = auditLog, auditLog
		recordings, sessStore = memory.NewRecordings(), memory.NewSessions()
	}

	a.pbxAudit = pbxAudit
	if a.sessions, err = newSessions(sessStore, recordings, a.snapshot, logger.Named("sessions"), a.reg); err != nil {
		return nil, err
	}
	// Only daemons that name siblings share a watchdog lease: a lone
	// daemon always watches its Asterisk, even when another PBX's daemon
	// uses the same Redis and the same (default) PBX name.
	var shared enforce.WatchdogStore
	if a.store != nil && len(cfg.Asterisk.Siblings) > 0 {
		shared = a.store
	}
	if a.ast, err = newAsterisk(cfg.Asterisk, a.snapshot, pbxAudit, recordings, a.sessions, shared, logger.Named("asterisk"), a.reg); err != nil {
		return nil, err
	}
	// The PBXs' recording audio, by PBX name; FreeSWITCH's is added once
	// its adapter is built, before anything is served.
	audio := pbxAudio{}
	if a.ast != nil {
		audio[a.ast.adapter.PBX()] = a.ast.adapter.StoredAudio()
	}
	auth := httpauth.AnyOf(httpauth.NewTokenSet(tokens), &a.dynTokens)
	admin, err := adminapi.NewAdmin(adminapi.AdminOptions{
		Store:       policy,
		Snapshot:    a.snapshot,
		Auth:        auth,
		Codec:       configCodec{},
		Auditor:     auditLog,
		AuditReader: auditLog,
		Recordings:  recordings,
		Catalogue:   recordings,
		Audio:       audio,
		Logger:      logger.Named("admin"),
		// The live sessions and recordings in progress (/v1/sessions).
		Sessions:       a.sessions,
		LiveRecordings: recordings,
	})
	if err != nil {
		return nil, err
	}
	h, err := checkapi.New(checkapi.Options{
		Snapshot: a.snapshot,
		Logger:   logger.Named("check"),
		// The per-check line goes through a buffer flushed every
		// decisionLogFlush: written unbuffered, under the log's lock, it
		// cost more CPU than the decision.
		DecisionLogger: a.decisionLog.Named("check"),
		Registry:       a.reg,
		Ready:          ready,
		Auditor:        decisionAudit,
		Admin:          admin,
		// Validate has checked that none-on-loopback comes with a
		// loopback listen address.
		CheckAuth:  checkapi.CheckAuth(cfg.HTTP.CheckAuth),
		Auth:       auth,
		CheckRate:  cfg.HTTP.CheckRate,
		CheckBurst: cfg.HTTP.CheckBurst,
	})
	if err != nil {
		return nil, err
	}
	a.ready = h.Ready
	// Likewise, FreeSWITCH's daemons share a watchdog only when told to.
	var fsShared enforce.WatchdogStore
	if a.store != nil && cfg.FreeSWITCH.WatchdogLease {
		fsShared = a.store
	}
	if a.fs, err = newFreeSWITCH(cfg.FreeSWITCH, a.snapshot, pbxAudit, recordings, a.sessions, fsShared, logger.Named("freeswitch"), a.reg); err != nil {
		return nil, err
	}
	if a.fs != nil && cfg.FreeSWITCH.RecordingsLocalDir != "" {
		audio[a.fs.adapter.PBX()] = freeswitch.SharedDir{Dir: cfg.FreeSWITCH.RecordingsLocalDir}
	}
	a.upkeeps = newUpkeeps(cfg.Recordings, recordings, audio, auditLog, logger.Named("recordings"))
	var lc net.ListenConfig
	a.ln, err = lc.Listen(ctx, "tcp", cfg.HTTP.Listen)
	if err != nil {
		a.fs.close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTP.Listen, err)
	}
	a.srv = &http.Server{
		Handler: h,
		// Checks and scrapes are small and fast: the read timeout bounds
		// a whole exchange, so a slow client cannot hold a connection.
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(logger.Named("http")),
	}
	// Shutdown waits for handlers; a session stream's ends only when told.
	a.srv.RegisterOnShutdown(admin.CloseStreams)
	return a, nil
}

// snapshotPolicy is the admin API's read-only view of file mode: the
// policy and generation of the snapshot the Loader serves, which only a
// successful Reload replaces. It holds nothing itself. Writes are
// enforce.ErrReadOnly: the files are the source of truth.
type snapshotPolicy struct {
	snapshot func() *enforce.Snapshot
}

// Policy implements enforce.PolicyStore.
func (s snapshotPolicy) Policy(context.Context) (enforce.Policy, uint64, error) {
	snap := s.snapshot()
	if snap == nil {
		return enforce.Policy{}, 0, fmt.Errorf("profiles files: no snapshot loaded: %w", enforce.ErrUnavailable)
	}
	return snap.Policy(), snap.Generation(), nil
}

// Writable implements enforce.PolicyStore: always enforce.ErrReadOnly, so
// the admin API answers every write 405 up front.
func (snapshotPolicy) Writable() error { return fmt.Errorf("profiles files: %w", enforce.ErrReadOnly) }

// ApplyPolicy implements enforce.PolicyStore: always enforce.ErrReadOnly.
func (s snapshotPolicy) ApplyPolicy(context.Context, enforce.Policy, enforce.Precondition) (uint64, enforce.PolicyDiff, error) {
	return 0, enforce.PolicyDiff{}, s.Writable()
}

// allReady is ready when every check is, and otherwise says why each one
// is not.
func allReady(checks ...func() error) func() error {
	return func() error {
		var errs []error
		for _, c := range checks {
			if err := c(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// memoryAuditLen bounds the in-memory audit trail of a daemon serving
// profiles files.
const memoryAuditLen = 10000

// decisionLogFlush is how long a decision line may wait in its buffer
// before it is written.
const decisionLogFlush = 100 * time.Millisecond

// newLogger builds the zap logger for c, writing to w. It writes nowhere
// else: no library gets to pick the process's stderr behind our back.
// decisions writes to w too, with the same level and encoding, through a
// 256 kB buffer flushed at least every decisionLogFlush (whole lines only,
// under the same lock as log's): a line per check costs a copy instead of
// a write system call. stop flushes it and ends its flush timer.
func newLogger(c config.Log, w io.Writer) (log, decisions *zap.Logger, stop func(), err error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("log.level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch c.Format {
	case "json", "":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, nil, nil, fmt.Errorf("log.format: unknown format %q (want json or console)", c.Format)
	}
	ws := zapcore.Lock(zapcore.AddSync(w))
	buffered := &zapcore.BufferedWriteSyncer{WS: ws, FlushInterval: decisionLogFlush}
	log = zap.New(zapcore.NewCore(enc, ws, lvl), zap.ErrorOutput(ws))
	decisions = zap.New(zapcore.NewCore(enc.Clone(), buffered, lvl), zap.ErrorOutput(ws))
	return log, decisions, func() { _ = buffered.Stop() }, nil
}

// Addr is the address the API listens on, with the actual port when the
// configured one was 0.
func (a *App) Addr() net.Addr { return a.ln.Addr() }

// Snapshot returns the snapshot decisions are currently made from; nil
// when none is loaded or the store has been unreachable for too long.
func (a *App) Snapshot() *enforce.Snapshot { return a.snapshot() }

// generation is the current snapshot's generation, 0 without one.
func (a *App) generation() uint64 {
	if s := a.snapshot(); s != nil {
		return s.Generation()
	}
	return 0
}

// Ready reports what /readyz answers: nil once the daemon can serve
// decisions, else why it cannot.
func (a *App) Ready() error { return a.ready() }

// Registry returns the registry served on /metrics.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Run serves the API until ctx ends, then shuts down gracefully within
// cfg.HTTP.ShutdownTimeout. It returns nil after a clean shutdown. Run may
// be called once.
func (a *App) Run(ctx context.Context) error {
	if a.store != nil {
		lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = a.loader.Run(lctx) // returns nil once lctx ends
		}()
		// The loader outlives the HTTP server's graceful shutdown, so
		// requests in flight still decide from a live snapshot.
		waitTokens := a.followTokens(lctx, a.tokenPoll)
		defer func() { stop(); <-done; waitTokens() }()
	}
	// The session registry stops after the adapters ended their sessions.
	defer a.runSessions(ctx)()
	defer a.runUpkeeps(ctx)()
	// The ARI adapter stops (and cleans up its calls) before the loader.
	defer a.ast.start(ctx)()
	defer a.fs.start(ctx)()
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	a.log.Info("serving", zap.String("addr", a.Addr().String()), zap.Uint64("generation", a.generation()))
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", zap.Duration("timeout", a.cfg.HTTP.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	err := a.srv.Shutdown(sctx)
	<-errc // Serve has returned http.ErrServerClosed.
	if err != nil {
		_ = a.srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	a.log.Info("stopped")
	return nil
}

// Reload re-reads the policy (the profiles files, or Redis) through the
// Loader, which swaps the new snapshot in atomically. On any error the
// current snapshot stays, the failure is logged and counted, and the error
// is returned: a bad file never changes a decision.
func (a *App) Reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if a.files == nil {
		return a.loader.Reload(ctx)
	}
	gen := a.generation()
	if err := a.loader.Reload(ctx); err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.log.Error(fmt.Sprintf("profiles reload failed, keeping generation %d", gen),
			zap.Uint64("generation", gen), zap.Strings("files", a.cfg.Profiles), zap.Error(asProfilesError(err).err))
		return fmt.Errorf("reload profiles: %w", err)
	}
	profiles, users := a.files.counts()
	a.reloads.WithLabelValues("ok").Inc()
	a.log.Info("profiles reloaded", zap.Uint64("generation", a.generation()), zap.Strings("files", a.cfg.Profiles),
		zap.Int("profiles", profiles), zap.Int("users", users))
	return nil
}

// Close releases the listener and the server's connections; it is safe
// after Run and when Run was never called.
func (a *App) Close() error {
	a.fs.close() // a no-op once Run has run
	err := a.srv.Close()
	if lerr := a.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	if a.audit != nil {
		// Flush the queued decision records before the store closes.
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
		if aerr := a.audit.Close(ctx); aerr != nil {
			a.log.Error("audit flush at shutdown", zap.Error(aerr), zap.Uint64("dropped_total", a.audit.Dropped()))
		}
		cancel()
	}
	a.stopDecisionLog()
	if a.store != nil {
		if serr := a.store.Close(); serr != nil && err == nil {
			err = serr
		}
	}
	_ = a.log.Sync() // stderr often cannot be synced; nothing to do about it
	return err
}
