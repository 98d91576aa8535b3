package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/cache/internal/wire"
	"github.com/callwarden/callwarden/enforce"
)

// SchemaVersion is the version of the key schema this code reads and
// writes (docs/redis.md). A store whose schema key holds another value is
// refused with enforce.ErrSchemaVersion.
const SchemaVersion = "1"

// DefaultPrefix is the key prefix when Options.Prefix is empty.
const DefaultPrefix = "callwarden:"

// Key names of schema version 1, after the prefix. Each family shares one
// Redis Cluster hash tag ({cw}, {cw:rec}, {cw:audit}) so the keys a
// transaction or script touches live in one slot.
const (
	// KeySchema holds SchemaVersion.
	KeySchema = "{cw}:schema"
	// KeyGeneration holds the policy generation, an integer bumped by
	// every apply that changes something.
	KeyGeneration = "{cw}:gen"
	// KeyProfiles is a hash: profile name -> profile JSON.
	KeyProfiles = "{cw}:profiles"
	// KeyUsers is a hash: user id -> user (assignment) JSON.
	KeyUsers = "{cw}:users"
	// KeyProtected holds the protected users and queues as JSON.
	KeyProtected = "{cw}:protected"
	// KeyEpoch holds a random id taken when the store is first written
	// (and again after it was emptied): the history generations count in.
	KeyEpoch = "{cw}:epoch"
	// KeyChangelog is a sorted set: one JSON entry per generation (scored
	// by it) naming the profiles and users that generation changed, the
	// last wire.ChangelogKeep generations.
	KeyChangelog = "{cw}:changelog"
	// KeyAdminTokens is a hash: hex SHA-256 of an admin API token -> the
	// user it authenticates (enforce.TokenStore).
	KeyAdminTokens = "{cw}:tokens"
	// KeyCheckTokens is a hash: hex SHA-256 of a check token -> its name.
	// It is a hash of its own, beside KeyAdminTokens, so the admin hashes
	// stored before roles existed are read unchanged; a hash is in at most
	// one of the two.
	KeyCheckTokens = "{cw}:check_tokens"
	// ChannelChanges is the pub/sub channel an apply publishes the new
	// generation on (decimal).
	ChannelChanges = "{cw}:changes"
	// KeyRecordingPrefix + id holds a recording's JSON.
	KeyRecordingPrefix = "{cw:rec}:rec:"
	// KeyActivePrefix + target is a sorted set of the target's active or
	// paused recordings, scored by start time (unix ms).
	KeyActivePrefix = "{cw:rec}:active:"
	// KeyCatalogue is the catalogue's index of every recording: a sorted
	// set of enforce.CatalogueKey members, all scored 0, so that it is
	// ordered (and paged) by member (ZRANGE BYLEX). KeyCatalogueAgent and
	// KeyCatalogueQueue, followed by an agent or a queue, are the same per
	// agent and per queue.
	KeyCatalogue      = "{cw:rec}:idx"
	KeyCatalogueAgent = "{cw:rec}:idx:agent:"
	KeyCatalogueQueue = "{cw:rec}:idx:queue:"
	// KeyAudit is the audit stream; entries have fields rec (canonical
	// JSON), prev and hash (hex SHA-256 chain).
	KeyAudit = "{cw:audit}:audit"
	// KeyAuditHead holds the hash of the last record appended (the next
	// record's prev). Kept apart from the stream so that deleting the last
	// entry is detected when the next one is appended.
	KeyAuditHead = "{cw:audit}:head"
)

// Options configure the Store store. One block serves a standalone
// server (one address), Sentinel (MasterName set) or Cluster (several
// addresses, or ClusterMode). Every library option is set explicitly: the
// client reads no environment variable.
type Options struct {
	// Addrs are host:port seeds; Sentinel addresses when MasterName is set.
	Addrs []string
	// MasterName selects Sentinel failover.
	MasterName string
	// ClusterMode forces a Cluster client even with a single seed.
	ClusterMode bool
	// Username and Password authenticate (ACL user, or password only).
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to Sentinels.
	SentinelUsername, SentinelPassword string
	// DB is the database number (standalone and Sentinel only).
	DB int
	// TLS, when set, encrypts connections.
	TLS *tls.Config
	// Prefix starts every key (default DefaultPrefix). It must not contain
	// '{' or '}': the hash tags are callwarden's.
	Prefix string
	// DialTimeout, ReadTimeout and WriteTimeout bound socket operations
	// (defaults 2s, 2s, 2s).
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// CallTimeout bounds a call whose context has no deadline (default 5s).
	CallTimeout time.Duration
	// PoolSize is the connection pool size per node (default 10).
	PoolSize int
	// WaitReplicas, when positive, makes every admin write (policy
	// applies and patches, token changes, audit appends) wait until that
	// many replicas have it (WAIT) before it is acknowledged, so that a
	// failover of the primary cannot silently lose it; WaitTimeout bounds
	// the wait (default 1s). A write the replicas did not confirm in time
	// answers ErrNotReplicated (docs/redis.md, "High availability").
	WaitReplicas int
	WaitTimeout  time.Duration
	// Audit bounds the audit stream.
	Audit AuditOptions
	// Logger receives warnings (e.g. a failed change notification).
	Logger *zap.Logger
}

// AuditOptions bound the audit stream (wire.AuditOptions). Zero values
// keep everything.
type AuditOptions = wire.AuditOptions

// Store is callwarden's shared store on Redis: the policy
// (enforce.PolicyStore, with Watch and Generation for Loaders), recording
// metadata (enforce.RecordingStore) and the hash-chained audit stream
// (enforce.AuditLog). It is safe for concurrent use. Errors caused by Redis being
// unreachable wrap enforce.ErrUnavailable.
type Store struct {
	c       redis.UniversalClient
	opts    Options
	log     *zap.Logger
	changes *redis.Script
	// appendBatch appends chained batches (AuditBatch); head is the chain
	// head it last saw and headID that record's id ("" when unknown),
	// guarded by headMu, which also keeps one batch at a time per store.
	appendBatch *redis.Script
	headMu      sync.Mutex
	head        string
	headID      string
	// ignoredActions counts the stored action names this version does
	// not know, dropped while decoding reads (see wire.DecodePolicy).
	ignoredActions atomic.Uint64
}

var (
	_ enforce.PolicyStore        = (*Store)(nil)
	_ enforce.RecordingCatalogue = (*Store)(nil)
	_ enforce.AuditLog           = (*Store)(nil)
)

// New checks opts and returns a store; it does not connect (the
// client connects on first use and reconnects by itself). Call Check at
// start to verify reachability and the schema version, and Close at the
// end.
func New(opts Options) (*Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: at least one address is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q must not contain '{' or '}'", opts.Prefix)
	}
	if opts.MasterName != "" && opts.ClusterMode {
		return nil, errors.New("redis: Sentinel (master name) and Cluster mode are exclusive")
	}
	if (opts.ClusterMode || len(opts.Addrs) > 1 && opts.MasterName == "") && opts.DB != 0 {
		return nil, errors.New("redis: Cluster supports database 0 only")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DialTimeout, 2*time.Second)
	def(&opts.ReadTimeout, 2*time.Second)
	def(&opts.WriteTimeout, 2*time.Second)
	def(&opts.CallTimeout, 5*time.Second)
	def(&opts.WaitTimeout, time.Second)
	if opts.WaitReplicas < 0 {
		return nil, errors.New("redis: WaitReplicas must not be negative")
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 10
	}
	if opts.Audit.Now == nil {
		opts.Audit.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                    opts.Addrs,
		MasterName:               opts.MasterName,
		IsClusterMode:            opts.ClusterMode,
		Username:                 opts.Username,
		Password:                 opts.Password,
		SentinelUsername:         opts.SentinelUsername,
		SentinelPassword:         opts.SentinelPassword,
		DB:                       opts.DB,
		TLSConfig:                opts.TLS,
		Protocol:                 3,
		ClientName:               "callwarden",
		DialTimeout:              opts.DialTimeout,
		DialerRetries:            2,
		DialerRetryTimeout:       100 * time.Millisecond,
		ReadTimeout:              opts.ReadTimeout,
		WriteTimeout:             opts.WriteTimeout,
		ContextTimeoutEnabled:    true,
		PoolSize:                 opts.PoolSize,
		PoolTimeout:              opts.CallTimeout,
		MaxRetries:               1,
		MinRetryBackoff:          8 * time.Millisecond,
		MaxRetryBackoff:          512 * time.Millisecond,
		ConnMaxIdleTime:          5 * time.Minute,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	if cc, ok := c.(*redis.ClusterClient); ok {
		watchNodes(cc)
	}
	return &Store{c: c, opts: opts, log: opts.Logger.Named("redis"),
		changes: redis.NewScript(changesScript), appendBatch: redis.NewScript(appendBatchScript)}, nil
}

// IgnoredActions returns how many stored action names this version does
// not know were dropped from grants while decoding policy reads, in total
// (each read of an entry counts again): non-zero means a newer
// callwarden, or a hand edit, wrote actions this daemon cannot enforce.
func (r *Store) IgnoredActions() uint64 { return r.ignoredActions.Load() }

// reportIgnored counts and logs, once per read, the unknown actions a
// decode dropped.
func (r *Store) reportIgnored(read string, ignored []wire.IgnoredAction) {
	if len(ignored) == 0 {
		return
	}
	r.ignoredActions.Add(uint64(len(ignored)))
	const shown = 10
	where := make([]string, 0, min(len(ignored), shown))
	for _, ig := range ignored[:min(len(ignored), shown)] {
		where = append(where, fmt.Sprintf("profile %q grant %d: %q", ig.Profile, ig.Grant, ig.Action))
	}
	r.log.Warn("stored grants list actions this callwarden does not know; they are ignored (the rest of each grant applies)",
		zap.String("read", read), zap.Int("count", len(ignored)), zap.Strings("first", where))
}

// Close closes the client's connections.
func (r *Store) Close() error {
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}

// Key returns the full name of a schema key (one of the Key* constants,
// plus an id for the *Prefix ones).
func (r *Store) Key(name string) string { return r.opts.Prefix + name }

// Check pings Redis and verifies the schema version. Errors:
// enforce.ErrUnavailable, enforce.ErrSchemaVersion.
func (r *Store) Check(ctx context.Context) error {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	v, err := r.c.Get(ctx, r.Key(KeySchema)).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return r.wrap("check schema", err)
	}
	return checkSchema(v)
}

func checkSchema(v string) error {
	if v != "" && v != SchemaVersion {
		return fmt.Errorf("%w: store has schema %q, this callwarden knows %q", enforce.ErrSchemaVersion, v, SchemaVersion)
	}
	return nil
}

// callContext gives ctx a deadline when it has none.
func (r *Store) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, r.opts.CallTimeout)
}

// wrap classifies a go-redis error once: replies from a working server
// (wrong type, script error) are returned as is; everything else (network,
// timeout, closed client, a server that is loading, read-only, down or
// out of clients) wraps enforce.ErrUnavailable.
func (r *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var reply redis.Error
	if errors.As(err, &reply) && !redis.IsLoadingError(err) && !redis.IsReadOnlyError(err) &&
		!redis.IsClusterDownError(err) && !redis.IsTryAgainError(err) && !redis.IsMasterDownError(err) &&
		!redis.IsMaxClientsError(err) {
		return fmt.Errorf("redis %s: %w", op, err)
	}
	return fmt.Errorf("redis %s: %w: %w", op, enforce.ErrUnavailable, err)
}

// classified reports whether err is already one of the errors the store
// answers with (conflict, unavailable, schema version, corrupt), to be
// returned as is rather than wrapped again.
func classified(err error) bool {
	return errors.Is(err, enforce.ErrConflict) || errors.Is(err, enforce.ErrUnavailable) ||
		errors.Is(err, enforce.ErrSchemaVersion) || errors.Is(err, enforce.ErrCorrupt)
}

// Generation returns the policy generation (0 for an empty store), for
// LoaderOptions.Generation. Errors: enforce.ErrUnavailable,
// enforce.ErrSchemaVersion, enforce.ErrCorrupt.
func (r *Store) Generation(ctx context.Context) (uint64, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	vals, err := r.c.MGet(ctx, r.Key(KeySchema), r.Key(KeyGeneration)).Result()
	if err != nil {
		return 0, r.wrap("generation", err)
	}
	schema, _ := vals[0].(string)
	if err := checkSchema(schema); err != nil {
		return 0, err
	}
	g, _ := vals[1].(string)
	return parseGeneration(g)
}

func parseGeneration(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	g, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: generation %q: %w", enforce.ErrCorrupt, s, err)
	}
	return g, nil
}

// Watch subscribes to change notifications (LoaderOptions.Watch): the
// returned channel receives each new generation, coalesced to the latest
// when the reader is slow. go-redis pings the subscription and reconnects
// it by itself; notifications published while it is down are lost, which
// the Loader's periodic generation check covers. The channel is closed
// when ctx is done. Errors: enforce.ErrUnavailable when the first
// subscription fails.
func (r *Store) Watch(ctx context.Context) (<-chan uint64, error) {
	ps := r.c.Subscribe(ctx, r.Key(ChannelChanges))
	sctx, cancel := r.callContext(ctx)
	_, err := ps.Receive(sctx)
	cancel()
	if err != nil {
		_ = ps.Close()
		return nil, r.wrap("subscribe", err)
	}
	msgs := ps.Channel(
		redis.WithChannelSize(16),
		redis.WithChannelHealthCheckInterval(time.Second),
		redis.WithChannelPingTimeout(r.opts.ReadTimeout),
		redis.WithChannelReconnectTimeout(r.opts.DialTimeout+r.opts.ReadTimeout),
	)
	out := make(chan uint64, 1)
	go func() {
		defer close(out)
		defer func() { _ = ps.Close() }()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				gen, err := strconv.ParseUint(m.Payload, 10, 64)
				if err != nil {
					r.log.Warn("ignoring a malformed change notification", zap.String("payload", m.Payload))
					continue
				}
				wire.Notify(out, gen)
			}
		}
	}()
	return out, nil
}
