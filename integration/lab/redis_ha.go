package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The highly available Redis topologies of the lab: a Sentinel group (one
// primary, one replica, three Sentinels) and a Cluster (three primaries,
// three replicas), from the same image as the lab's single Redis
// (redis-server runs as a Sentinel with --sentinel). Each topology has a
// Docker network of its own, and everything is addressed by container IP
// (routable from the host on Linux): the addresses Sentinels and Cluster
// nodes announce are then the very addresses the test process dials, with
// no port mapping to translate.

// SentinelMaster is the name the lab's Sentinels monitor their primary as.
const SentinelMaster = "cwlab"

// Failover timing of the lab topologies: a node unreachable for this long
// is considered down (Sentinel down-after-milliseconds, Cluster
// cluster-node-timeout). Production values are larger; the tests measure
// callwarden, not Redis' detection delay.
const FailureDetection = time.Second

// RedisNode is one redis-server of a topology.
type RedisNode struct {
	// Addr is the node's container IP and port, e.g. 172.18.0.3:6379.
	Addr   string
	c      testcontainers.Container
	killed atomic.Bool
}

// ContainerID returns the node's container id.
func (n *RedisNode) ContainerID() string { return n.c.GetContainerID() }

// RedisTopology is a group of Redis containers on a network of its own.
type RedisTopology struct {
	net   *testcontainers.DockerNetwork
	mu    sync.Mutex
	nodes []*RedisNode

	closeOnce sync.Once
	closeErr  error
}

// RedisSentinel is a primary, its replicas and three Sentinels monitoring
// the primary as SentinelMaster (quorum 2).
type RedisSentinel struct {
	RedisTopology
	// SentinelAddrs are the Sentinels' container IP:26379.
	SentinelAddrs []string
	// Data are the primary (first, at start) and the replicas.
	Data []*RedisNode
}

// RedisCluster is three primaries, each with one replica.
type RedisCluster struct {
	RedisTopology
	// Nodes are the six nodes; the first three were the primaries at start.
	Nodes []*RedisNode
}

// Addrs returns every node's address (seeds for a Cluster client).
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// StartRedisSentinel starts a Sentinel group with replicas replicas (at
// least 1) and waits until the Sentinels know them all. Close removes it.
func StartRedisSentinel(ctx context.Context, replicas int) (_ *RedisSentinel, err error) {
	replicas = max(replicas, 1)
	s := &RedisSentinel{}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close(context.WithoutCancel(ctx)))
		}
	}()
	primary, err := s.start(ctx, dataNodeRequest())
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(primary.Addr)
	s.Data = []*RedisNode{primary}
	for range replicas {
		replica, err := s.start(ctx, dataNodeRequest("--replicaof", host, "6379"))
		if err != nil {
			return nil, err
		}
		s.Data = append(s.Data, replica)
	}
	conf := strings.Join([]string{
		"port 26379",
		"bind 0.0.0.0",
		"protected-mode no",
		"dir /tmp",
		fmt.Sprintf("sentinel monitor %s %s 6379 2", SentinelMaster, host),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", SentinelMaster, FailureDetection.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s 10000", SentinelMaster),
		fmt.Sprintf("sentinel parallel-syncs %s 1", SentinelMaster),
		"",
	}, "\n")
	sentinels, err := startAll(3, func() (*RedisNode, error) {
		req := s.request([]string{"/usr/bin/redis-server", "/etc/redis/sentinel.conf", "--sentinel"}, "26379",
			wait.ForLog("+monitor master"))
		req.Files = []testcontainers.ContainerFile{{
			Reader: strings.NewReader(conf), ContainerFilePath: "/etc/redis/sentinel.conf", FileMode: 0o644,
		}}
		return s.startRequest(ctx, req, "26379")
	})
	if err != nil {
		return nil, err
	}
	for _, n := range sentinels {
		s.SentinelAddrs = append(s.SentinelAddrs, n.Addr)
	}
	// Sentinels learn the replicas from the primary's INFO (every 10 s at
	// first): wait until each one knows them, so a failover can happen.
	for _, addr := range s.SentinelAddrs {
		if err := waitFor(ctx, "sentinel "+addr+" to know the replicas", func(ctx context.Context) (bool, error) {
			sc := redis.NewSentinelClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second})
			defer sc.Close()
			reps, err := sc.Replicas(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err
			}
			ok := 0
			for _, r := range reps {
				if r["flags"] == "slave" && r["master-link-status"] == "ok" {
					ok++
				}
			}
			return ok == replicas, nil
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Primary returns the address the Sentinels name as the primary now.
func (s *RedisSentinel) Primary(ctx context.Context) (string, error) {
	var errs []error
	for _, addr := range s.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel names the primary: %w", errors.Join(errs...))
}

// Node returns the data node at addr, or nil.
func (s *RedisSentinel) Node(addr string) *RedisNode {
	for _, n := range s.Data {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// StartRedisCluster starts six cluster nodes, joins them as three
// primaries with one replica each and waits until every node reports
// cluster_state:ok. Close removes it.
func StartRedisCluster(ctx context.Context) (_ *RedisCluster, err error) {
	c := &RedisCluster{}
	if err := c.open(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close(context.WithoutCancel(ctx)))
		}
	}()
	nodes, err := startAll(6, func() (*RedisNode, error) { return c.start(ctx, clusterNodeArgs()) })
	if err != nil {
		return nil, err
	}
	c.Nodes = nodes
	cmd := append([]string{"redis-cli", "--cluster", "create"}, c.Addrs()...)
	cmd = append(cmd, "--cluster-replicas", "1", "--cluster-yes")
	if _, err := containerExec(ctx, nodes[0].c, "redis-cli --cluster create", cmd...); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		rc := NewRedis(n.Addr)
		err := waitFor(ctx, "cluster node "+n.Addr+" to be ok", func(ctx context.Context) (bool, error) {
			info, err := rc.ClusterInfo(ctx).Result()
			return strings.Contains(info, "cluster_state:ok"), err
		})
		_ = rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// clusterNodeArgs are the arguments of a cluster node.
func clusterNodeArgs() []string {
	return dataNodeRequest("--cluster-enabled", "yes",
		"--cluster-config-file", "/tmp/nodes.conf",
		"--cluster-node-timeout", fmt.Sprint(FailureDetection.Milliseconds()),
		"--cluster-replica-validity-factor", "0")
}

// MasterOf returns the node that serves key's slot as primary now, and
// its cluster node id.
func (c *RedisCluster) MasterOf(ctx context.Context, key string) (*RedisNode, string, error) {
	var via *RedisNode
	for _, n := range c.Nodes {
		if !n.killed.Load() {
			via = n
			break
		}
	}
	if via == nil {
		return nil, "", errors.New("every cluster node was killed")
	}
	rc := NewRedis(via.Addr)
	defer rc.Close()
	slot, err := rc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, "", fmt.Errorf("cluster keyslot %s: %w", key, err)
	}
	ranges, err := rc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, "", fmt.Errorf("cluster slots: %w", err)
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			for _, n := range c.Nodes {
				if n.Addr == r.Nodes[0].Addr {
					return n, r.Nodes[0].ID, nil
				}
			}
			return nil, "", fmt.Errorf("slot %d is served by %s, not a node of the lab", slot, r.Nodes[0].Addr)
		}
	}
	return nil, "", fmt.Errorf("no node serves slot %d", slot)
}

// AddReplica starts one more node and makes it a replica of the primary
// that serves key, so that this primary keeps a replica after a failover
// (a write waiting for one replica can then be confirmed again).
func (c *RedisCluster) AddReplica(ctx context.Context, key string) (*RedisNode, error) {
	master, id, err := c.MasterOf(ctx, key)
	if err != nil {
		return nil, err
	}
	n, err := c.start(ctx, clusterNodeArgs())
	if err != nil {
		return nil, err
	}
	if _, err := containerExec(ctx, n.c, "redis-cli --cluster add-node", "redis-cli", "--cluster", "add-node", n.Addr, master.Addr,
		"--cluster-slave", "--cluster-master-id", id); err != nil {
		return nil, err
	}
	c.Nodes = append(c.Nodes, n)
	rc := NewRedis(master.Addr)
	defer rc.Close()
	if err := waitFor(ctx, "the new replica "+n.Addr+" to be in sync", func(ctx context.Context) (bool, error) {
		info, err := rc.Info(ctx, "replication").Result()
		host, _, _ := net.SplitHostPort(n.Addr)
		return strings.Contains(info, "ip="+host+",") && strings.Contains(info, "state=online"), err
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// startAll starts n nodes with start, in parallel.
func startAll(n int, start func() (*RedisNode, error)) ([]*RedisNode, error) {
	nodes := make([]*RedisNode, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = start()
		}()
	}
	wg.Wait()
	return nodes, errors.Join(errs...)
}

// dataNodeRequest is a redis-server of the lab image with extra arguments.
func dataNodeRequest(args ...string) []string {
	return append([]string{"/usr/bin/redis-server", "/etc/redis/callwarden-lab.conf"}, args...)
}

// open checks Docker and the image and creates the topology's network.
func (t *RedisTopology) open(ctx context.Context) error {
	if err := preflight(ctx, RedisImage); err != nil {
		return err
	}
	nw, err := network.New(ctx, network.WithLabels(ownerLabels()))
	if err != nil {
		return fmt.Errorf("create a lab network: %w", err)
	}
	t.net = nw
	return nil
}

// request is a lab container on the topology's network running cmd.
func (t *RedisTopology) request(cmd []string, port string, ready ...wait.Strategy) testcontainers.ContainerRequest {
	req := containerRequest(RedisImage, port+"/tcp", 60*time.Second, ready...)
	req.ExposedPorts = nil // reached by container IP
	req.Cmd = cmd
	req.Networks = []string{t.net.Name}
	return req
}

// start starts a data node (redis-server on 6379) running cmd.
func (t *RedisTopology) start(ctx context.Context, cmd []string) (*RedisNode, error) {
	return t.startRequest(ctx, t.request(cmd, "6379", wait.ForLog("Ready to accept connections")), "6379")
}

func (t *RedisTopology) startRequest(ctx context.Context, req testcontainers.ContainerRequest, port string) (*RedisNode, error) {
	c, err := startContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	n := &RedisNode{c: c}
	t.mu.Lock()
	t.nodes = append(t.nodes, n)
	t.mu.Unlock()
	ip, err := c.ContainerIP(ctx)
	if err != nil || ip == "" {
		return nil, fmt.Errorf("container IP of %s: %w", c.GetContainerID(), errors.Join(err, errors.New("none")))
	}
	n.Addr = net.JoinHostPort(ip, port)
	return n, nil
}

// Kill kills the node's redis-server with SIGKILL (no shutdown, no last
// replication): the failure a failover must survive.
func (t *RedisTopology) Kill(ctx context.Context, n *RedisNode) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDockerUnavailable, err)
	}
	defer cli.Close()
	if _, err := cli.ContainerKill(ctx, n.ContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", n.Addr, err)
	}
	n.killed.Store(true)
	return nil
}

// ContainerIDs returns the ids of the topology's containers.
func (t *RedisTopology) ContainerIDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.nodes))
	for _, n := range t.nodes {
		ids = append(ids, n.ContainerID())
	}
	return ids
}

// Close removes every container and the network. It is idempotent.
func (t *RedisTopology) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		nodes := t.nodes
		t.mu.Unlock()
		var errs []error
		for _, n := range nodes {
			if err := testcontainers.TerminateContainer(n.c, testcontainers.StopContext(ctx), testcontainers.StopTimeout(0)); err != nil {
				errs = append(errs, fmt.Errorf("remove container %s: %w", n.ContainerID(), err))
			}
		}
		if t.net != nil {
			if err := t.net.Remove(ctx); err != nil {
				errs = append(errs, fmt.Errorf("remove network %s: %w", t.net.Name, err))
			}
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// waitFor polls cond every 100 ms until it holds, ctx ends or 60 s pass.
func waitFor(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := cond(cctx)
		ccancel()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
