package cache

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var _ TokenStore = (*Redis)(nil)

// addTokenScript stores a hash for a user unless it belongs to another.
// KEYS: tokens hash. ARGV: sha256, user. Returns 1, or 0 when taken.
const addTokenScript = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`

// revokeTokensScript removes every hash of a user atomically.
// KEYS: tokens hash. ARGV: user. Returns the number removed.
const revokeTokensScript = `
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
return n
`

// AdminTokens implements TokenStore (HGETALL of KeyAdminTokens).
func (r *Redis) AdminTokens(ctx context.Context) ([]AdminToken, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	m, err := r.c.HGetAll(ctx, r.Key(KeyAdminTokens)).Result()
	if err != nil {
		return nil, r.wrap("read admin tokens", err)
	}
	out := make([]AdminToken, 0, len(m))
	for h, u := range m {
		t := AdminToken{User: u, SHA256: h}
		if err := checkAdminToken(t); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		out = append(out, t)
	}
	sortTokens(out)
	return out, nil
}

// AddAdminToken implements TokenStore. Errors: ErrTokenTaken,
// enforce.ErrUnavailable.
func (r *Redis) AddAdminToken(ctx context.Context, t AdminToken) error {
	if err := checkAdminToken(t); err != nil {
		return err
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	ok, err := redis.NewScript(addTokenScript).Run(ctx, r.c, []string{r.Key(KeyAdminTokens)}, t.SHA256, t.User).Int()
	if err != nil {
		return r.wrap("add admin token", err)
	}
	if ok == 0 {
		return ErrTokenTaken
	}
	return nil
}

// RevokeAdminTokens implements TokenStore. Errors: enforce.ErrUnavailable.
func (r *Redis) RevokeAdminTokens(ctx context.Context, user string) (int, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	n, err := redis.NewScript(revokeTokensScript).Run(ctx, r.c, []string{r.Key(KeyAdminTokens)}, user).Int()
	if err != nil {
		return 0, r.wrap("revoke admin tokens", err)
	}
	return n, nil
}
