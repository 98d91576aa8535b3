package integration

// Redis high availability: the store contract suites against a Redis
// Cluster, and failovers (Sentinel and Cluster) under a load of decisions
// and admin writes (docs/redis.md, "High availability").

import (
	"testing"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/integration/lab"
)

// newStoreOn returns a store on addrs (a Cluster's seeds, or Sentinels
// with opts.MasterName) under a key prefix of the test's own, closed when
// the test ends.
func newStoreOn(tb testing.TB, opts redisstore.Options) *redisstore.Store {
	tb.Helper()
	if opts.Prefix == "" {
		opts.Prefix = lab.KeyPrefix(tb)
	}
	r, err := redisstore.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("close redis store: %v", err)
		}
	})
	return r
}

// runContractOn runs a contract suite of cache/storetest against stores on
// the Cluster addrs.
func runContractOn[S any](t *testing.T, addrs []string, suiteOf func(*testing.T, func(*testing.T) S)) {
	suiteOf(t, func(t *testing.T) S {
		return any(newStoreOn(t, redisstore.Options{Addrs: addrs, ClusterMode: true})).(S)
	})
}

// TestRedisClusterStoreContract runs every store contract suite, unchanged,
// against a three-primary Redis Cluster: no command callwarden sends spans
// two slots.
func TestRedisClusterStoreContract(t *testing.T) {
	addrs := suite.OwnRedisCluster(t).Addrs()
	t.Run("policy store", func(t *testing.T) { runContractOn(t, addrs, storetest.RunPolicyStore) })
	t.Run("recording store", func(t *testing.T) { runContractOn(t, addrs, storetest.RunRecordingStore) })
	t.Run("audit log", func(t *testing.T) { runContractOn(t, addrs, storetest.RunAuditLog) })
	t.Run("incremental", func(t *testing.T) { runContractOn(t, addrs, storetest.RunIncremental) })
	t.Run("token store", func(t *testing.T) { runContractOn(t, addrs, storetest.RunTokenStore) })
	t.Run("session store", func(t *testing.T) { runContractOn(t, addrs, storetest.RunSessionStore) })
	t.Run("active recordings", func(t *testing.T) { runContractOn(t, addrs, storetest.RunActiveRecordings) })
}
