package integration

// The store suite: the contract suites of cache/storetest against the lab's
// real Redis, two daemons (Loaders) sharing it, the failure policy with
// Redis paused mid-load, the audit chain against tampering by hand, and the
// store benchmarks (run with `go test -run '^$' -bench . ./integration/`).

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/cache"
	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// newRedisStore returns a redisstore.Store on the lab's Redis under the test's
// own key prefix, closed when the test ends.
func newRedisStore(tb testing.TB, l *lab.TestLab, mod func(*redisstore.Options)) *redisstore.Store {
	tb.Helper()
	opts := redisstore.Options{Addrs: []string{l.RedisAddr}, Prefix: l.KeyPrefix}
	if mod != nil {
		mod(&opts)
	}
	return newStoreOn(tb, opts)
}

// runContract runs a contract suite of cache/storetest against stores
// from newRedisStore on the suite's lab.
func runContract[S any](t *testing.T, suiteOf func(*testing.T, func(*testing.T) S)) {
	suiteOf(t, func(t *testing.T) S { return any(newRedisStore(t, suite.Lab(t), nil)).(S) })
}

func TestRedisPolicyStoreContract(t *testing.T)    { runContract(t, storetest.RunPolicyStore) }
func TestRedisRecordingStoreContract(t *testing.T) { runContract(t, storetest.RunRecordingStore) }
func TestRedisAuditLogContract(t *testing.T)       { runContract(t, storetest.RunAuditLog) }
func TestRedisIncrementalContract(t *testing.T)    { runContract(t, storetest.RunIncremental) }
func TestRedisTokenStoreContract(t *testing.T)     { runContract(t, storetest.RunTokenStore) }
func TestRedisSessionStoreContract(t *testing.T)   { runContract(t, storetest.RunSessionStore) }
func TestRedisWatchdogStoreContract(t *testing.T)  { runContract(t, storetest.RunWatchdogStore) }
func TestRedisRecordingCatalogueContract(t *testing.T) {
	runContract(t, storetest.RunRecordingCatalogue)
}
func TestRedisActiveRecordingsContract(t *testing.T) {
	runContract(t, storetest.RunActiveRecordings)
}

func TestRedisRefusesAnUnknownSchemaVersion(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	r := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, r, storetest.Policy(t))
	mustOK(t, l.Redis.Set(ctx, r.Key(redisstore.KeySchema), "2", 0).Err())
	if err := r.Check(ctx); !errors.Is(err, enforce.ErrSchemaVersion) {
		t.Fatalf("Check = %v, want ErrSchemaVersion", err)
	}
	if _, _, err := r.Policy(ctx); !errors.Is(err, enforce.ErrSchemaVersion) {
		t.Fatalf("Policy = %v, want ErrSchemaVersion", err)
	}
	if _, err := r.Generation(ctx); !errors.Is(err, enforce.ErrSchemaVersion) {
		t.Fatalf("Generation = %v, want ErrSchemaVersion", err)
	}
	if _, _, err := r.ApplyPolicy(ctx, storetest.Policy(t), enforce.Unconditionally()); !errors.Is(err, enforce.ErrSchemaVersion) {
		t.Fatalf("ApplyPolicy = %v, want ErrSchemaVersion", err)
	}
}

func TestRedisUnreachableIsErrUnavailable(t *testing.T) {
	// A port nothing listens on: every call fails fast, classified once.
	r, err := redisstore.New(redisstore.Options{Addrs: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := testContext(t)
	checks := map[string]error{}
	_, _, checks["Policy"] = r.Policy(ctx)
	_, checks["Generation"] = r.Generation(ctx)
	_, _, checks["ApplyPolicy"] = r.ApplyPolicy(ctx, storetest.Policy(t), enforce.Unconditionally())
	checks["Audit"] = r.Audit(ctx, enforce.AuditRecord{Action: "monitor.listen"})
	_, checks["Recording"] = r.Recording(ctx, "x")
	_, checks["Watch"] = r.Watch(ctx)
	for name, err := range checks {
		if !errors.Is(err, enforce.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
		}
	}
}

// startLoader runs a Loader on store until the test ends.
func startLoader(tb testing.TB, r *redisstore.Store, mod func(*cache.LoaderOptions)) *cache.Loader {
	tb.Helper()
	opts := cache.LoaderOptions{Store: r, Incremental: r, Watch: r.Watch, Generation: r.Generation,
		PollInterval: 200 * time.Millisecond, Staleness: 5 * time.Second,
		RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	ld, err := cache.NewLoader(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ld.Run(ctx)
	}()
	tb.Cleanup(func() { cancel(); wg.Wait() })
	return ld
}

func waitUntil(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

var decideAt = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func aliceListens(s *enforce.Snapshot) enforce.Decision {
	return enforce.Decide(s, &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales", Agent: "carol"}, decideAt)
}

func TestTwoDaemonsEnforceAnApply(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	// Polling once an hour: only the pub/sub notification can bring changes.
	daemons := []*cache.Loader{
		startLoader(t, newRedisStore(t, l, nil), func(o *cache.LoaderOptions) { o.PollInterval, o.Staleness = time.Hour, 0 }),
		startLoader(t, newRedisStore(t, l, nil), func(o *cache.LoaderOptions) { o.PollInterval, o.Staleness = time.Hour, 0 }),
	}
	for i, d := range daemons {
		waitUntil(t, 10*time.Second, "daemon "+strconv.Itoa(i)+" loads", func() bool { return d.Snapshot() != nil })
		if !aliceListens(d.Snapshot()).Allow {
			t.Fatalf("daemon %d denies alice before the change", i)
		}
	}
	p, gen, err := admin.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Users {
		if p.Users[i].ID == "alice" {
			p.Users[i].Profile = ""
		}
	}
	newGen, diff, err := admin.ApplyPolicy(ctx, p, enforce.IfGeneration(gen))
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(diff.ChangedUsers, []string{"alice"}) {
		t.Fatalf("diff = %+v, want alice changed", diff)
	}
	start := time.Now()
	for i, d := range daemons {
		waitUntil(t, 5*time.Second, "daemon "+strconv.Itoa(i)+" enforces the change", func() bool { return d.Generation() == newGen })
		if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonNoProfile {
			t.Fatalf("daemon %d after the change: %+v, want no_profile", i, dec)
		}
	}
	t.Logf("apply -> enforced by both daemons in %s", time.Since(start))
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// redisContainer returns the id of the lab's Redis container.
func redisContainer(t *testing.T, l *lab.TestLab) string {
	t.Helper()
	for _, id := range l.ContainerIDs() {
		out, err := exec.Command("docker", "inspect", "-f", "{{.Config.Image}}", id).CombinedOutput()
		if err != nil {
			t.Fatalf("docker inspect %s: %v: %s", id, err, out)
		}
		if strings.TrimSpace(string(out)) == lab.RedisImage {
			return id
		}
	}
	t.Fatal("the lab has no Redis container")
	return ""
}

func docker(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestRedisOutageFailsClosedAfterTheStalenessBound pauses the Redis
// container while decisions run in a loop: decisions go on from the
// snapshot within the staleness bound, then deny with store_unavailable,
// and come back once Redis does, without a restart. Nothing the policy
// denies is ever allowed.
func TestRedisOutageFailsClosedAfterTheStalenessBound(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	const staleness = 3 * time.Second
	fast := func(o *redisstore.Options) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.CallTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 500*time.Millisecond
	}
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	d := startLoader(t, newRedisStore(t, l, fast), func(o *cache.LoaderOptions) { o.Staleness = staleness })
	waitUntil(t, 10*time.Second, "the daemon loads", func() bool { return d.Snapshot() != nil })

	// at is taken before the snapshot is fetched and done after the
	// decisions: the snapshot was fetched somewhere in [at, done]. A
	// decision is held to the fail-closed rule only when that whole
	// interval lies between failing closed and the unpause; bracketing by
	// one side only would blame the daemon for a snapshot fetched after the
	// unpause by a goroutine preempted in between.
	type outcome struct {
		at, done time.Time
		alice    enforce.Decision // allowed by the policy
		dave     enforce.Decision // denied by the policy (no profile)
		protects enforce.Decision // denied by the policy (protected target)
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			at := time.Now()
			s := d.Snapshot()
			o := outcome{at: at, alice: aliceListens(s),
				dave:     enforce.Decide(s, &enforce.Request{User: "dave", Action: enforce.MonitorListen, Queue: "sales"}, decideAt),
				protects: enforce.Decide(s, &enforce.Request{User: "alice", Action: enforce.MonitorListen, Queue: "sales", Agent: "ceo"}, decideAt)}
			o.done = time.Now()
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	id := redisContainer(t, l)
	waitUntil(t, 5*time.Second, "decisions run before the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(outcomes) > 0
	})
	paused := time.Now()
	docker(t, "pause", id)
	unpaused := false
	t.Cleanup(func() {
		if !unpaused {
			_ = exec.Command("docker", "unpause", id).Run()
		}
	})
	waitUntil(t, staleness+5*time.Second, "decisions fail closed", func() bool { return d.Snapshot() == nil })
	failedClosed := time.Now()
	if err := d.Ready(); !errors.Is(err, cache.ErrStale) {
		t.Errorf("Ready while Redis is paused = %v, want ErrStale", err)
	}
	// The outage lasts a second of real time, so that many decisions are
	// held to the fail-closed rule.
	time.Sleep(time.Second)
	resumed := time.Now() // Redis may answer before `docker unpause` returns
	docker(t, "unpause", id)
	unpaused = true
	waitUntil(t, 15*time.Second, "decisions come back", func() bool { return d.Snapshot() != nil && aliceListens(d.Snapshot()).Allow })
	back := time.Now()
	// Decisions keep running for 100 ms of real time after Redis is back,
	// so that those too are held to the rule that nothing denied is allowed.
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	var servedDuringOutage, deniedUnavailable int
	for _, o := range outcomes {
		if o.dave.Allow || o.protects.Allow {
			t.Fatalf("wrong allow at %s: dave %+v, protected %+v", o.at.Format(time.RFC3339Nano), o.dave, o.protects)
		}
		switch {
		case o.at.After(paused) && o.at.Before(failedClosed) && o.alice.Allow:
			servedDuringOutage++
		case o.at.After(failedClosed) && o.done.Before(resumed):
			if o.alice.Allow || o.alice.Reason != enforce.ReasonStoreUnavailable {
				t.Fatalf("decision at %s after failing closed: %+v", o.at.Format(time.RFC3339Nano), o.alice)
			}
			deniedUnavailable++
		}
	}
	if servedDuringOutage == 0 || deniedUnavailable == 0 {
		t.Fatalf("%d decisions served from the snapshot during the outage, %d denied store_unavailable; want both", servedDuringOutage, deniedUnavailable)
	}
	if served := failedClosed.Sub(paused); served > staleness+time.Second {
		t.Errorf("served from the snapshot for %s, beyond the %s staleness", served, staleness)
	}
	t.Logf("Redis paused: served from the snapshot for %s (staleness %s, %d decisions), then %d store_unavailable denials; back %s after unpause",
		failedClosed.Sub(paused).Round(time.Millisecond), staleness, servedDuringOutage, deniedUnavailable, back.Sub(resumed).Round(time.Millisecond))
}

// mustAuditIDs lists the IDs of the entries of r's audit stream, oldest
// first.
func mustAuditIDs(t *testing.T, l *lab.TestLab, r *redisstore.Store) []string {
	t.Helper()
	msgs, err := l.Redis.XRange(testContext(t), r.Key(redisstore.KeyAudit), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func TestRedisAuditVerifyFindsTampering(t *testing.T) {
	fill := func(t *testing.T, l *lab.TestLab, r *redisstore.Store, n int) []string {
		t.Helper()
		for i := range n {
			rec := enforce.AuditRecord{Time: decideAt.Add(time.Duration(i) * time.Second), Source: "http", User: "alice",
				Action: "monitor.listen", Target: "carol", Decision: "allow", Reason: "granted"}
			mustOK(t, r.Audit(testContext(t), rec))
		}
		return mustAuditIDs(t, l, r)
	}

	t.Run("an intact stream verifies", func(t *testing.T) {
		l := suite.Lab(t)
		r := newRedisStore(t, l, nil)
		fill(t, l, r, 20)
		res, err := r.VerifyAudit(testContext(t))
		if err != nil || !res.OK() || res.Checked != 20 {
			t.Fatalf("VerifyAudit = %+v, %v", res, err)
		}
	})

	t.Run("a deleted record is reported at the next one", func(t *testing.T) {
		l := suite.Lab(t)
		r := newRedisStore(t, l, nil)
		ids := fill(t, l, r, 20)
		mustOK(t, l.Redis.XDel(testContext(t), r.Key(redisstore.KeyAudit), ids[7]).Err())
		res, err := r.VerifyAudit(testContext(t))
		if err != nil || res.OK() || res.FirstBad != ids[8] {
			t.Fatalf("VerifyAudit = %+v, %v; want first bad %s", res, err, ids[8])
		}
	})

	t.Run("a deleted last record is reported when the next one is appended", func(t *testing.T) {
		l := suite.Lab(t)
		r := newRedisStore(t, l, nil)
		ids := fill(t, l, r, 5)
		mustOK(t, l.Redis.XDel(testContext(t), r.Key(redisstore.KeyAudit), ids[4]).Err())
		after := fill(t, l, r, 1)
		res, err := r.VerifyAudit(testContext(t))
		if err != nil || res.OK() || res.FirstBad != after[len(after)-1] {
			t.Fatalf("VerifyAudit = %+v, %v; want first bad %s", res, err, after[len(after)-1])
		}
	})

	t.Run("a record edited by hand is reported", func(t *testing.T) {
		l := suite.Lab(t)
		r := newRedisStore(t, l, nil)
		ids := fill(t, l, r, 20)
		// Streams are append-only: rebuild the stream under the same ids with
		// one record's decision changed, as someone with Redis access could.
		key := r.Key(redisstore.KeyAudit)
		ctx := testContext(t)
		msgs, err := l.Redis.XRange(ctx, key, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		mustOK(t, l.Redis.Del(ctx, key).Err())
		for _, m := range msgs {
			rec := m.Values["rec"].(string)
			if m.ID == ids[12] {
				rec = strings.Replace(rec, `"decision":"allow"`, `"decision":"deny"`, 1)
			}
			if err := l.Redis.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: m.ID,
				Values: []any{"prev", m.Values["prev"], "hash", m.Values["hash"], "rec", rec}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		res, err := r.VerifyAudit(ctx)
		if err != nil || res.OK() || res.FirstBad != ids[12] || res.Checked != 13 {
			t.Fatalf("VerifyAudit = %+v, %v; want first bad %s after 13 checked", res, err, ids[12])
		}
	})

	t.Run("a trimmed stream verifies from its first retained record", func(t *testing.T) {
		l := suite.Lab(t)
		r := newRedisStore(t, l, func(o *redisstore.Options) { o.Audit.MaxLen = 10 })
		fill(t, l, r, 350)
		res, err := r.VerifyAudit(testContext(t))
		if err != nil || !res.OK() || !res.Truncated || res.Checked >= 350 {
			t.Fatalf("VerifyAudit = %+v, %v; want intact, truncated, fewer than 350 checked", res, err)
		}
		t.Logf("MAXLEN ~ 10 kept %d of 350 records", res.Checked)
	})
}

func TestTwoDaemonsAppendToOneAuditChain(t *testing.T) {
	l := suite.Lab(t)
	daemons := []*redisstore.Store{newRedisStore(t, l, nil), newRedisStore(t, l, nil)}
	const each = 100
	writers := len(daemons) * 2
	mustOK(t, auditInParallel(writers, each, func(i, j int) error {
		rec := enforce.AuditRecord{Time: time.Now(), Source: "asterisk", User: "u" + strconv.Itoa(i),
			Action: "monitor.listen", Decision: "allow", Reason: "granted", Detail: strconv.Itoa(j)}
		return daemons[i%2].Audit(testContext(t), rec)
	}))
	res, err := daemons[0].VerifyAudit(testContext(t))
	if err != nil || !res.OK() || res.Checked != writers*each {
		t.Fatalf("VerifyAudit = %+v, %v; want %d records in one intact chain", res, err, writers*each)
	}
}

// auditInParallel runs writers goroutines, writer i calling write(i, j)
// for j from 0 to each-1, and returns, once all are done, the error that
// stopped each writer that stopped.
func auditInParallel(writers, each int, write func(i, j int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := write(i, j); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TestAsyncAuditorsOfTwoDaemonsKeepOneChain: two daemons' asynchronous
// audit writers (bounded queue, batches chained in Go and appended by one
// script call each, re-chained when the other daemon moved the head) on
// one stream: every record lands, in one intact chain, after a flush.
func TestAsyncAuditorsOfTwoDaemonsKeepOneChain(t *testing.T) {
	l := suite.Lab(t)
	stores := []*redisstore.Store{newRedisStore(t, l, nil), newRedisStore(t, l, nil)}
	const each = 2000
	auditors := make([]*cache.AsyncAuditor, len(stores))
	for i, st := range stores {
		auditors[i] = cache.NewAsyncAuditor(st, cache.AsyncAuditOptions{QueueSize: each, BatchSize: 64})
		go func() { _ = auditors[i].Run(context.Background()) }()
	}
	if err := auditInParallel(len(stores), each, func(i, j int) error {
		rec := enforce.AuditRecord{Time: time.Now(), Source: "http", User: "u" + strconv.Itoa(i),
			Action: "monitor.listen", Decision: "deny", Reason: "out_of_scope", Detail: strconv.Itoa(j)}
		return auditors[i].Audit(context.Background(), rec)
	}); err != nil {
		t.Error(err)
	}
	for i, a := range auditors {
		if err := a.Close(testContext(t)); err != nil {
			t.Fatalf("daemon %d flush: %v", i, err)
		}
		if a.Written() != each || a.Dropped() != 0 {
			t.Fatalf("daemon %d: written %d, dropped %d", i, a.Written(), a.Dropped())
		}
	}
	res, err := stores[0].VerifyAudit(testContext(t))
	if err != nil || !res.OK() || res.Checked != len(stores)*each {
		t.Fatalf("VerifyAudit = %+v, %v; want %d records in one intact chain", res, err, len(stores)*each)
	}
	// The batches kept each daemon's order.
	for i := range stores {
		recs, err := stores[0].ReadAudit(testContext(t), enforce.AuditFilter{User: "u" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range recs {
			if r.Detail != strconv.Itoa(j) {
				t.Fatalf("daemon %d record %d is %q: order lost", i, j, r.Detail)
			}
		}
	}
}

// TestAsyncAuditorLoadsItsScriptAfterAScriptFlush: batches are appended by
// EVALSHA; a server that lost its script cache (restart, failover, SCRIPT
// FLUSH) gets the script again and nothing is lost.
func TestAsyncAuditorLoadsItsScriptAfterAScriptFlush(t *testing.T) {
	l := suite.Lab(t)
	r := newRedisStore(t, l, nil)
	recs := make([]enforce.AuditRecord, 10)
	for i := range recs {
		recs[i] = enforce.AuditRecord{Time: decideAt, Source: "http", User: "alice", Action: "monitor.listen",
			Decision: "allow", Reason: "granted", Detail: strconv.Itoa(i)}
	}
	if n, err := r.AuditBatch(testContext(t), recs[:4]); err != nil || n != 4 {
		t.Fatalf("AuditBatch = %d, %v", n, err)
	}
	// A synchronous append by someone else moves the head: the next batch
	// is re-chained from it.
	mustOK(t, newRedisStore(t, l, nil).Audit(testContext(t), recs[4]))
	mustOK(t, l.Redis.ScriptFlush(testContext(t)).Err())
	if n, err := r.AuditBatch(testContext(t), recs[5:]); err != nil || n != 5 {
		t.Fatalf("AuditBatch after SCRIPT FLUSH = %d, %v", n, err)
	}
	res, err := r.VerifyAudit(testContext(t))
	if err != nil || !res.OK() || res.Checked != 10 {
		t.Fatalf("VerifyAudit = %+v, %v", res, err)
	}
}

// Hand edits of the store that this callwarden cannot load, or only in
// part (issue 9): a revocation in the same generation must be enforced
// (an unknown action is ignored and the rest loads) or, when the
// generation cannot be loaded at all, decisions must fail closed after
// the staleness bound rather than keep the old snapshot forever.

// handEdit changes the store the way an operator with redis-cli would,
// in one MULTI/EXEC that bumps the generation once, without a change log
// entry, and announces it.
func handEdit(t *testing.T, l *lab.TestLab, edit func(p redis.Pipeliner, key func(string) string)) {
	t.Helper()
	ctx := testContext(t)
	key := func(name string) string { return l.KeyPrefix + name }
	if _, err := l.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		edit(p, key)
		p.Incr(ctx, key(redisstore.KeyGeneration))
		return nil
	}); err != nil {
		t.Fatalf("hand edit: %v", err)
	}
	gen, err := l.Redis.Get(ctx, key(redisstore.KeyGeneration)).Result()
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, l.Redis.Publish(ctx, key(redisstore.ChannelChanges), gen).Err())
}

func TestHandEditWithAnUnknownActionStillRevokesInTheSameGeneration(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	daemon := newRedisStore(t, l, nil)
	d := startLoader(t, daemon, func(o *cache.LoaderOptions) { o.Staleness = 1500 * time.Millisecond })
	waitUntil(t, 10*time.Second, "the daemon loads", func() bool { return d.Snapshot() != nil })
	if !aliceListens(d.Snapshot()).Allow {
		t.Fatal("alice denied before the edit")
	}
	before := d.Generation()

	handEdit(t, l, func(p redis.Pipeliner, key func(string) string) {
		p.HDel(ctx, key(redisstore.KeyUsers), "alice")
		p.HSet(ctx, key(redisstore.KeyProfiles), "newer",
			`{"name":"newer","grants":[{"actions":["monitor.listen","monitor.teleport"],"scopes":{"queues":{"kind":"all"}}}]}`)
	})
	waitUntil(t, 3*time.Second, "the daemon loads the edited generation", func() bool { return d.Generation() == before+1 })
	if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonUnknownUser {
		t.Fatalf("alice after her deletion: %+v, want unknown_user", dec)
	}
	pr, ok := d.Snapshot().Profile("newer")
	if !ok || len(pr.Grants) != 1 || pr.Grants[0].Actions != enforce.NewActionSet(enforce.MonitorListen) {
		t.Fatalf("profile newer = %+v, want its known action only", pr)
	}
	if n := daemon.IgnoredActions(); n == 0 {
		t.Fatal("the unknown action was not counted")
	}
	if err := d.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
}

func TestHandEditOnAMissingProfileFailsClosedAfterTheStalenessBound(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	const staleness = 1500 * time.Millisecond
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	d := startLoader(t, newRedisStore(t, l, nil), func(o *cache.LoaderOptions) { o.Staleness = staleness })
	waitUntil(t, 10*time.Second, "the daemon loads", func() bool { return d.Snapshot() != nil })
	before := d.Generation()

	edited := time.Now()
	handEdit(t, l, func(p redis.Pipeliner, key func(string) string) {
		p.HDel(ctx, key(redisstore.KeyUsers), "alice")
		p.HSet(ctx, key(redisstore.KeyUsers), "zed", `{"id":"zed","profile":"ghost"}`)
	})
	waitUntil(t, staleness+2*time.Second, "decisions fail closed", func() bool { return d.Snapshot() == nil })
	if took := time.Since(edited); took < staleness-300*time.Millisecond {
		t.Errorf("failed closed %s after the edit, before the %s staleness bound", took, staleness)
	}
	// The store keeps answering every generation read; decisions stay closed
	// (a negative check over a second of real time).
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonStoreUnavailable {
			t.Fatalf("decision while the store cannot be loaded: %+v, want store_unavailable", dec)
		}
	}
	err := d.Ready()
	if !errors.Is(err, cache.ErrStale) || !errors.Is(err, cache.ErrUnloadable) ||
		!strings.Contains(err.Error(), "cannot be loaded") || !strings.Contains(err.Error(), `unknown profile "ghost"`) {
		t.Fatalf("Ready = %v, want the generation that cannot be loaded and why", err)
	}
	if d.Generation() != before {
		t.Fatalf("loaded generation %d, want %d kept", d.Generation(), before)
	}

	handEdit(t, l, func(p redis.Pipeliner, key func(string) string) {
		p.HSet(ctx, key(redisstore.KeyProfiles), "ghost", `{"name":"ghost"}`)
	})
	waitUntil(t, 3*time.Second, "decisions come back", func() bool { return d.Snapshot() != nil })
	if dec := aliceListens(d.Snapshot()); dec.Allow || dec.Reason != enforce.ReasonUnknownUser {
		t.Fatalf("alice after the fix: %+v, want unknown_user (she was deleted)", dec)
	}
	if err := d.Ready(); err != nil {
		t.Fatalf("Ready after the fix = %v", err)
	}
}

// TestRedisURLWithAPasswordConnects: the CLI reaches a Redis that needs
// an ACL user and password given as a redis:// URL, and prints the
// password nowhere, not even when the password is wrong.
func TestRedisURLWithAPasswordConnects(t *testing.T) {
	l := suite.Lab(t)
	ctx := testContext(t)
	user, secret := "cw-"+strings.TrimSuffix(strings.ReplaceAll(l.KeyPrefix, ":", "-"), "-"), "Pw-9f3kq-itest"
	if err := l.Redis.Do(ctx, "ACL", "SETUSER", user, "on", ">"+secret, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Redis.Do(cctx, "ACL", "DELUSER", user).Err()
	})
	admin := newRedisStore(t, l, nil)
	mustApplyPolicy(ctx, t, admin, storetest.Policy(t))
	bin := buildCallwarden(t)
	export := func(url string) (int, string) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, bin, "profiles", "export", "--redis-addr", url, "--redis-prefix", l.KeyPrefix).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	code, out := export("redis://" + user + ":" + secret + "@" + l.RedisAddr + "/0")
	if code != 0 || !strings.Contains(out, "supervisor") || strings.Contains(out, secret) {
		t.Fatalf("export through the URL: exit %d\n%s", code, out)
	}
	code, out = export("redis://" + user + ":wrong-" + secret + "@" + l.RedisAddr + "/0")
	if code == 0 || strings.Contains(out, secret) {
		t.Fatalf("export with a wrong password: exit %d\n%s", code, out)
	}
}
