package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// store is everything the daemon and the admin commands use of the shared
// store: the policy with its change notifications, recording metadata and
// the audit trail. cache.Redis is the real one; tests use memoryStore.
type store interface {
	enforce.PolicyStore
	enforce.RecordingStore
	cache.AuditLog
	// Watch and Generation feed a cache.Loader.
	Watch(ctx context.Context) (<-chan uint64, error)
	Generation(ctx context.Context) (uint64, error)
	Close() error
}

// openStoreFunc opens the store described by a validated Redis config.
type openStoreFunc func(ctx context.Context, c config.Redis, log *zap.Logger) (store, error)

// openRedis opens cache.Redis and checks that it answers with a schema
// this callwarden knows.
func openRedis(ctx context.Context, c config.Redis, log *zap.Logger) (store, error) {
	r, err := cache.NewRedis(cache.RedisOptions{
		Addrs:      c.Addrs,
		MasterName: c.MasterName,
		Username:   c.Username,
		Password:   c.Password.Reveal(),
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

// memoryStore is an in-process store (cache.Memory and friends), for
// tests of the commands and the daemon without Redis.
type memoryStore struct {
	*cache.Memory
	*cache.MemoryAudit
	*cache.MemoryRecordings
}

func newMemoryStore() *memoryStore {
	return &memoryStore{cache.NewMemory(), cache.NewMemoryAudit(cache.AuditOptions{}), cache.NewMemoryRecordings()}
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
	fs.Var(&f.addrs, "redis-addr", "Redis `ADDR`ESS host:port (repeatable; default from config or CALLWARDEN_REDIS_ADDRS)")
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
