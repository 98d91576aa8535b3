package redis

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/enforce"
)

var _ enforce.TokenStore = (*Store)(nil)

// addTokenScript stores a hash for a name unless it belongs to another
// name, or to any name in the other role's hash.
// KEYS: the role's tokens hash, the other role's. ARGV: sha256, name.
// Returns 1, or 0 when taken.
const addTokenScript = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
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

// tokenKeys returns the hash of role's tokens and the other role's.
func (r *Store) tokenKeys(role string) (own, other string) {
	if role == enforce.TokenRoleCheck {
		return r.Key(KeyCheckTokens), r.Key(KeyAdminTokens)
	}
	return r.Key(KeyAdminTokens), r.Key(KeyCheckTokens)
}

// AdminTokens implements enforce.TokenStore (HGETALL of KeyAdminTokens and
// KeyCheckTokens).
func (r *Store) AdminTokens(ctx context.Context) ([]enforce.AdminToken, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	var out []enforce.AdminToken
	for _, role := range []string{"", enforce.TokenRoleCheck} {
		key, _ := r.tokenKeys(role)
		m, err := r.c.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, r.wrap("read tokens", err)
		}
		for h, u := range m {
			t := enforce.AdminToken{User: u, Role: role, SHA256: h}
			if err := t.Check(); err != nil {
				return nil, fmt.Errorf("%w: %w", enforce.ErrCorrupt, err)
			}
			out = append(out, t)
		}
	}
	enforce.SortAdminTokens(out)
	return out, nil
}

// AddAdminToken implements enforce.TokenStore. Errors: enforce.ErrTokenTaken,
// enforce.ErrUnavailable.
func (r *Store) AddAdminToken(ctx context.Context, t enforce.AdminToken) error {
	if err := t.Check(); err != nil {
		return err
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	own, other := r.tokenKeys(t.Role)
	ok := 1
	written, err := r.confirmedWrite(ctx, own, func(c redis.Scripter) (err error) {
		ok, err = redis.NewScript(addTokenScript).Run(ctx, c, []string{own, other}, t.SHA256, t.User).Int()
		return err
	})
	switch {
	case written && ok == 0:
		return enforce.ErrTokenTaken
	case written && err != nil:
		return fmt.Errorf("add admin token: %w", err)
	case err != nil:
		return r.wrap("add admin token", err)
	}
	return nil
}

// RevokeAdminTokens implements enforce.TokenStore. Errors: enforce.ErrUnavailable.
func (r *Store) RevokeAdminTokens(ctx context.Context, role, name string) (int, error) {
	if role != "" && role != enforce.TokenRoleCheck {
		return 0, fmt.Errorf("%w %q", enforce.ErrUnknownTokenRole, role)
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	own, _ := r.tokenKeys(role)
	var n int
	written, err := r.confirmedWrite(ctx, own, func(c redis.Scripter) (err error) {
		n, err = redis.NewScript(revokeTokensScript).Run(ctx, c, []string{own}, name).Int()
		return err
	})
	switch {
	case written && err != nil:
		return n, fmt.Errorf("revoke admin tokens: %w", err)
	case err != nil:
		return 0, r.wrap("revoke admin tokens", err)
	}
	return n, nil
}
