package integration

// Redis high availability: the store contract suites against a Redis
// Cluster, and failovers (Sentinel and Cluster) under a load of decisions
// and admin writes (docs/redis.md, "High availability").

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// newStoreOn returns a store with opts (on the lab's Redis, a Cluster's
// seeds, or Sentinels with opts.MasterName), under a key prefix of the
// test's own unless opts names one, closed when the test ends.
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

// Load and timing of the failover tests: decisions at failoverRate per
// second for failoverLoad, an admin change every failoverWriteEvery, the
// primary killed failoverKillAfter into the load.
const (
	failoverLoad       = 20 * time.Second
	failoverRate       = 500
	failoverWriteEvery = 100 * time.Millisecond
	failoverKillAfter  = 5 * time.Second
	failoverStaleness  = 5 * time.Second
)

// haOptions are the store options of the failover tests: short socket
// timeouts, so that a dead primary is noticed fast, and admin writes
// acknowledged once one replica has them.
func haOptions(opts redisstore.Options) redisstore.Options {
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	opts.CallTimeout = time.Second
	opts.WaitReplicas, opts.WaitTimeout = 1, 500*time.Millisecond
	return opts
}

// haDecision is one decision of the load: the snapshot was fetched within
// [at, done]; gen is its generation (0 without a snapshot).
type haDecision struct {
	at, done    time.Time
	gen         uint64
	alice, dave enforce.Decision
}

// haWrite is one admin change: it writes generation gen (the store's
// generation + 1 when it started); acked is when the store acknowledged
// it (zero when it did not).
type haWrite struct {
	gen               uint64
	start, end, acked time.Time
	err               error
}

// aliceAllowedIn is the policy of every generation the failover tests
// write: alice may listen in odd generations only. Each change flips her,
// so a generation number names its policy whichever write (even one lost
// in the failover, then written again) produced it.
func aliceAllowedIn(gen uint64) bool { return gen%2 == 1 }

// flipAlice writes the next generation through ApplyPatch, as the admin
// API does, from the store's current version.
func flipAlice(ctx context.Context, admin *redisstore.Store) haWrite {
	w := haWrite{start: time.Now()}
	p, v, err := admin.PolicyVersion(ctx)
	if err != nil {
		w.err = err
		return w
	}
	base, err := enforce.NewSnapshot(p, v.Gen)
	if err != nil {
		w.err = err
		return w
	}
	base = base.WithOrigin(v.Epoch)
	w.gen = v.Gen + 1
	alice, ok := base.User("alice")
	if !ok {
		w.err = errors.New("alice is not in the policy")
		return w
	}
	alice.Profile = ""
	if aliceAllowedIn(w.gen) {
		alice.Profile = "supervisor" // storetest.Policy's
	}
	if _, _, w.err = admin.ApplyPatch(ctx, base, enforce.PolicyPatch{Users: []enforce.User{alice}}); w.err == nil {
		w.acked = time.Now()
	}
	return w
}

// runFailover loads two daemons (Loaders on stores from open) with
// decisions and one admin writer with changes and audit records, kills the
// primary of the policy keys (kill) failoverKillAfter into the load, and
// checks that no allow was ever wrong, that writes came back within the
// topology's failover time (promoted turns true) + writesWithin, and that
// nothing acknowledged was lost. It logs the figures.
//
// writesWithin is how long after the new primary is named writes must be
// acknowledged again; auditFailsOver says whether the audit keys live on
// the primary that is killed.
func runFailover(t *testing.T, open func(testing.TB) *redisstore.Store, kill func(context.Context) error, promoted func(context.Context) bool,
	writesWithin time.Duration, auditFailsOver bool) {
	ctx := contextFor(t, 2*time.Minute)
	admin := open(t)
	initial := storetest.Policy(t)
	mustApplyPolicy(ctx, t, admin, initial) // generation 1: alice allowed
	stores := []*redisstore.Store{open(t), open(t)}
	var daemons []*cache.Loader
	for i, s := range stores {
		// Each store call of a Loader is bounded by a second (default 10 s):
		// a call that went on trying the dead primary would otherwise hold
		// the Loader for several seconds after the failover.
		d := startLoader(t, s, func(o *cache.LoaderOptions) { o.Staleness, o.CallTimeout = failoverStaleness, time.Second })
		waitUntil(t, 10*time.Second, "daemon "+strconv.Itoa(i)+" loads", func() bool { return d.Snapshot() != nil })
		daemons = append(daemons, d)
	}
	// A subscription of daemon 0's store besides its Loader's: after the
	// failover it must deliver the generations written on the new primary.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	notified, err := stores[0].Watch(wctx)
	mustOK(t, err)
	var lastNotified atomic.Uint64
	go func() {
		for g := range notified {
			lastNotified.Store(g)
		}
	}()

	var (
		stop      atomic.Bool
		wg        sync.WaitGroup
		decisions []haDecision
		writes    []haWrite
		audited   = map[string]bool{} // detail of each acknowledged audit record
		// firstRefusal is why a daemon first had no snapshot to decide from.
		firstRefusal error
	)
	wg.Add(2)
	go func() { // the checks: failoverRate a second, alternating daemons
		defer wg.Done()
		tick := time.NewTicker(time.Second / failoverRate)
		defer tick.Stop()
		for n := 0; !stop.Load(); n++ {
			<-tick.C
			d := haDecision{at: time.Now()}
			s := daemons[n%2].Snapshot()
			if s != nil {
				d.gen = s.Generation()
			} else if firstRefusal == nil {
				firstRefusal = daemons[n%2].Ready()
			}
			d.alice = aliceListens(s)
			d.dave = enforce.Decide(s, &enforce.Request{User: "dave", Action: enforce.MonitorListen, Queue: "sales"}, decideAt)
			d.done = time.Now()
			decisions = append(decisions, d)
		}
	}()
	go func() { // the admin: a change, then its audit record, synchronously
		defer wg.Done()
		for n := 0; !stop.Load(); n++ {
			// Each call gets a second, as an admin client with a short
			// timeout would: a call begun against the dead primary ends
			// then, and the next one goes to the new primary.
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			w := flipAlice(cctx, admin)
			cancel()
			w.end = time.Now()
			writes = append(writes, w)
			if w.err == nil {
				detail := fmt.Sprintf("failover test change %d (generation %d)", n, w.gen)
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				if admin.Audit(cctx, enforce.AuditRecord{Time: time.Now(), Source: "admin", User: "admin", Action: "user.assign",
					Target: "alice", Decision: "allow", Reason: "granted", Detail: detail}) == nil {
					audited[detail] = true
				}
				cancel()
			}
			time.Sleep(failoverWriteEvery)
		}
	}()

	time.Sleep(failoverKillAfter)
	killed := time.Now()
	mustOK(t, kill(ctx))
	var failedOver time.Time
	for failedOver.IsZero() && time.Since(killed) < failoverLoad {
		if promoted(ctx) {
			failedOver = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(failoverLoad - failoverKillAfter - time.Since(killed))
	stop.Store(true)
	wg.Wait()
	if failedOver.IsZero() {
		t.Fatalf("no new primary %s after the kill", failoverLoad-failoverKillAfter)
	}

	// What the store holds now is the last acknowledged write, or a later one.
	p, v, err := admin.PolicyVersion(ctx)
	mustOK(t, err)
	// Writes are back with the first acknowledged write after the first
	// one the kill made fail (a write just after the kill may still reach
	// the dying primary).
	var (
		lastAcked, firstAfter haWrite
		unacked               int
		failed                bool
	)
	for _, w := range writes {
		switch {
		case !w.acked.IsZero():
			lastAcked = w
			if firstAfter.acked.IsZero() && w.start.After(killed) && failed {
				firstAfter = w
			}
		default:
			unacked++
			failed = failed || w.start.After(killed)
		}
	}
	if firstAfter.acked.IsZero() {
		t.Fatalf("no admin write was acknowledged after the kill (%d writes, %d not acknowledged; last error %v)", len(writes), unacked, writes[len(writes)-1].err)
	}
	if v.Gen < lastAcked.gen {
		t.Fatalf("the store is at generation %d, but generation %d was acknowledged: an acknowledged write was lost", v.Gen, lastAcked.gen)
	}
	if s, err := enforce.NewSnapshot(p, v.Gen); err != nil || aliceListens(s).Allow != aliceAllowedIn(v.Gen) {
		t.Fatalf("the store's generation %d does not hold its policy (alice allowed: %v)", v.Gen, aliceAllowedIn(v.Gen))
	}
	for i, d := range daemons {
		waitUntil(t, 5*time.Second, fmt.Sprintf("daemon %d enforces generation %d", i, v.Gen), func() bool { return d.Generation() == v.Gen })
	}
	waitUntil(t, 5*time.Second, "the change notifications resume after the failover", func() bool { return lastNotified.Load() >= firstAfter.gen })

	// Every decision against the policy of the generation it was served
	// from, and against the staleness bound.
	ackedAt := map[uint64]time.Time{}
	for _, w := range writes {
		if !w.acked.IsZero() {
			ackedAt[w.gen] = w.acked
		}
	}
	var (
		refused, servedInFailover, allows int
		firstAllowAfter                   time.Time
		refusedFrom, refusedTo            time.Duration
	)
	for _, d := range decisions {
		if d.dave.Allow {
			t.Fatalf("wrong allow at %s: dave has no profile: %+v", d.at.Format(time.RFC3339Nano), d.dave)
		}
		if d.gen == 0 {
			if d.alice.Allow || d.alice.Reason != enforce.ReasonStoreUnavailable {
				t.Fatalf("decision without a snapshot at %s: %+v", d.at.Format(time.RFC3339Nano), d.alice)
			}
			if d.at.After(killed) {
				if refused == 0 {
					refusedFrom = d.at.Sub(killed)
				}
				refused++
				refusedTo = d.at.Sub(killed)
			}
			continue
		}
		if d.alice.Allow != aliceAllowedIn(d.gen) {
			t.Fatalf("decision at %s from generation %d: alice allowed %v, the generation's policy says %v", d.at.Format(time.RFC3339Nano), d.gen, d.alice.Allow, aliceAllowedIn(d.gen))
		}
		if a, ok := ackedAt[d.gen+1]; ok && d.alice.Allow && a.Before(d.at.Add(-failoverStaleness)) {
			t.Fatalf("wrong allow at %s: served from generation %d, but generation %d (alice denied) was acknowledged at %s, more than the %s staleness before",
				d.at.Format(time.RFC3339Nano), d.gen, d.gen+1, a.Format(time.RFC3339Nano), failoverStaleness)
		}
		if d.alice.Allow {
			allows++
		}
		if d.at.After(killed) && d.done.Before(firstAfter.acked) {
			servedInFailover++
		}
		if d.alice.Allow && d.gen >= firstAfter.gen && firstAllowAfter.IsZero() {
			firstAllowAfter = d.done
		}
	}
	if firstAllowAfter.IsZero() {
		t.Fatalf("no allow from a generation written after the failover (first: %d)", firstAfter.gen)
	}
	writesBack := firstAfter.acked.Sub(killed)
	if bound := failedOver.Sub(killed) + writesWithin; writesBack > bound {
		t.Errorf("writes acknowledged again %s after the kill, beyond the failover time + %s (%s)", writesBack.Round(time.Millisecond), writesWithin, bound.Round(time.Millisecond))
	}

	// The audit trail: every acknowledged record is there, and verify is
	// intact, or reports the gap a lost tail left.
	recs, err := admin.ReadAudit(ctx, enforce.AuditFilter{})
	mustOK(t, err)
	for _, r := range recs {
		delete(audited, r.Detail)
	}
	if len(audited) > 0 {
		t.Fatalf("%d acknowledged audit records are missing from the trail, e.g. %v", len(audited), audited)
	}
	res, err := admin.VerifyAudit(ctx)
	mustOK(t, err)
	if !res.Linked() {
		t.Fatalf("audit verify after the failover: %+v", res)
	}
	// A primary that took over may lack records without a trace: verify
	// must not call the trail intact then.
	if (res.Failover != "") != auditFailsOver {
		t.Fatalf("audit verify after the failover says failover %q; want it set: %v", res.Failover, auditFailsOver)
	}
	verdict := "intact"
	switch {
	case len(res.Gaps) > 0:
		verdict = fmt.Sprintf("%d gap(s) reported: %s", len(res.Gaps), res.Gaps[0].Detail)
	case res.Failover != "":
		verdict = "links hold, completeness unconfirmed (the audit primary failed over)"
	}

	t.Logf("failover under load (%d decisions at %d/s over %s, %d admin changes, %d not acknowledged; staleness %s):",
		len(decisions), failoverRate, failoverLoad, len(writes), unacked, failoverStaleness)
	t.Logf("  new primary named %s after the kill", failedOver.Sub(killed).Round(time.Millisecond))
	t.Logf("  decisions refused during failover (store_unavailable): %d; served from the snapshot between the kill and the first write on the new primary: %d", refused, servedInFailover)
	for _, w := range writes {
		if w.err != nil && w.start.After(killed.Add(-time.Second)) {
			t.Logf("  not acknowledged: change started %s after the kill (failed in %s): %v", w.start.Sub(killed).Round(time.Millisecond), w.end.Sub(w.start).Round(time.Millisecond), w.err)
		}
	}
	if refused > 0 {
		t.Logf("  refusals from %s to %s after the kill; the first because: %v", refusedFrom.Round(time.Millisecond), refusedTo.Round(time.Millisecond), firstRefusal)
	}
	t.Logf("  writes acknowledged again %s after the kill (bound: failover + %s = %s)", writesBack.Round(time.Millisecond), writesWithin, (failedOver.Sub(killed) + writesWithin).Round(time.Millisecond))
	t.Logf("  time to first allow after failover (from a generation written on the new primary): %s", firstAllowAfter.Sub(killed).Round(time.Millisecond))
	t.Logf("  wrong allows: 0 of %d allows; store at generation %d; audit trail %d records, %s", allows, v.Gen, res.Checked, verdict)
}

// TestRedisSentinelFailoverUnderLoad kills the primary of a Sentinel group
// while two daemons decide and an admin writes. The group has two
// replicas: with admin writes acknowledged once one replica has them,
// writes can resume only if a replica is left after the failover.
func TestRedisSentinelFailoverUnderLoad(t *testing.T) {
	rs := suite.OwnRedisSentinel(t, 2)
	prefix := lab.KeyPrefix(t)
	open := func(tb testing.TB) *redisstore.Store {
		return newStoreOn(tb, haOptions(redisstore.Options{Addrs: rs.SentinelAddrs, MasterName: lab.SentinelMaster, Prefix: prefix}))
	}
	ctx := testContext(t)
	primary, err := rs.Primary(ctx)
	mustOK(t, err)
	node := rs.Node(primary)
	if node == nil {
		t.Fatalf("the sentinels name %s, not a node of the lab", primary)
	}
	runFailover(t, open,
		func(ctx context.Context) error { return rs.Kill(ctx, node) },
		func(ctx context.Context) bool { p, err := rs.Primary(ctx); return err == nil && p != primary },
		2*time.Second, true)
}

// TestRedisClusterFailoverUnderLoad kills the cluster primary that holds
// the policy keys ({cw}) while two daemons decide and an admin writes. That
// primary gets a second replica first, so that one is left to confirm
// writes after the failover.
func TestRedisClusterFailoverUnderLoad(t *testing.T) {
	rc := suite.OwnRedisCluster(t)
	prefix := lab.KeyPrefix(t)
	ctx := testContext(t)
	policyKey := prefix + redisstore.KeyGeneration
	if _, err := rc.AddReplica(ctx, policyKey); err != nil {
		t.Fatal(err)
	}
	node, _, err := rc.MasterOf(ctx, policyKey)
	mustOK(t, err)
	auditNode, _, err := rc.MasterOf(ctx, prefix+redisstore.KeyAudit)
	mustOK(t, err)
	open := func(tb testing.TB) *redisstore.Store {
		return newStoreOn(tb, haOptions(redisstore.Options{Addrs: rc.Addrs(), ClusterMode: true, Prefix: prefix}))
	}
	runFailover(t, open,
		func(ctx context.Context) error { return rc.Kill(ctx, node) },
		func(ctx context.Context) bool {
			m, _, err := rc.MasterOf(ctx, policyKey)
			return err == nil && m != node
		},
		// A second more than with Sentinel: after the failover, an admin
		// call (1 s) may still go to the dead primary while the client's
		// slot map reload runs, and that reload may itself try the dead
		// node first (go-redis picks a random node).
		3*time.Second, auditNode == node)
}

// TestRedisAuditChainsAGapWhenItsRecordsAreLost loses the tail of the audit
// stream as a failover does when the replica had not received it (the
// records and the head go back to an earlier state): the daemon that had
// appended the lost records chains a gap record on its next append, and
// verification reports the gap instead of an intact trail. Records trimmed
// away are not a gap.
func TestRedisAuditChainsAGapWhenItsRecordsAreLost(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	a, b := newRedisStore(t, l, nil), newRedisStore(t, l, nil)
	rec := func(n int) enforce.AuditRecord {
		return enforce.AuditRecord{Time: time.Now(), Source: "http", User: "alice", Action: "monitor.listen",
			Decision: "allow", Reason: "granted", Detail: fmt.Sprintf("record %d", n)}
	}
	for n := 1; n <= 3; n++ {
		mustOK(t, a.Audit(ctx, rec(n)))
	}
	msgs, err := l.Redis.XRange(ctx, a.Key(redisstore.KeyAudit), "-", "+").Result()
	mustOK(t, err)
	// The replica that takes over had record 1 only.
	mustOK(t, l.Redis.XDel(ctx, a.Key(redisstore.KeyAudit), msgs[1].ID, msgs[2].ID).Err())
	mustOK(t, l.Redis.Set(ctx, a.Key(redisstore.KeyAuditHead), msgs[0].Values["hash"], 0).Err())
	// Another daemon appends first: it never saw the lost records.
	mustOK(t, b.Audit(ctx, rec(4)))

	t.Run("the daemon whose records were lost chains a gap record", func(t *testing.T) {
		mustOK(t, a.Audit(ctx, rec(5)))
		res, err := a.VerifyAudit(ctx)
		mustOK(t, err)
		if res.OK() || !res.Linked() || len(res.Gaps) != 1 || res.Checked != 4 {
			t.Fatalf("VerifyAudit = %+v, want 4 linked records with one gap", res)
		}
		if !strings.Contains(res.Gaps[0].Detail, msgs[2].ID) {
			t.Fatalf("gap detail %q does not name the lost record %s", res.Gaps[0].Detail, msgs[2].ID)
		}
		gaps, err := a.ReadAudit(ctx, enforce.AuditFilter{Action: enforce.AuditGapAction})
		mustOK(t, err)
		if len(gaps) != 1 || gaps[0].Reason != "records_lost" {
			t.Fatalf("gap records = %+v, want one", gaps)
		}
	})
	t.Run("appending again chains no second gap", func(t *testing.T) {
		mustOK(t, b.Audit(ctx, rec(6)))
		mustOK(t, a.Audit(ctx, rec(7)))
		res, err := a.VerifyAudit(ctx)
		mustOK(t, err)
		if len(res.Gaps) != 1 || res.Checked != 6 {
			t.Fatalf("VerifyAudit = %+v, want 6 records, still one gap", res)
		}
	})
	t.Run("records trimmed away are not a gap", func(t *testing.T) {
		for n := 8; n <= 12; n++ {
			mustOK(t, b.Audit(ctx, rec(n)))
		}
		mustOK(t, l.Redis.XTrimMaxLen(ctx, a.Key(redisstore.KeyAudit), 2).Err())
		mustOK(t, a.Audit(ctx, rec(13)))
		gaps, err := a.ReadAudit(ctx, enforce.AuditFilter{Action: enforce.AuditGapAction})
		mustOK(t, err)
		if len(gaps) != 0 {
			t.Fatalf("gap records after trimming = %+v, want none (the gap record itself was trimmed too)", gaps)
		}
		res, err := a.VerifyAudit(ctx)
		mustOK(t, err)
		if !res.OK() || !res.Truncated || res.Failover != "" {
			t.Fatalf("VerifyAudit after trimming = %+v, want intact and truncated, no failover", res)
		}
	})
}
