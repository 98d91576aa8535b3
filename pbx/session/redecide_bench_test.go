package session

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// BenchmarkRedecide10k measures one policy change (Registry.Redecide) over
// 10,000 live sessions that stay allowed, the common case: one decision
// per session and no timer moved. It reports the time per session and the
// heap each live session holds (the Monitor, its handle and record).
func BenchmarkRedecide10k(b *testing.B) {
	const n = 10000
	var cur atomic.Pointer[enforce.Snapshot]
	cur.Store(testPolicy{profile: "full"}.snapshot(b))
	r, err := NewRegistry(RegistryOptions{Policy: cur.Load})
	if err != nil {
		b.Fatal(err)
	}
	pbx, a := &fakePBX{}, newAudit(discard{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	live := make([]*Monitor, n)
	for i := range live {
		live[i], err = StartMonitor(context.Background(), pbx, a, MonitorSpec{
			Supervisor: "sup-" + strconv.Itoa(i), Target: "agent-ch", Mode: Listen, Registry: r, Downgrades: true,
			Entry:   Entry{User: "alice", Action: enforce.MonitorListen, Target: "carol", Queue: "sales"},
			Allowed: Decided(enforce.Decision{Allow: true, Profile: "full"}),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	pbx.calls = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	next := testPolicy{profile: "full"}.snapshot(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Redecide(next)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/session")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/live-session")
	runtime.KeepAlive(live)
}

// discard is an auditor that keeps nothing.
type discard struct{}

func (discard) Audit(context.Context, enforce.AuditRecord) error { return nil }
