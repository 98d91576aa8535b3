package redis

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/enforce"
)

const (
	// KeyLeasePrefix + name is a lease (AcquireLease): a string holding
	// the holder's instance id, expiring with the lease.
	KeyLeasePrefix = "{cw:wd}:lease:"
	// KeyAllowPrefix + channel + ":" + action is the count of a channel's
	// unused allowances for an action (PutAllowance), expiring with the
	// last one put.
	KeyAllowPrefix = "{cw:wd}:allow:"
	// KeyUsedPrefix + channel + ":" + action remembers that an allowance
	// was taken (TakeAllowance), for its keep.
	KeyUsedPrefix = "{cw:wd}:used:"
)

// acquireLeaseScript takes a free lease or renews the caller's own.
// KEYS: lease. ARGV: holder, ttl (ms). Returns the holder after the call.
const acquireLeaseScript = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return cur
end
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`

// releaseLeaseScript deletes the lease when the caller holds it.
// KEYS: lease. ARGV: holder.
const releaseLeaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`

// takeAllowanceScript uses up one allowance and remembers the use.
// KEYS: allowance, use. ARGV: keep (ms). Returns 1 when there was one.
const takeAllowanceScript = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 0 then return 0 end
if n == 1 then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1`

var (
	acquireLease  = redis.NewScript(acquireLeaseScript)
	releaseLease  = redis.NewScript(releaseLeaseScript)
	takeAllowance = redis.NewScript(takeAllowanceScript)
)

// AcquireLease implements enforce.WatchdogStore: one script, so taking
// and renewing never race another daemon. Errors: enforce.ErrUnavailable.
func (r *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (string, error) {
	if name == "" || holder == "" || ttl < time.Millisecond {
		return "", errors.New("acquire lease: want a name, a holder and a ttl of at least 1ms")
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	cur, err := acquireLease.Run(ctx, r.c, []string{r.Key(KeyLeasePrefix + name)}, holder, ttl.Milliseconds()).Text()
	if err != nil {
		return "", r.wrap("acquire lease "+name, err)
	}
	return cur, nil
}

// ReleaseLease implements enforce.WatchdogStore. Errors:
// enforce.ErrUnavailable.
func (r *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	if err := releaseLease.Run(ctx, r.c, []string{r.Key(KeyLeasePrefix + name)}, holder).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return r.wrap("release lease "+name, err)
	}
	return nil
}

func (r *Store) allowKey(prefix, channel string, action enforce.Action) string {
	return r.Key(prefix + channel + ":" + action.String())
}

// PutAllowance implements enforce.WatchdogStore: INCR and PEXPIRE in one
// transaction. Errors: enforce.ErrUnavailable.
func (r *Store) PutAllowance(ctx context.Context, channel string, action enforce.Action, ttl time.Duration) error {
	if channel == "" || ttl < time.Millisecond {
		return errors.New("put allowance: want a channel and a ttl of at least 1ms")
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	k := r.allowKey(KeyAllowPrefix, channel, action)
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, k)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	if err != nil {
		return r.wrap("put allowance "+channel, err)
	}
	return nil
}

// TakeAllowance implements enforce.WatchdogStore. Errors:
// enforce.ErrUnavailable.
func (r *Store) TakeAllowance(ctx context.Context, channel string, action enforce.Action, keep time.Duration) (bool, error) {
	if keep < time.Millisecond {
		return false, errors.New("take allowance: want a keep of at least 1ms")
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	keys := []string{r.allowKey(KeyAllowPrefix, channel, action), r.allowKey(KeyUsedPrefix, channel, action)}
	n, err := takeAllowance.Run(ctx, r.c, keys, keep.Milliseconds()).Int()
	if err != nil {
		return false, r.wrap("take allowance "+channel, err)
	}
	return n == 1, nil
}

// AllowanceUsed implements enforce.WatchdogStore. Errors:
// enforce.ErrUnavailable.
func (r *Store) AllowanceUsed(ctx context.Context, channel string, action enforce.Action) (bool, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	n, err := r.c.Exists(ctx, r.allowKey(KeyUsedPrefix, channel, action)).Result()
	if err != nil {
		return false, r.wrap("read allowance use "+channel, err)
	}
	return n == 1, nil
}
