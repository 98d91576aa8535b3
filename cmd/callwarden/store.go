package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpapi"
)

// store is everything the daemon and the admin commands use of the shared
// store, a composite of enforce's contracts: the policy, its change log and
// notifications (for a cache.Loader), entry-by-entry writes (for the admin
// API), recording metadata, the audit trail and the token hashes shared by
// every daemon. The Redis store is the real one; tests use memoryStore.
type store interface {
	enforce.PolicyStore
	enforce.ChangeSource
	enforce.PatchStore
	enforce.RecordingStore
	enforce.AuditLog
	enforce.TokenStore
	io.Closer
}

// openStoreFunc opens the store described by a validated Redis config.
type openStoreFunc func(ctx context.Context, c config.Redis, log *zap.Logger) (store, error)

// openRedis opens redisstore.Store and checks that it answers with a schema
// this callwarden knows. It also routes go-redis' own log lines
// (reconnects, pool and pub/sub trouble) to log (see redisLogger).
func openRedis(ctx context.Context, c config.Redis, log *zap.Logger) (store, error) {
	redis.SetLogger(redisLogger{log: log.Named("go-redis")})
	conn, err := c.Conn()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	var tlsConf *tls.Config
	if conn.TLS {
		tlsConf = &tls.Config{ServerName: conn.ServerName, MinVersion: tls.VersionTLS12}
	}
	r, err := redisstore.New(redisstore.Options{
		Addrs:      conn.Addrs,
		MasterName: c.MasterName,
		Username:   conn.Username,
		Password:   conn.Password.Reveal(),
		DB:         conn.DB,
		TLS:        tlsConf,
		Prefix:     c.Prefix,
		Logger:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := r.Check(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// redisLogger bridges go-redis' logger to zap. go-redis has one logger per
// process (redis.SetLogger), so the last store opened sets it; its lines
// carry addresses and error text, never credentials. They are warnings:
// go-redis only logs when something goes wrong (a failed dial, a bad
// pub/sub connection discarded and reconnected).
type redisLogger struct{ log *zap.Logger }

// Printf implements go-redis' internal.Logging.
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// refreshTokens loads the admin token hashes stored in Redis into
// a.dynTokens. On error the previous set stays: every admin request needs
// Redis anyway (and a live snapshot to be authorized), so a stale set
// cannot be used for anything while Redis is unreachable, and a token
// revoked meanwhile stops working at the first refresh after Redis is back.
func (a *App) refreshTokens(ctx context.Context) error {
	ts, err := a.store.AdminTokens(ctx)
	if err != nil {
		return fmt.Errorf("read admin tokens: %w", err)
	}
	hs := make([]httpapi.TokenHash, 0, len(ts))
	for _, t := range ts {
		th, err := httpapi.ParseRoleTokenHash(httpapi.Role(t.Role), t.User, t.SHA256)
		if err != nil {
			return fmt.Errorf("admin tokens in Redis: %w", err)
		}
		hs = append(hs, th)
	}
	a.dynTokens.Set(hs)
	return nil
}

// followTokens refreshes the stored admin tokens every interval until ctx
// ends, logging when refreshing starts and stops failing; the returned
// function waits for it to stop.
func (a *App) followTokens(ctx context.Context, every time.Duration) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := a.refreshTokens(ctx)
			switch {
			case err != nil && !failing:
				a.log.Warn("admin tokens stored in Redis not refreshed; keeping the last ones read", zap.Error(err))
			case err == nil && failing:
				a.log.Info("admin tokens stored in Redis refreshed again")
			}
			failing = err != nil
		}
	}()
	return func() { <-done }
}

// registerStoreMetrics exports the counters of a policy store followed
// by a Loader: failed loads by cause (cache.LoadFailureCause), and the
// stored action names this version ignores when the store can count
// them (redisstore.Store). A store that keeps failing to load its current
// generation fails closed after the staleness bound; these say why.
func registerStoreMetrics(reg *prometheus.Registry, st store) (*prometheus.CounterVec, error) {
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callwarden_policy_load_failures_total",
		Help: "Failed loads of the store's current policy generation, by cause: unavailable (the store did not answer), schema, corrupt (an entry this version cannot decode), invalid (a policy that does not validate, e.g. a user on a missing profile), other. Past redis.staleness without a successful load, decisions fail closed.",
	}, []string{"cause"})
	// Every series exists from the start, so an alert sees 0.
	for _, c := range []string{cache.CauseUnavailable, cache.CauseSchema, cache.CauseCorrupt, cache.CauseInvalid, cache.CauseOther} {
		failures.WithLabelValues(c)
	}
	cs := []prometheus.Collector{failures}
	if ig, ok := st.(interface{ IgnoredActions() uint64 }); ok {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "callwarden_store_unknown_actions_total",
			Help: "Action names in stored grants that this callwarden does not know, ignored while reading the policy (counted at each read): a newer callwarden or a hand edit wrote them.",
		}, func() float64 { return float64(ig.IgnoredActions()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return failures, nil
}

// registerAuditMetrics exports the asynchronous audit writer's counters,
// the drops and queue lengths per lane.
func registerAuditMetrics(reg *prometheus.Registry, a *cache.AsyncAuditor) error {
	for _, c := range []prometheus.Collector{
		auditLaneCollector{a: a},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "callwarden_audit_written_total",
			Help: "Decision audit records written to the audit stream.",
		}, func() float64 { return float64(a.Written()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register audit metrics: %w", err)
		}
	}
	return nil
}

var (
	auditDroppedDesc = prometheus.NewDesc("callwarden_audit_dropped_total",
		"Decision audit records dropped, by lane (lane full, Redis unreachable for longer than the retry bound, or not flushed at shutdown). "+
			"A dropped http record changes no decision; a pbx record that cannot be queued turns the PBX's allow into a deny (audit_unavailable).",
		[]string{"lane"}, nil)
	auditQueueDesc = prometheus.NewDesc("callwarden_audit_queue_length",
		"Decision audit records waiting to be written, by lane.", []string{"lane"}, nil)
)

// auditLaneCollector reports an AsyncAuditor's per-lane counters as they
// are when scraped; every lane is reported from the start, so an alert on
// drops sees 0.
type auditLaneCollector struct{ a *cache.AsyncAuditor }

func (auditLaneCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- auditDroppedDesc
	ch <- auditQueueDesc
}

func (c auditLaneCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range cache.Lanes {
		// NewConstMetric fails only on a label count that does not match
		// the Desc, which these constants rule out.
		if m, err := prometheus.NewConstMetric(auditDroppedDesc, prometheus.CounterValue, float64(c.a.DroppedIn(l)), l.String()); err == nil {
			ch <- m
		}
		if m, err := prometheus.NewConstMetric(auditQueueDesc, prometheus.GaugeValue, float64(c.a.QueuedIn(l)), l.String()); err == nil {
			ch <- m
		}
	}
}

// memoryStore is an in-process store (memory.Store and friends), for
// tests of the commands and the daemon without Redis.
type memoryStore struct {
	*memory.Store
	*memory.AuditLog
	*memory.Recordings
	*memory.Tokens
}

func newMemoryStore() *memoryStore {
	return &memoryStore{memory.NewStore(), memory.NewAuditLog(memory.AuditOptions{}), memory.NewRecordings(), memory.NewTokens()}
}

// Close implements store; there is nothing to release.
func (*memoryStore) Close() error { return nil }

// storeFlags are the flags of the commands that talk to the store: the
// daemon config (for its redis block) and overrides of its address and
// key prefix.
type storeFlags struct {
	config string
	addrs  stringList
	prefix string
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "daemon config `FILE` (YAML), for its redis block")
	fs.Var(&f.addrs, "redis-addr", "Redis `ADDR`ESS host:port (repeatable), or one redis://[user:password@]host:port/db URL (rediss:// for TLS); default from config or CALLWARDEN_REDIS_ADDRS")
	fs.StringVar(&f.prefix, "redis-prefix", "", "Redis key `PREFIX` (default from config, callwarden:)")
}

// errNoRedis says that a store command has nowhere to go.
var errNoRedis = errors.New("no Redis configured (give --redis-addr, CALLWARDEN_REDIS_ADDRS or redis.addrs in --config)")

// loadConfig applies the precedence flags > env > file > defaults for the
// store commands and validates the result.
func (e *env) loadConfig(f *storeFlags) (config.Config, error) {
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.LoadFile(f.config); err != nil {
			return cfg, fmt.Errorf("--config: %s", oneLine(err))
		}
	}
	if err := cfg.ApplyEnv(e.getenv); err != nil {
		return cfg, fmt.Errorf("environment: %s", oneLine(err))
	}
	if len(f.addrs) > 0 {
		cfg.Redis.Addrs = f.addrs
	}
	if f.prefix != "" {
		cfg.Redis.Prefix = f.prefix
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %s", oneLine(err))
	}
	return cfg, nil
}

// openStore opens the store for a store command. It returns the exit
// status to stop with (bad input, or failure to reach the store) or -1.
func (e *env) openStore(ctx context.Context, f *storeFlags) (store, int) {
	cfg, err := e.loadConfig(f)
	if err != nil {
		return nil, e.badInput("%v", err)
	}
	if len(cfg.Redis.Addrs) == 0 {
		return nil, e.badInput("%v", errNoRedis)
	}
	st, err := e.open(ctx, cfg.Redis, zap.NewNop())
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: %v\n", err)
		return nil, exitFailure
	}
	return st, -1
}

// cliUser names the person running an admin command in the audit trail:
// the CLI holds the Redis credentials, so it acts as an administrator.
func (e *env) cliUser() string {
	if u := e.getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// auditCLI records an admin change made from the command line. A failure
// is reported but does not undo the change.
func (e *env) auditCLI(ctx context.Context, st store, target, detail string) {
	err := st.Audit(ctx, enforce.AuditRecord{
		Time: e.now(), Source: "admin", User: e.cliUser(), Action: enforce.ProfileAssign.String(),
		Target: target, Decision: "allow", Reason: enforce.ReasonGranted.String(),
		Detail: "cli: " + detail,
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "callwarden: warning: audit record not written: %v\n", err)
	}
}
