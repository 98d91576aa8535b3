package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
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
	enforce.RecordingCatalogue
	enforce.ActiveRecordingLister
	enforce.SessionStore
	enforce.AuditLog
	enforce.TokenStore
	enforce.WatchdogStore
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
		Addrs:        conn.Addrs,
		MasterName:   c.MasterName,
		Username:     conn.Username,
		Password:     conn.Password.Reveal(),
		DB:           conn.DB,
		TLS:          tlsConf,
		Prefix:       c.Prefix,
		WaitReplicas: c.WaitReplicas,
		WaitTimeout:  c.WaitTimeout,
		Logger:       log,
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

// newStoreFlagSet is newFlagSet for a command that talks to the store,
// with the store flags registered.
func (e *env) newStoreFlagSet(name, synopsis string) (*flag.FlagSet, *storeFlags) {
	fs := e.newFlagSet(name, synopsis)
	sf := new(storeFlags)
	sf.register(fs)
	return fs, sf
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

// withStore opens the store the flags describe, runs fn on it and closes
// it: the one way every store command reaches the store. It returns fn's
// exit status, or the one to stop with when the store cannot be opened
// (bad input, or failure to reach it).
func (e *env) withStore(ctx context.Context, f *storeFlags, fn func(st store) int) int {
	cfg, err := e.loadConfig(f)
	if err != nil {
		return e.badInput("%v", err)
	}
	if len(cfg.Redis.Addrs) == 0 {
		return e.badInput("%v", errNoRedis)
	}
	st, err := e.open(ctx, cfg.Redis, zap.NewNop())
	if err != nil {
		return e.failure("%v", err)
	}
	defer st.Close()
	return fn(st)
}

// onStore parses a store command's flags (name, synopsis: its usage)
// and runs fn on the store they name.
func (e *env) onStore(ctx context.Context, args []string, name, synopsis string, fn func(st store) int) int {
	fs, sf := e.newStoreFlagSet(name, synopsis)
	if code := e.parseFlags(fs, args); code >= 0 {
		return code
	}
	return e.withStore(ctx, sf, fn)
}

// onStoreWith is onStore for a command of one positional argument (want
// names it in errors), given to fn.
func (e *env) onStoreWith(ctx context.Context, args []string, name, synopsis, want string, fn func(st store, arg string) int) int {
	fs, sf := e.newStoreFlagSet(name, synopsis)
	pos, code := e.parsePositional(fs, args, 1, want)
	if code >= 0 {
		return code
	}
	return e.withStore(ctx, sf, func(st store) int { return fn(st, pos[0]) })
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
