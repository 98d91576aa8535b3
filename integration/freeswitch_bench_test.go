package integration

// The FreeSWITCH intercept latency: `callwarden serve` against the lab's FreeSWITCH,
// supervisor 1001 dialling *222<agent> again and again, measured from FreeSWITCH's
// own event timestamps on the supervisor's channel (Event-Date-Timestamp,
// microseconds): the CHANNEL_EXECUTE of `socket` (the feature code hands the call to
// callwarden) to the CHANNEL_EXECUTE of `eavesdrop` (callwarden's enforcement
// running). In between: the TCP connect, `connect`, the target's call looked up
// (`show channels`, `uuid_dump`), the decision, its audit record queued, the event
// subscription, the variables, `answer` and `eavesdrop` sent. `make bench-intercept`.

import (
	"context"
	"fmt"
	"testing"
	"time"
)

const (
	// maxIntercepts caps one run's supervisor calls, whatever b.N asks: each takes
	// about a quarter of a second of the shared lab.
	maxIntercepts = 200
	// busyCalls is the number of unrelated live calls of the busy case.
	busyCalls = 50
)

func BenchmarkFreeSWITCHIntercept(b *testing.B) {
	l, fs := suite.Lab(b), suite.FreeSWITCH(b)
	ctx := contextFor(b, 20*time.Minute)
	cw := serveFreeSWITCHPolicy(ctx, b, l, fs, "callwarden", freeswitchMonitorProfiles)
	agentLeg := mustAgentLeg(ctx, b, fs, "2001", "5550100")
	waitListed(ctx, b, fs, agentLeg)
	ev := subscribeFS(ctx, b, fs)

	b.Run("idle", func(b *testing.B) { measureIntercepts(ctx, b, cw, ev) })

	busy := false // the calls outlive the first, one-iteration round of b.Run
	b.Run(fmt.Sprintf("%d-live-calls", busyCalls), func(b *testing.B) {
		if !busy {
			for i := range busyCalls {
				// Customers calling agents nobody monitors: 2 channels each.
				mustAgentLeg(ctx, b, fs, fmt.Sprint(3000+i), fmt.Sprint(5551000+i))
			}
			busy = true
		}
		measureIntercepts(ctx, b, cw, ev)
	})
}

// measureIntercepts runs min(b.N, maxIntercepts) supervisor calls one after the
// other and reports their socket → eavesdrop latency (p50-ms, p99-ms, max-ms).
func measureIntercepts(ctx context.Context, b *testing.B, cw *fsDaemon, ev *fsEvents) {
	n := min(b.N, maxIntercepts)
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for range n {
		sup := cw.supervisorCall(ctx, b, "1001", "*2222001")
		lat = append(lat, interceptLatency(ctx, b, ev, sup))
		// One session at a time: the next call must not queue behind this one.
		mustOK(b, cw.fs.Kill(ctx, sup))
		mustOK(b, cw.fs.WaitGone(ctx, sup))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	b.ReportMetric(0, "ns/op") // the whole call's set-up and tear-down: not the figure
}

// interceptLatency is the time, by FreeSWITCH's clock, from the supervisor's
// channel starting `socket` to it starting `eavesdrop`.
func interceptLatency(ctx context.Context, tb testing.TB, ev *fsEvents, sup string) time.Duration {
	tb.Helper()
	socket := ev.wait(ctx, tb, "the supervisor's socket", isExecute(sup, "socket"))
	eavesdrop := ev.wait(ctx, tb, "the supervisor's eavesdrop", isExecute(sup, "eavesdrop"))
	return eavesdrop.Sub(socket)
}

func isExecute(uuid, app string) func(map[string]string) bool {
	return func(h map[string]string) bool {
		return h["Event-Name"] == "CHANNEL_EXECUTE" && h["Unique-ID"] == uuid && h["Application"] == app
	}
}
