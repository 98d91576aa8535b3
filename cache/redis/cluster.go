package redis

import (
	"context"
	"errors"
	"net"

	"github.com/redis/go-redis/v9"
)

// reloadOnFailure is a hook on each node client of a Cluster client: a
// node that cannot be dialed, or whose connection fails, makes the
// Cluster client reload its slot map. go-redis reloads it only on MOVED,
// on READONLY and every ClusterStateReloadInterval: a primary that died
// answers neither, so until a reload every command for its slots goes on
// dialing it, attempt after attempt, long after a replica took over (in
// the lab, a Loader's generation check spent 8.7 s so). The reload is
// asynchronous and one at a time (go-redis' LazyReload); the command's
// next attempt picks the node the new map names.
type reloadOnFailure struct{ cluster *redis.ClusterClient }

// watchNodes installs reloadOnFailure on every node c connects to.
func watchNodes(c *redis.ClusterClient) {
	c.OnNewNode(func(node *redis.Client) { node.AddHook(reloadOnFailure{cluster: c}) })
}

func (h reloadOnFailure) failed(err error) {
	if err == nil {
		return
	}
	var reply redis.Error
	if errors.As(err, &reply) && !redis.IsClusterDownError(err) && !redis.IsTryAgainError(err) {
		return // a reply from a working node (MOVED and READONLY reload already)
	}
	h.cluster.ReloadState(context.Background())
}

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		h.failed(err)
		return conn, err
	}
}

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !errors.Is(err, redis.Nil) {
			h.failed(err)
		}
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if !errors.Is(err, redis.Nil) {
			h.failed(err)
		}
		return err
	}
}
