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
	"errors"
	"fmt"
	"slices"
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

	b.Run("idle", func(b *testing.B) { measureIntercepts(ctx, b, cw) })

	busy := false // the calls outlive the first, one-iteration round of b.Run
	b.Run(fmt.Sprintf("%d-live-calls", busyCalls), func(b *testing.B) {
		if !busy {
			for i := range busyCalls {
				// Customers calling agents nobody monitors: 2 channels each.
				mustAgentLeg(ctx, b, fs, fmt.Sprint(3000+i), fmt.Sprint(5551000+i))
			}
			busy = true
		}
		measureIntercepts(ctx, b, cw)
	})
}

// measureIntercepts runs min(b.N, maxIntercepts) supervisor calls one after the
// other and reports their socket → eavesdrop latency by FreeSWITCH's timestamps
// (p50-ms, p99-ms, max-ms), and by when this host read the two events
// (read-p50-ms, read-p99-ms): FreeSWITCH's timestamps move in steps of about 20 ms
// in the lab, the host's clock does not. A call that never reaches its socket
// (FreeSWITCH never routed it: nothing callwarden did) is left out and counted
// (stuck-calls); one that reaches callwarden and not eavesdrop fails the benchmark.
func measureIntercepts(ctx context.Context, b *testing.B, cw *fsDaemon) {
	n := min(b.N, maxIntercepts)
	lat, read := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	stuck := 0
	ev := subscribeFS(ctx, b, cw.fs)
	b.ResetTimer()
	for range n {
		sup := cw.supervisorCall(ctx, b, "1001", "*2222001")
		fsLat, readLat, err := interceptLatency(ctx, ev, sup)
		switch {
		case err == nil:
			lat, read = append(lat, fsLat), append(read, readLat)
		case !errors.Is(err, errNoSocket):
			b.Fatal(err)
		default:
			stuck++
			d, derr := cw.fs.Dump(ctx, sup)
			b.Logf("%v; the channel: %s(%s) %s %v", err, d["variable_current_application"],
				d["variable_current_application_data"], d["Channel-State"], derr)
			ev = subscribeFS(ctx, b, cw.fs) // the timed-out connection may be mid-frame
		}
		// One session at a time: the next call must not queue behind this one.
		mustOK(b, cw.fs.Kill(ctx, sup))
		mustOK(b, cw.fs.WaitGone(ctx, sup))
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatalf("none of %d supervisor calls reached eavesdrop", n)
	}
	slices.Sort(read)
	b.ReportMetric(float64(read[len(read)/2].Microseconds())/1000, "read-p50-ms")
	b.ReportMetric(float64(read[min(len(read)*99/100, len(read)-1)].Microseconds())/1000, "read-p99-ms")
	b.ReportMetric(float64(stuck), "stuck-calls")
	reportPercentiles(b, lat)
	b.ReportMetric(0, "ns/op") // the whole call's set-up and tear-down: not the figure
}

// errNoSocket: the supervisor's call never started its socket application.
var errNoSocket = errors.New("no socket")

// interceptLatency is the time from the supervisor's channel starting `socket` to
// it starting `eavesdrop`, by FreeSWITCH's clock and by when the events were read.
func interceptLatency(ctx context.Context, ev *fsEvents, sup string) (byFS, byRead time.Duration, err error) {
	socket, err := ev.next(ctx, isExecute(sup, "socket"))
	if err != nil {
		return 0, 0, fmt.Errorf("%w on %s: %w", errNoSocket, sup, err)
	}
	socketRead := ev.read
	eavesdrop, err := ev.next(ctx, isExecute(sup, "eavesdrop"))
	if err != nil {
		return 0, 0, fmt.Errorf("no eavesdrop on %s: %w", sup, err)
	}
	return eavesdrop.Sub(socket), ev.read.Sub(socketRead), nil
}

func isExecute(uuid, app string) func(map[string]string) bool {
	return func(h map[string]string) bool {
		return h["Event-Name"] == "CHANNEL_EXECUTE" && h["Unique-ID"] == uuid && h["Application"] == app
	}
}
