package integration

// Store benchmarks against the lab's Redis. They run only with -bench:
//
//	go test -run '^$' -bench . -benchmem ./integration/
//
// `make integration` compiles them without running them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/callwarden/callwarden/cache"
	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/cache/storetest"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// enforcers starts two daemons (Loaders with their own Redis clients,
// following changes incrementally) on the policy in the store and returns
// them with channels of the generations they load. They poll once an hour,
// so the pub/sub notification is what carries a change.
func enforcers(b *testing.B, l *lab.TestLab) ([2]*cache.Loader, [2]chan uint64) {
	var (
		daemons  [2]*cache.Loader
		reloaded [2]chan uint64
	)
	for i := range daemons {
		ch := make(chan uint64, 1024)
		reloaded[i] = ch
		daemons[i] = startLoader(b, newRedisStore(b, l, nil), func(o *cache.LoaderOptions) {
			o.PollInterval, o.Staleness, o.CallTimeout = time.Hour, 0, time.Minute
			o.OnReload = func(gen uint64, _ time.Duration, err error) {
				if err == nil {
					ch <- gen
				}
			}
		})
		d := daemons[i]
		waitUntil(b, time.Minute, "daemon "+strconv.Itoa(i)+" loads", func() bool { return d.Snapshot() != nil })
	}
	for _, ch := range reloaded {
		drain(ch)
	}
	return daemons, reloaded
}

// BenchmarkApplyToEnforced measures, per policy size, the time from the
// start of a one-entry change to the moment two daemons both decide from
// the new generation: p50 and p99 in ms (apply-p50-ms is the apply call
// alone). The change is made the way the admin API makes it: ApplyPatch
// against the snapshot of the daemon serving the request, so it writes
// one entry and the daemons patch their snapshots from the change log.
//
//   - assign: one user's profile toggled on and off (assign / revoke);
//   - profile: one profile's grant changed (mask_digits and a queue),
//     reaching the ~1% of users that hold it.
func BenchmarkApplyToEnforced(b *testing.B) {
	for _, users := range []int{4, 10_000, 100_000} {
		for _, change := range []string{"assign", "profile"} {
			b.Run("users="+strconv.Itoa(users)+"/"+change, func(b *testing.B) {
				l := suite.Lab(b)
				ctx := context.Background()
				p := benchPolicy(b, users)
				admin := benchStore(b, l, p)
				daemons, reloaded := enforcers(b, l)
				user, prof := p.Users[1], p.Profiles[0]
				var patch enforce.PolicyPatch
				nextPatch := func() {
					patch = enforce.PolicyPatch{}
					switch change {
					case "assign":
						if user.Profile == "" {
							user.Profile = p.Users[0].Profile
						} else {
							user.Profile = ""
						}
						patch.Users = []enforce.User{user}
					case "profile":
						prof.MaskDigits = (prof.MaskDigits + 1) % 4
						patch.Profiles = []enforce.Profile{prof}
					}
				}
				measureApplyToEnforced(b, reloaded, nextPatch, func() (uint64, error) {
					gen, _, err := admin.ApplyPatch(ctx, daemons[0].Snapshot(), patch)
					return gen, err
				})
			})
		}
	}
}

// BenchmarkFileApplyToEnforced is BenchmarkApplyToEnforced for `callwarden
// profiles apply` of a whole file in which one user changed: the apply
// reads the stored policy whole to compute the diff (the cost grows with
// the policy), the daemons still patch only the changed entry.
func BenchmarkFileApplyToEnforced(b *testing.B) {
	for _, users := range []int{4, 10_000, 100_000} {
		b.Run("users="+strconv.Itoa(users), func(b *testing.B) {
			l := suite.Lab(b)
			ctx := context.Background()
			p := benchPolicy(b, users)
			admin := benchStore(b, l, p)
			_, reloaded := enforcers(b, l)
			toggle := func() {
				if p.Users[1].Profile == "" {
					p.Users[1].Profile = p.Users[0].Profile
				} else {
					p.Users[1].Profile = ""
				}
			}
			measureApplyToEnforced(b, reloaded, toggle, func() (uint64, error) {
				gen, _, err := admin.ApplyPolicy(ctx, p, enforce.Unconditionally())
				return gen, err
			})
		})
	}
}

// benchPolicy is storetest's small policy for users <= 4, its big one of
// that many users otherwise.
func benchPolicy(b *testing.B, users int) enforce.Policy {
	if users > 4 {
		return storetest.BigPolicy(b, users)
	}
	return storetest.Policy(b)
}

// benchStore is a store on the lab's Redis holding p, whose calls may
// take a minute (a big policy is written and read whole).
func benchStore(b *testing.B, l *lab.TestLab, p enforce.Policy) *redisstore.Store {
	r := newRedisStore(b, l, func(o *redisstore.Options) { o.CallTimeout = time.Minute })
	if _, _, err := r.ApplyPolicy(context.Background(), p, enforce.Unconditionally()); err != nil {
		b.Fatal(err)
	}
	return r
}

// measureApplyToEnforced times, per iteration, apply (after an untimed
// change) until every daemon of reloaded has loaded the generation apply
// wrote, and reports the percentiles and the apply call's own p50.
func measureApplyToEnforced(b *testing.B, reloaded [2]chan uint64, change func(), apply func() (uint64, error)) {
	var lat, applyLat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		change()
		start := time.Now()
		gen, err := apply()
		if err != nil {
			b.Fatal(err)
		}
		applyLat = append(applyLat, time.Since(start))
		for _, ch := range reloaded {
			waitGen(b, ch, gen)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	slices.Sort(applyLat)
	b.ReportMetric(float64(applyLat[len(applyLat)/2].Microseconds())/1000, "apply-p50-ms")
}

func drain(ch chan uint64) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func waitGen(b *testing.B, ch chan uint64, gen uint64) {
	timeout := time.After(time.Minute)
	for {
		select {
		case g := <-ch:
			if g >= gen {
				return
			}
		case <-timeout:
			b.Fatalf("generation %d not loaded within a minute", gen)
		}
	}
}

// BenchmarkFullReload100k measures what a daemon pays to reload a
// 100k-user policy from Redis: one MULTI/EXEC read, decoding and
// compiling the snapshot. heap-MB is the live heap the snapshot holds.
func BenchmarkFullReload100k(b *testing.B) {
	ctx := context.Background()
	r := benchStore(b, suite.Lab(b), storetest.BigPolicy(b, 100_000))
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := r.Policy(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read+compile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, gen, err := r.Policy(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := enforce.NewSnapshot(p, gen); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("heap", func(b *testing.B) {
		var before, after runtime.MemStats
		var keep *enforce.Snapshot
		for b.Loop() {
			keep = nil
			runtime.GC()
			runtime.ReadMemStats(&before)
			p, gen, err := r.Policy(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if keep, err = enforce.NewSnapshot(p, gen); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
		runtime.KeepAlive(keep)
	})
}

// BenchmarkWarmDecide measures a decision from a Loader's warm snapshot
// of 100k users on Redis: Loader.Snapshot() then enforce.Decide, the
// daemon's hot path. It should match enforce's BenchmarkDecide.
func BenchmarkWarmDecide(b *testing.B) {
	r := benchStore(b, suite.Lab(b), storetest.BigPolicy(b, 100_000))
	d := startLoader(b, r, func(o *cache.LoaderOptions) { o.CallTimeout = time.Minute })
	waitUntil(b, time.Minute, "the daemon loads", func() bool { return d.Snapshot() != nil })
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	// u1234 has profile p234 (own queues q2340..q2349) and queues q1234..q1238.
	for name, req := range map[string]enforce.Request{
		"allow-queue":    {User: "u1234", Action: enforce.MonitorListen, Queue: "q2345", Agent: "u4321"},
		"deny-scope":     {User: "u1234", Action: enforce.MonitorBarge, Queue: "q5000", Agent: "u4321"},
		"deny-unknown":   {User: "nobody", Action: enforce.MonitorListen, Queue: "q2345"},
		"allow-assigned": {User: "u1234", Action: enforce.RecordingStart, Queue: "q1236"},
	} {
		want := name[:5] == "allow"
		if got := enforce.Decide(d.Snapshot(), &req, now).Allow; got != want {
			b.Fatalf("%s: allow = %v", name, got)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enforce.Decide(d.Snapshot(), &req, now)
			}
		})
	}
}

// BenchmarkAuditAppend measures one synchronous chained append to the
// audit stream (hashed in Go, appended by a script that checks the chain
// head), as admin changes are audited.
func BenchmarkAuditAppend(b *testing.B) {
	r := newRedisStore(b, suite.Lab(b), func(o *redisstore.Options) { o.Audit.MaxLen = 100_000 })
	rec := enforce.AuditRecord{Time: time.Now(), Source: "asterisk", User: "alice", Action: "monitor.listen",
		Target: "carol", Queue: "sales", Decision: "allow", Reason: "granted", Caller: "+33 1 23 45 ** **",
		PBX: "pbx1", Channels: []string{"PJSIP/1001-0000002a", "PJSIP/2001-0000002b"}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Audit(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditAsync measures the decision path's cost of auditing with
// the asynchronous writer (queueing one record, ns/op) and, as written/s,
// the rate at which its batches drain into the stream. The loop
// queues far faster than Redis appends, so the queue fills and records
// are dropped (dropped-%): that is the writer working as designed under a
// load no PBX produces.
func BenchmarkAuditAsync(b *testing.B) {
	r := newRedisStore(b, suite.Lab(b), func(o *redisstore.Options) { o.Audit.MaxLen = 100_000 })
	a := cache.NewAsyncAuditor(r, cache.AsyncAuditOptions{QueueSize: 1 << 20})
	go func() { _ = a.Run(context.Background()) }()
	rec := enforce.AuditRecord{Time: time.Now(), Source: "asterisk", User: "alice", Action: "monitor.listen",
		Target: "carol", Queue: "sales", Decision: "allow", Reason: "granted", Caller: "+33 1 23 45 ** **",
		PBX: "pbx1", Channels: []string{"PJSIP/1001-0000002a", "PJSIP/2001-0000002b"}}
	ctx := context.Background()
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Audit(ctx, rec); err != nil && !errors.Is(err, cache.ErrAuditDropped) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := a.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(a.Written())/time.Since(start).Seconds(), "written/s")
	b.ReportMetric(100*float64(a.Dropped())/float64(a.Written()+a.Dropped()), "dropped-%")
}

// BenchmarkRedisListRecordingsInScope measures the store's share of GET
// /v1/recordings on a catalogue of 1,000,000 recordings (1,000 queues):
// one page of the 1,000 of one queue, and of the newest 1,000 of all,
// read as ListRecordings reads them (one ZRANGE BYLEX, one MGET). The
// catalogue is written directly in the documented key layout (docs/redis.md),
// pipelined, since SaveRecording's WATCH per recording would take minutes.
func BenchmarkRedisListRecordingsInScope(b *testing.B) {
	l := suite.Lab(b)
	r := newRedisStore(b, l, nil)
	ctx := context.Background()
	const n, queues, chunk = 1_000_000, 1_000, 10_000
	// The lab's own cleanup deletes a test's keys within a few seconds;
	// these 1,000,000 recordings are unlinked first, in batches.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		iter := l.Redis.Scan(ctx, 0, l.KeyPrefix+"*", chunk).Iterator()
		var keys []string
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == chunk {
				mustOK(b, l.Redis.Unlink(ctx, keys...).Err())
				keys = keys[:0]
			}
		}
		mustOK(b, iter.Err())
		if len(keys) > 0 {
			mustOK(b, l.Redis.Unlink(ctx, keys...).Err())
		}
	})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += chunk {
		p := l.Redis.Pipeline()
		for i := start; i < start+chunk; i++ {
			rec := enforce.Recording{ID: fmt.Sprintf("%012d", i), Name: "callwarden-" + fmt.Sprintf("%012d", i), PBX: "asterisk",
				Queue: "q" + strconv.Itoa(i%queues), Target: "a" + strconv.Itoa(i%5000), StartedBy: "alice",
				StartedAt: t0.Add(time.Duration(i) * time.Second), State: enforce.RecordingStopped, Format: "wav"}
			raw, err := json.Marshal(rec)
			if err != nil {
				b.Fatal(err)
			}
			key, _ := enforce.CatalogueKey(&rec)
			p.Set(ctx, r.Key(redisstore.KeyRecordingPrefix+rec.ID), raw, 0)
			for _, ix := range []string{redisstore.KeyCatalogue, redisstore.KeyCatalogueQueue + rec.Queue, redisstore.KeyCatalogueAgent + rec.Target} {
				p.ZAdd(ctx, r.Key(ix), goredis.Z{Member: key})
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for name, ix := range map[string]enforce.RecordingIndex{"one queue, 1000 in scope": {Queue: "q7"}, "all, newest 1000": {}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				recs, err := r.ListRecordings(ctx, enforce.RecordingQuery{Index: ix, Limit: 1001})
				if err != nil || len(recs) < 1000 {
					b.Fatalf("%d recordings, %v", len(recs), err)
				}
			}
		})
	}
}
