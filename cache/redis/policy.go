package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/cache/internal/wire"
	"github.com/callwarden/callwarden/enforce"
)

// Writable implements enforce.PolicyStore: Store is always writable.
func (r *Store) Writable() error { return nil }

// applyAttempts bounds how often an unconditional apply retries after
// losing a race with another writer.
const applyAttempts = 5

// hsetChunk is the number of fields written per HSET, to keep commands of
// a 100k-user apply at a reasonable size.
const hsetChunk = 5000

// policyCmds are the replies of one read of the whole policy.
type policyCmds struct {
	schema, gen, protected *redis.StringCmd
	profiles, users        *redis.MapStringStringCmd
}

func (r *Store) queuePolicyRead(p redis.Pipeliner) *policyCmds {
	return &policyCmds{
		schema:    p.Get(context.Background(), r.Key(KeySchema)),
		gen:       p.Get(context.Background(), r.Key(KeyGeneration)),
		profiles:  p.HGetAll(context.Background(), r.Key(KeyProfiles)),
		users:     p.HGetAll(context.Background(), r.Key(KeyUsers)),
		protected: p.Get(context.Background(), r.Key(KeyProtected)),
	}
}

// decode turns the replies into a policy, checking the schema.
func (c *policyCmds) decode(r *Store) (enforce.Policy, uint64, error) {
	str := func(cmd *redis.StringCmd) (string, error) {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			return "", nil
		}
		return v, err
	}
	schema, err := str(c.schema)
	if err != nil {
		return enforce.Policy{}, 0, r.wrap("read policy", err)
	}
	if err := checkSchema(schema); err != nil {
		return enforce.Policy{}, 0, err
	}
	genS, err := str(c.gen)
	if err != nil {
		return enforce.Policy{}, 0, r.wrap("read policy", err)
	}
	gen, err := parseGeneration(genS)
	if err != nil {
		return enforce.Policy{}, 0, err
	}
	profiles, err := c.profiles.Result()
	if err != nil {
		return enforce.Policy{}, 0, r.wrap("read profiles", err)
	}
	users, err := c.users.Result()
	if err != nil {
		return enforce.Policy{}, 0, r.wrap("read users", err)
	}
	prot, err := str(c.protected)
	if err != nil {
		return enforce.Policy{}, 0, r.wrap("read protected", err)
	}
	p, ignored, err := wire.DecodePolicy(profiles, users, prot)
	if err != nil {
		return enforce.Policy{}, 0, err
	}
	r.reportIgnored("policy", ignored)
	return p, gen, nil
}

// Policy implements enforce.PolicyStore: one MULTI/EXEC reads the schema,
// the generation and every entry, so the policy returned is exactly the one
// of that generation. Profiles come sorted by name, users by id. An empty
// store returns an empty policy at generation 0. Errors:
// enforce.ErrUnavailable, enforce.ErrSchemaVersion, enforce.ErrCorrupt.
func (r *Store) Policy(ctx context.Context) (enforce.Policy, uint64, error) {
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	var cmds *policyCmds
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cmds = r.queuePolicyRead(p)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return enforce.Policy{}, 0, r.wrap("read policy", err)
	}
	return cmds.decode(r)
}

// ApplyPolicy implements enforce.PolicyStore. It validates p (nothing is
// written when it is invalid: enforce.ErrInvalidPolicy), then, under WATCH
// of the schema and generation keys, reads the current policy, checks pre,
// computes the diff and writes only the entries that changed plus the new
// generation in one MULTI/EXEC: readers never see half of it. When pre
// does not hold, or another writer commits first, it returns
// enforce.ErrConflict; an unconditional apply retries a few times instead.
// IfGeneration(0) applies only to a store never written. An apply that
// changes nothing keeps the generation. After a change it publishes the
// new generation on ChannelChanges; a failed publish is only logged
// (Loaders' periodic check catches up). With Options.WaitReplicas, the
// apply is acknowledged once the replicas have it; otherwise it answers
// ErrNotReplicated (the generation is written on the primary, and
// published). Errors also: enforce.ErrUnavailable,
// enforce.ErrSchemaVersion, enforce.ErrCorrupt.
func (r *Store) ApplyPolicy(ctx context.Context, p enforce.Policy, pre enforce.Precondition) (uint64, enforce.PolicyDiff, error) {
	n, enc, err := wire.Normalize(p)
	if err != nil {
		return 0, enforce.PolicyDiff{}, err
	}
	ctx, cancel := r.callContext(ctx)
	defer cancel()
	for range applyAttempts {
		var (
			gen         uint64
			diff        enforce.PolicyDiff
			unconfirmed error
		)
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			var cmds *policyCmds
			if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				cmds = r.queuePolicyRead(p)
				return nil
			}); err != nil && !errors.Is(err, redis.Nil) {
				return r.wrap("read policy", err)
			}
			cur, curGen, err := cmds.decode(r)
			if err != nil {
				return err
			}
			gen = curGen
			if err := pre.Check(curGen); err != nil {
				return err
			}
			diff = enforce.DiffPolicies(cur, n)
			if diff.Empty() {
				return nil
			}
			var incr *redis.IntCmd
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, r.Key(KeySchema), SchemaVersion, 0)
				r.queueHashChanges(ctx, p, KeyProfiles, enc.Profiles, diff.AddedProfiles, diff.ChangedProfiles, diff.RemovedProfiles)
				r.queueHashChanges(ctx, p, KeyUsers, enc.Users, diff.AddedUsers, diff.ChangedUsers, diff.RemovedUsers)
				p.Set(ctx, r.Key(KeyProtected), enc.Protected, 0)
				incr = p.Incr(ctx, r.Key(KeyGeneration))
				// WATCH holds the generation: the new one is curGen+1.
				r.queueChangelog(ctx, p, curGen+1, diff)
				return nil
			})
			if err != nil {
				return err
			}
			gen = uint64(incr.Val())
			unconfirmed = r.confirm(ctx, tx)
			return nil
		}, r.Key(KeySchema), r.Key(KeyGeneration), r.Key(KeyEpoch))
		switch {
		case errors.Is(err, redis.TxFailedErr):
			if gen, conditional := pre.Generation(); conditional {
				return 0, enforce.PolicyDiff{}, fmt.Errorf("apply on generation %d: another apply committed first: %w", gen, enforce.ErrConflict)
			}
			continue
		case classified(err):
			return gen, enforce.PolicyDiff{}, err
		case err != nil:
			return 0, enforce.PolicyDiff{}, r.wrap("apply policy", err)
		}
		return r.applied(ctx, gen, diff, unconfirmed)
	}
	return 0, enforce.PolicyDiff{}, fmt.Errorf("apply policy: lost %d races with other writers: %w", applyAttempts, enforce.ErrConflict)
}

// queueHashChanges writes the added and changed entries of a hash and
// deletes the removed ones.
func (r *Store) queueHashChanges(ctx context.Context, p redis.Pipeliner, key string, enc map[string]string, added, changed, removed []string) {
	args := make([]any, 0, 2*min(hsetChunk, len(added)+len(changed)))
	flush := func() {
		if len(args) > 0 {
			p.HSet(ctx, r.Key(key), args...)
			args = args[:0:0]
		}
	}
	for _, names := range [][]string{added, changed} {
		for _, name := range names {
			args = append(args, name, enc[name])
			if len(args) >= 2*hsetChunk {
				flush()
			}
		}
	}
	flush()
	for i := 0; i < len(removed); i += hsetChunk {
		p.HDel(ctx, r.Key(key), removed[i:min(i+hsetChunk, len(removed))]...)
	}
}
