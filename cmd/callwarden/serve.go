package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpapi"
)

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
		fmt.Fprintf(e.stderr, "callwarden: %v\n", err)
		return exitFailure
	}
	defer app.Close()

	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(e.stderr, "callwarden: %v\n", err)
				return exitFailure
			}
			return exitOK
		case <-e.reload:
			// Reload logs its outcome; a failure keeps the old snapshot.
			_ = app.Reload()
		}
	}
}

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
// With cfg.Redis.Addrs set, the policy lives in Redis: a cache.Loader keeps
// the snapshot (change notifications plus a periodic generation check,
// fail closed past cfg.Redis.Staleness), decisions and admin changes are
// audited to the Redis stream, and the admin API writes to Redis. Without
// Redis, the profiles files are served: SIGHUP reloads them, the audit
// trail is kept in memory, and admin writes answer 405 (read-only).
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

	// snapshot returns the snapshot to decide from (loader or holder).
	snapshot func() *enforce.Snapshot

	// Redis mode: the store and the loader that owns the snapshot.
	store  store
	loader *cache.Loader
	// audit writes decision records to the store off the request path
	// (Redis mode); Close flushes it.
	audit *cache.AsyncAuditor
	// pbxAudit is the auditor the PBX adapters write to: audit's PBX lane
	// in Redis mode.
	pbxAudit enforce.Auditor
	// dynTokens holds the admin token hashes stored in Redis, refreshed
	// every tokenPoll (Redis mode), beside the config's.
	dynTokens httpapi.DynamicTokens
	tokenPoll time.Duration

	// File mode: holder owns the snapshot; mu serialises Reload so two
	// SIGHUPs cannot interleave their generations; gen is the generation
	// of the snapshot in holder.
	holder enforce.Holder
	mu     sync.Mutex
	gen    uint64

	// ast is the Asterisk ARI adapter; nil without asterisk.url.
	ast *asteriskService
}

// NewApp builds the daemon from a validated cfg, logging to logOut: it
// opens Redis or loads the profiles files (a failure to load them is a
// *profilesError and nothing is served), and binds cfg.HTTP.Listen, so Addr
// is known before Run.
func NewApp(ctx context.Context, cfg config.Config, logOut io.Writer) (*App, error) {
	return newApp(ctx, cfg, logOut, appDeps{open: openRedis})
}

func newApp(ctx context.Context, cfg config.Config, logOut io.Writer, deps appDeps) (_ *App, err error) {
	logger, err := newLogger(cfg.Log, logOut)
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg: cfg,
		log: logger,
		reg: prometheus.NewRegistry(),
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
		recordings enforce.RecordingStore
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
		a.loader, err = cache.NewLoader(cache.LoaderOptions{
			Store:        a.store,
			Incremental:  a.store,
			Watch:        a.store.Watch,
			Generation:   a.store.Generation,
			PollInterval: poll,
			Staleness:    cfg.Redis.Staleness,
			Logger:       logger,
			OnReload: func(_ uint64, _ time.Duration, err error) {
				if err != nil {
					a.reloads.WithLabelValues("error").Inc()
					loadFailures.WithLabelValues(cache.LoadFailureCause(err)).Inc()
				} else {
					a.reloads.WithLabelValues("ok").Inc()
				}
			},
		})
		if err != nil {
			return nil, err
		}
		// A first load now, so a reachable store is served from the first
		// request; if it fails, Run keeps trying and /readyz says why.
		if err := a.loader.Reload(ctx); err != nil {
			logger.Warn("first policy load failed; retrying in the background", zap.Error(err))
		}
		a.snapshot = a.loader.Snapshot
		a.tokenPoll = poll
		if err := a.refreshTokens(ctx); err != nil {
			logger.Warn("admin tokens stored in Redis not loaded; retrying in the background", zap.Error(err))
		}
		policy, auditLog, recordings = a.store, a.store, a.store
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
		snap, p, err := loadFiles(cfg.Profiles, 1)
		if err != nil {
			return nil, &profilesError{err: err}
		}
		a.holder.Store(snap)
		a.gen = 1
		logger.Info("profiles loaded", zap.Uint64("generation", 1), zap.Strings("files", cfg.Profiles),
			zap.Int("profiles", len(p.Profiles)), zap.Int("users", len(p.Users)))
		a.snapshot = a.holder.Load
		// The admin API reads the snapshot decisions are made from, not
		// the file on disk: a broken file then changes neither, and the
		// ETag is the generation Reload logs.
		policy = snapshotPolicy{snapshot: a.holder.Load}
		auditLog = memory.NewAuditLog(memory.AuditOptions{MaxLen: memoryAuditLen})
		decisionAudit, pbxAudit = auditLog, auditLog
		recordings = memory.NewRecordings()
	}

	a.pbxAudit = pbxAudit
	if a.ast, err = newAsterisk(cfg.Asterisk, a.snapshot, pbxAudit, recordings, logger.Named("asterisk"), a.reg); err != nil {
		return nil, err
	}
	auth := httpapi.AnyOf(httpapi.NewTokenSet(tokens), &a.dynTokens)
	admin, err := httpapi.NewAdmin(httpapi.AdminOptions{
		Store:       policy,
		Snapshot:    a.snapshot,
		Auth:        auth,
		Codec:       configCodec{},
		Auditor:     auditLog,
		AuditReader: auditLog,
		Recordings:  recordings,
		Logger:      logger.Named("admin"),
	})
	if err != nil {
		return nil, err
	}
	h, err := httpapi.New(httpapi.Options{
		Snapshot: a.snapshot,
		Logger:   logger.Named("check"),
		Registry: a.reg,
		Ready:    ready,
		Auditor:  decisionAudit,
		Admin:    admin,
		// Validate has checked that none-on-loopback comes with a
		// loopback listen address.
		CheckAuth:  httpapi.CheckAuth(cfg.HTTP.CheckAuth),
		Auth:       auth,
		CheckRate:  cfg.HTTP.CheckRate,
		CheckBurst: cfg.HTTP.CheckBurst,
	})
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	a.ln, err = lc.Listen(ctx, "tcp", cfg.HTTP.Listen)
	if err != nil {
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
	return a, nil
}

// snapshotPolicy is the read-only enforce.PolicyStore of file mode: the
// policy and generation of the snapshot in the App's holder, which only a
// successful Reload replaces. Writes are enforce.ErrReadOnly: the files
// are the source of truth.
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

// adminTokens gathers the token hashes (admin and check roles) of the
// config and of its tokens file.
func adminTokens(c config.Admin) ([]httpapi.TokenHash, error) {
	all := c.Tokens
	if c.TokensFile != "" {
		more, err := config.LoadTokensFile(c.TokensFile)
		if err != nil {
			return nil, err
		}
		all = append(slices.Clone(all), more...)
	}
	out := make([]httpapi.TokenHash, 0, len(all))
	for _, t := range all {
		name := t.User
		if t.Role == config.TokenRoleCheck {
			name = t.Name
		}
		th, err := httpapi.ParseRoleTokenHash(httpapi.Role(t.Role), name, t.SHA256)
		if err != nil {
			return nil, fmt.Errorf("admin tokens: %w", err)
		}
		out = append(out, th)
	}
	return out, nil
}

// loadFiles reads and compiles the profiles files into a snapshot of
// generation gen.
func loadFiles(files []string, gen uint64) (*enforce.Snapshot, enforce.Policy, error) {
	p, err := config.LoadProfiles(files...)
	if err != nil {
		return nil, p, err
	}
	s, err := enforce.NewSnapshot(p, gen)
	if err != nil {
		return nil, p, err
	}
	return s, p, nil
}

// newLogger builds the zap logger for c, writing to w. It writes nowhere
// else: no library gets to pick the process's stderr behind our back.
func newLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
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
		return nil, fmt.Errorf("log.format: unknown format %q (want json or console)", c.Format)
	}
	ws := zapcore.Lock(zapcore.AddSync(w))
	return zap.New(zapcore.NewCore(enc, ws, lvl), zap.ErrorOutput(ws)), nil
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

// Registry returns the registry served on /metrics.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Run serves the API until ctx ends, then shuts down gracefully within
// cfg.HTTP.ShutdownTimeout. It returns nil after a clean shutdown. Run may
// be called once.
func (a *App) Run(ctx context.Context) error {
	if a.loader != nil {
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
	// The ARI adapter stops (and cleans up its calls) before the loader.
	defer a.ast.start(ctx)()
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

// Reload re-reads the policy (the profiles files, or Redis) and swaps the
// new snapshot in atomically. On any error the current snapshot stays, the
// failure is logged and counted, and the error is returned: a bad file
// never changes a decision.
func (a *App) Reload() error {
	if a.loader != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		return a.loader.Reload(ctx)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next := a.gen + 1
	snap, p, err := loadFiles(a.cfg.Profiles, next)
	if err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.log.Error(fmt.Sprintf("profiles reload failed, keeping generation %d", a.gen),
			zap.Uint64("generation", a.gen), zap.Strings("files", a.cfg.Profiles), zap.Error(err))
		return fmt.Errorf("reload profiles: %w", err)
	}
	a.holder.Store(snap)
	a.gen = next
	a.reloads.WithLabelValues("ok").Inc()
	a.log.Info("profiles reloaded", zap.Uint64("generation", next), zap.Strings("files", a.cfg.Profiles),
		zap.Int("profiles", len(p.Profiles)), zap.Int("users", len(p.Users)))
	return nil
}

// Close releases the listener and the server's connections; it is safe
// after Run and when Run was never called.
func (a *App) Close() error {
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
	if a.store != nil {
		if serr := a.store.Close(); serr != nil && err == nil {
			err = serr
		}
	}
	_ = a.log.Sync() // stderr often cannot be synced; nothing to do about it
	return err
}
