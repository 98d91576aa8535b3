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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwarden/callwarden/integration/lab"
)

const (
	// maxIntercepts caps one run's supervisor calls, whatever b.N asks: each takes
	// about a quarter of a second of the shared lab.
	maxIntercepts = 200
	// busyCalls is the number of unrelated live calls of the busy case.
	busyCalls = 50
	// fsOriginateBatch bounds the background calls originated (or killed) at
	// once: each originate holds an ESL connection until both legs answer.
	fsOriginateBatch = 10
	// growLimit bounds the set-up of one load's background calls.
	growLimit = 3 * time.Minute
)

func BenchmarkFreeSWITCHIntercept(b *testing.B) {
	l, fs := suite.Lab(b), suite.FreeSWITCH(b)
	ctx := contextFor(b, 20*time.Minute)
	cw := serveFreeSWITCHPolicy(ctx, b, l, fs, "callwarden", freeswitchMonitorProfiles)
	agentLeg := mustAgentLeg(ctx, b, fs, "2001", "5550100")
	waitListed(ctx, b, fs, agentLeg)

	b.Run("idle", func(b *testing.B) { measureIntercepts(ctx, b, cw) })

	bg := &fsBackground{fs: fs}
	b.Cleanup(func() { bg.hangupAll(b) })
	b.Run(fmt.Sprintf("%d-live-calls", busyCalls), func(b *testing.B) {
		bg.grow(ctx, b, busyCalls) // once: the calls outlive b.Run's first round
		measureIntercepts(ctx, b, cw)
	})
}

// BenchmarkFreeSWITCHInterceptUnderLoad is BenchmarkAsteriskInterceptUnderLoad's
// FreeSWITCH side: socket → eavesdrop (measureIntercepts) with fsLoads unrelated
// live calls of 2 channels each, one supervisor at a time and ten at
// once on agent 2001, and the watchdog's rogue eavesdrop → hang-up under the same
// load. The lab's switch.conf holds 1,000 sessions and 100 new ones a second:
// both are raised for the benchmark (fsctl), and restored after. `make bench-pbx`.
func BenchmarkFreeSWITCHInterceptUnderLoad(b *testing.B) {
	l, fs := suite.Lab(b), suite.FreeSWITCH(b)
	ctx := contextFor(b, 20*time.Minute)
	raiseSessionLimits(ctx, b, fs, 2500, 500)
	cw := serveFreeSWITCHPolicy(ctx, b, l, fs, "callwarden", freeswitchMonitorProfiles)
	agentLeg := mustAgentLeg(ctx, b, fs, "2001", "5550100")
	waitListed(ctx, b, fs, agentLeg)
	bg := &fsBackground{fs: fs}
	b.Cleanup(func() { bg.hangupAll(b) })

	for _, load := range fsLoads {
		b.Run(fmt.Sprintf("%d-calls", load), func(b *testing.B) {
			bg.grow(ctx, b, load)
			b.Run("sequential", func(b *testing.B) {
				bg.check(ctx, b)
				measureIntercepts(ctx, b, cw)
			})
			b.Run(fmt.Sprintf("%d-at-once", atOnce), func(b *testing.B) {
				bg.check(ctx, b)
				measureSimultaneousIntercepts(ctx, b, cw)
			})
			b.Run("watchdog-eavesdrop", func(b *testing.B) {
				bg.check(ctx, b)
				measureEavesdropWatchdog(ctx, b, fs, agentLeg)
			})
		})
	}
}

// fsLoads are the background calls of BenchmarkFreeSWITCHInterceptUnderLoad: what
// the lab's FreeSWITCH holds on 2 cores. 250 calls (500 channels, each speaking a
// tone) take it 1.2-1.4 cores at rest: it held them through the cases in one run
// and stopped answering ESL in another; 500 never came up (docs/performance.md).
var fsLoads = []int{0, 100, 200}

// raiseSessionLimits sets FreeSWITCH's max_sessions and sessions per second
// until the benchmark ends, then restores the lab's (switch.conf: 1000, 100).
func raiseSessionLimits(ctx context.Context, b *testing.B, fs *lab.TestFreeSWITCH, sessions, perSecond int) {
	b.Helper()
	set := func(ctx context.Context, sessions, perSecond int) error {
		_, err1 := fs.API(ctx, fmt.Sprintf("fsctl max_sessions %d", sessions))
		_, err2 := fs.API(ctx, fmt.Sprintf("fsctl sps %d", perSecond))
		return errors.Join(err1, err2)
	}
	mustOK(b, set(ctx, sessions, perSecond))
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := set(cctx, 1000, 100); err != nil {
			b.Errorf("restore FreeSWITCH's session limits: %v", err)
		}
	})
}

// fsBackground are unrelated live calls: customers calling agents 3000 and up,
// whom nobody monitors (CustomerCall: 2 channels a call, each speaking a tone).
type fsBackground struct {
	fs   *lab.TestFreeSWITCH
	legs []string // the agents' legs
}

// grow makes calls, fsOriginateBatch at a time, until there are n; it fails
// the benchmark if they are not all up within growLimit.
func (bg *fsBackground) grow(ctx context.Context, b *testing.B, n int) {
	b.Helper()
	if n <= len(bg.legs) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, growLimit)
	defer cancel()
	started, base := time.Now(), len(bg.legs)
	legs := make([]string, n-base)
	err := bounded(len(legs), fsOriginateBatch, func(i int) error {
		_, leg, err := bg.fs.CustomerCall(ctx, "", fmt.Sprint(3000+base+i), fmt.Sprint(5551000+base+i))
		legs[i] = leg
		return err
	})
	bg.legs = append(bg.legs, slices.DeleteFunc(legs, func(leg string) bool { return leg == "" })...)
	mustOK(b, err)
	// `show channels` lists a channel about a second after it appears.
	waitFor(ctx, b, "the background calls listed", func() error {
		chans, err := bg.fs.Channels(ctx)
		if err != nil {
			return err
		}
		if up, want := bg.count(chans), 2*len(bg.legs); up != want {
			return fmt.Errorf("%d of %d background channels listed", up, want)
		}
		return nil
	})
	b.Logf("%d background calls up and listed in %s", n, time.Since(started).Round(time.Millisecond))
}

// check fails the benchmark unless FreeSWITCH lists every background call's two
// channels, and reports its channel count (channels) and how long that `show
// channels` took (list-ms), callwarden looking a target's call up there, and the
// cores FreeSWITCH's container used at rest then (pbx-cores).
func (bg *fsBackground) check(ctx context.Context, b *testing.B) {
	b.Helper()
	started := time.Now()
	chans, err := bg.fs.Channels(ctx)
	took := time.Since(started)
	mustOK(b, err)
	if up, want := bg.count(chans), 2*len(bg.legs); up != want {
		b.Fatalf("%d of %d background channels listed", up, want)
	}
	reportContainerCores(b, bg.fs.ContainerID(), coresWindow)
	b.Cleanup(func() { // after the measurement's last timer reset, which drops metrics
		b.ReportMetric(float64(len(chans)), "channels")
		b.ReportMetric(ms(took), "list-ms")
	})
}

// count is how many of chans are background calls' (loopback/agent_3xxx-a or -b).
func (bg *fsBackground) count(chans []lab.FSChannel) int {
	n := 0
	for _, c := range chans {
		if strings.HasPrefix(c.Name, "loopback/agent_3") {
			n++
		}
	}
	return n
}

// hangupAll kills every background call, fsOriginateBatch at a time, and waits
// until FreeSWITCH lists none of their channels.
func (bg *fsBackground) hangupAll(tb testing.TB) {
	if len(bg.legs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// As many at a time as grow: each kill beyond the lab's 4 idle ESL
	// connections dials one, and a loaded FreeSWITCH greets slowly.
	if err := bounded(len(bg.legs), fsOriginateBatch, func(i int) error { return bg.fs.Kill(ctx, bg.legs[i]) }); err != nil {
		tb.Errorf("hang up the background calls: %v", err)
	}
	waitFor(ctx, tb, "the background calls gone", func() error {
		chans, err := bg.fs.Channels(ctx)
		if err != nil {
			return err
		}
		if n := bg.count(chans); n > 0 {
			return fmt.Errorf("%d background channels left", n)
		}
		return nil
	})
	bg.legs = nil
}

// measureSimultaneousIntercepts runs rounds of atOnce supervisor calls started at
// the same moment (min(b.N, maxSamples/atOnce) rounds) and reports their socket →
// eavesdrop latency by FreeSWITCH's timestamps as measureIntercepts does, with
// round-max-p50-ms, the median over rounds of the slowest of the round. A call that
// never reaches its socket is counted (stuck-calls), and so is one callwarden
// refused (refused); one that reaches callwarden and neither fails the benchmark.
func measureSimultaneousIntercepts(ctx context.Context, b *testing.B, cw *fsDaemon) {
	ev := subscribeFS(ctx, b, cw.fs)
	var lat, slowest []time.Duration
	stuck, refused := 0, 0
	b.ResetTimer()
	for range min(b.N, maxSamples/atOnce) {
		sups := make([]string, atOnce)
		errs := make([]error, atOnce)
		var wg sync.WaitGroup
		for i := range atOnce {
			wg.Go(func() {
				call, err := cw.fs.SupervisorCall(ctx, "1001", "*2222001", cw.outbound)
				sups[i], errs[i] = call.A, err
			})
		}
		wg.Wait()
		mustOK(b, errors.Join(errs...))
		got, err := collectIntercepts(ctx, ev, sups)
		var round time.Duration
		for _, sup := range sups {
			switch in := got[sup]; {
			case !in.eavesdrop.IsZero():
				d := in.eavesdrop.Sub(in.socket)
				lat, round = append(lat, d), max(round, d)
			case in.refusal != "":
				if refused++; refused == 1 {
					b.Logf("%s refused (%s)", sup, in.refusal)
				}
			case in.socket.IsZero():
				stuck++
			default:
				b.Fatalf("%s reached callwarden and not eavesdrop: %v", sup, err)
			}
		}
		if err != nil {
			ev = subscribeFS(ctx, b, cw.fs) // the timed-out connection may be mid-frame
		}
		slowest = append(slowest, round)
		for _, sup := range sups {
			mustOK(b, cw.fs.Kill(ctx, sup))
		}
		for _, sup := range sups {
			mustOK(b, cw.fs.WaitGone(ctx, sup))
		}
	}
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no supervisor call reached eavesdrop")
	}
	b.ReportMetric(float64(stuck), "stuck-calls")
	b.ReportMetric(float64(refused), "refused")
	reportPercentiles(b, lat)
	slices.Sort(slowest)
	b.ReportMetric(ms(percentile(slowest, 0.5)), "round-max-p50-ms")
	b.ReportMetric(0, "ns/op")
}

// fsIntercept is when a supervisor's channel started socket and eavesdrop, by
// FreeSWITCH's timestamps (zero: not seen), or what it played instead: callwarden
// refused it (under load: pbx_error, an ESL answer past its deadline) and plays
// the refusal tone.
type fsIntercept struct {
	socket, eavesdrop time.Time
	refusal           string
}

// collectIntercepts reads ev until every one of sups started eavesdrop or a
// playback (a refusal), or for 10 s without one; it returns what it saw, and why
// it stopped early.
func collectIntercepts(ctx context.Context, ev *fsEvents, sups []string) (map[string]fsIntercept, error) {
	got := make(map[string]fsIntercept, len(sups))
	done := 0
	_, err := ev.next(ctx, func(h map[string]string) bool {
		id := h["Unique-ID"]
		if h["Event-Name"] != "CHANNEL_EXECUTE" || !slices.Contains(sups, id) {
			return false
		}
		us, err := strconv.ParseInt(h["Event-Date-Timestamp"], 10, 64)
		if err != nil {
			return false // next fails on it if it is the last one awaited
		}
		in := got[id]
		switch h["Application"] {
		case "socket":
			in.socket = time.UnixMicro(us)
		case "eavesdrop":
			if in.eavesdrop.IsZero() && in.refusal == "" {
				done++
			}
			in.eavesdrop = time.UnixMicro(us)
		case "playback":
			if in.eavesdrop.IsZero() && in.refusal == "" {
				done++
			}
			in.refusal = "playback " + h["Application-Data"]
		}
		got[id] = in
		return done == len(sups)
	})
	return got, err
}

// measureEavesdropWatchdog starts a rogue eavesdrop on agentLeg from the dialplan
// (rogueEavesdrop), min(b.N, maxSamples) times, and reports the time from its start
// to its hang-up by the watchdog (CHANNEL_HANGUP), by FreeSWITCH's timestamps.
func measureEavesdropWatchdog(ctx context.Context, b *testing.B, fs *lab.TestFreeSWITCH, agentLeg string) {
	ev := subscribeFS(ctx, b, fs)
	var lat []time.Duration
	b.ResetTimer()
	for range min(b.N, maxSamples) {
		spy, began := rogueEavesdrop(ctx, b, fs, ev, agentLeg)
		ended := ev.wait(ctx, b, "the spy hung up", isEvent("CHANNEL_HANGUP", spy))
		lat = append(lat, ended.Sub(began))
		mustOK(b, fs.WaitGone(ctx, spy))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	b.ReportMetric(0, "ns/op")
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
	b.ReportMetric(ms(percentile(read, 0.50)), "read-p50-ms")
	b.ReportMetric(ms(percentile(read, 0.99)), "read-p99-ms")
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
