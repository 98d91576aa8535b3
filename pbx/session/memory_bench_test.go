package session

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

// BenchmarkLiveSessionMemory measures the heap each live monitor session
// holds in a daemon, for 10,000 sessions with lab-sized fields (channel
// ids, a caller number, a profile), with the registry alone (Redis mode:
// the shared record lives in Redis) and with the in-memory store of file
// mode holding its copy. Each iteration starts and ends one more session
// (ns/op: the registry's share of a session's life).
func BenchmarkLiveSessionMemory(b *testing.B) {
	for name, store := range map[string]func() enforce.SessionStore{
		"registry":              func() enforce.SessionStore { return nil },
		"registry+memory_store": func() enforce.SessionStore { return memory.NewSessions() },
	} {
		b.Run(name, func(b *testing.B) {
			const n = 10000
			var cur atomic.Pointer[enforce.Snapshot]
			cur.Store(testPolicy{profile: "full"}.snapshot(b))
			r, err := NewRegistry(RegistryOptions{Policy: cur.Load, Store: store()})
			if err != nil {
				b.Fatal(err)
			}
			pbx, a := &fakePBX{}, newAudit(discard{})
			start := func(i int) *Monitor {
				m, err := StartMonitor(context.Background(), pbx, a, MonitorSpec{
					Supervisor: fmt.Sprintf("1732867200.%d", 2*i), Target: fmt.Sprintf("1732867200.%d", 2*i+1),
					Mode: Listen, Registry: r, Downgrades: true,
					Entry: Entry{User: "alice", Action: enforce.MonitorListen, Target: "agent2001", Queue: "sales",
						Caller: "+33612345678", Channels: []string{fmt.Sprintf("1732867200.%d", 2*i)}},
					Allowed: Decided(enforce.Decision{Allow: true, Profile: "supervisor-with-recording"}),
				})
				if err != nil {
					b.Fatal(err)
				}
				return m
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			live := make([]*Monitor, n)
			for i := range live {
				live[i] = start(i)
			}
			pbx.calls = nil // the fake's call log is not the sessions' memory
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				m := start(n + i)
				if err := m.End(context.Background(), enforce.CauseRequesterHangup); err != nil {
					b.Fatal(err)
				}
				pbx.calls = pbx.calls[:0]
			}
			b.StopTimer()
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/live-session")
			runtime.KeepAlive(live)
		})
	}
}
