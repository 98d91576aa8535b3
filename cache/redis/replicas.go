package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/enforce"
)

// ErrNotReplicated says that a write was made on the primary but fewer
// replicas than Options.WaitReplicas confirmed it within
// Options.WaitTimeout: it is not acknowledged, because a failover of the
// primary now could lose it. It always comes with enforce.ErrUnavailable.
// The write may still be there (and usually is): read the store before
// writing again.
var ErrNotReplicated = errors.New("write not confirmed by the replicas")

// waiter is a connection that can WAIT (a *redis.Tx).
type waiter interface {
	Wait(ctx context.Context, numReplicas int, timeout time.Duration) *redis.IntCmd
}

// confirm waits until Options.WaitReplicas replicas have everything
// written so far on c's connection (WAIT). It does nothing when
// WaitReplicas is 0. Errors: ErrNotReplicated with enforce.ErrUnavailable.
func (r *Store) confirm(ctx context.Context, c waiter) error {
	want := r.opts.WaitReplicas
	if want <= 0 {
		return nil
	}
	n, err := c.Wait(ctx, want, r.opts.WaitTimeout).Result()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotReplicated, r.wrap("wait for replicas", err))
	}
	if int(n) < want {
		return fmt.Errorf("%w: %d of %d replicas confirmed it within %s: %w", ErrNotReplicated, n, want, r.opts.WaitTimeout, enforce.ErrUnavailable)
	}
	return nil
}

// confirmedWrite runs write and then confirm on one connection, to the
// node that holds key. go-redis hands out a connection of its own, in
// every topology, only to a WATCH: key is watched, but write's commands
// do not depend on it (no MULTI follows). confirmed reports whether write
// succeeded and only the confirmation failed (the write is then on the
// primary). Without WaitReplicas, write runs on the pooled client.
func (r *Store) confirmedWrite(ctx context.Context, key string, write func(c redis.Scripter) error) (written bool, err error) {
	if r.opts.WaitReplicas <= 0 {
		err := write(r.c)
		return err == nil, err
	}
	err = r.c.Watch(ctx, func(tx *redis.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		written = true
		return r.confirm(ctx, tx)
	}, key)
	return written, err
}
