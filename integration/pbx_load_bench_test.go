package integration

// The Asterisk intercept latency under PBX load: callwarden's Stasis application
// (in-process, as in the Asterisk suite) against the lab's Asterisk while it carries
// 0, 500 or 1,000 unrelated live calls, measured from Asterisk's own event
// timestamps as TestInterceptLatencyFromStasisToBridged does: the supervisor's
// ChannelDialplan to Stasis, then the snoop on the agent entering the supervisor's
// bridge. Supervisors dial one at a time (sequential) and ten at once on the same
// agent (10-at-once); the watchdog's time from a bypass's start to its end is
// measured under the same load (a rogue ChanSpy, a foreign snoop). `make bench-pbx`;
// figures in docs/performance.md.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/session"
)

const (
	// maxSamples caps one case's samples, whatever b.N asks, so a run stops by
	// itself in a few minutes.
	maxSamples = 100
	// atOnce is the number of supervisors of the simultaneous case.
	atOnce = 10
	// originateBatch bounds the background calls created or hung up at once.
	originateBatch = 50
	// sampleLimit bounds one sample's wait for Asterisk's events.
	sampleLimit = 30 * time.Second
	// coresWindow is how long a case watches the PBX's CPU use at rest first.
	coresWindow = 500 * time.Millisecond
)

// BenchmarkAsteriskInterceptUnderLoad reports, for each load, p50-ms, p95-ms,
// p99-ms and max-ms of the sessions bridged, by Asterisk's timestamps; refused,
// the requests callwarden refused (under load: pbx_error, an ARI call past its
// deadline); cw-p50-ms and cw-p99-ms, the `intercept` duration callwarden logs for
// the same sessions (from its handler starting on the StasisStart to ARI's answer
// to the addChannel that bridged the supervisor and the snoop); channels, Asterisk's
// channel count, list-ms, what one GET /channels took before the case, and
// pbx-cores, the cores Asterisk's container used at rest then.
// 10-at-once adds round-max-p50-ms, the median over rounds of the slowest of the
// ten, and x-sequential-p99, its p99 over the sequential case's at the same load
// (target: <= 2).
func BenchmarkAsteriskInterceptUnderLoad(b *testing.B) {
	l := suite.Lab(b)
	ctx := contextFor(b, 20*time.Minute)
	logs, cwLogger := observedLogger(b)
	snap := exampleSnapshot(b)
	ariURL, err := l.DirectARIURL(ctx)
	mustOK(b, err)
	trace := (*ariTrace)(nil)
	if path := os.Getenv("CALLWARDEN_BENCH_ARI_TRACE"); path != "" {
		trace = newARITrace(b, l.ARIURL, path, l.ContainerIDs()[0])
		ariURL = trace.url
	}
	startCallwardenOn(b, l, ariURL, asterisk.WatchdogEnforce, func() *enforce.Snapshot { return snap },
		session.RegistryOptions{Logger: cwLogger})
	// Closed once the agent answers: a stream subscribed to every channel makes
	// Asterisk send it every event of the background calls.
	setup, err := l.ARI.Events(ctx, l.NewID("app"))
	mustOK(b, err)
	agent, ext := salesCall(ctx, b, l, setup, "5550100")
	mustOK(b, setup.Close())
	bg := &backgroundCalls{l: l, prefix: l.NewID("bg")}
	b.Cleanup(func() { bg.hangupAll(b) })

	for _, load := range []int{0, 500, 1000} {
		b.Run(fmt.Sprintf("%d-calls", load), func(b *testing.B) {
			bg.grow(ctx, b, load)
			h := &interceptBench{l: l, bg: bg, asterisk: l.ContainerIDs()[0], agent: agent.ID, ext: ext, logs: logs, trace: trace}
			b.Run("sequential", func(b *testing.B) { h.sequential(ctx, b) })
			b.Run(fmt.Sprintf("%d-at-once", atOnce), func(b *testing.B) { h.simultaneous(ctx, b) })
			b.Run("watchdog-chanspy", func(b *testing.B) { h.watchdogChanSpy(ctx, b) })
			b.Run("watchdog-snoop", func(b *testing.B) { h.watchdogSnoop(ctx, b) })
			b.Run(fmt.Sprintf("list-%d-at-once", atOnce), func(b *testing.B) { h.listsAtOnce(ctx, b) })
		})
	}
}

// observedLogger is callwarden's logger for a benchmark: info and above kept in
// memory for the benchmark to read (the `intercept` of each session), errors also
// in the benchmark's log (not warnings: the watchdog cases log one a bypass).
func observedLogger(tb testing.TB) (*observer.ObservedLogs, *zap.Logger) {
	core, logs := observer.New(zapcore.InfoLevel)
	toTest := zaptest.NewLogger(tb, zaptest.Level(zapcore.ErrorLevel)).Core()
	return logs, zap.New(zapcore.NewTee(core, toTest))
}

// backgroundCalls are unrelated live calls: Local channel pairs whose halves both
// answer and Wait() in cw-customer-audio (extension wait), two channels a call,
// nobody's agent. They stay up until hangupAll.
type backgroundCalls struct {
	l      *lab.TestLab
	prefix string   // of their channel ids
	ids    []string // the ;1 half of each call; the ;2 half is id+"-b"
}

// grow originates calls, originateBatch at a time, until there are n, and waits
// until Asterisk lists their 2n channels up.
func (bg *backgroundCalls) grow(ctx context.Context, b *testing.B, n int) {
	b.Helper()
	if n <= len(bg.ids) {
		return
	}
	started := time.Now()
	ids := make([]string, n-len(bg.ids))
	for i := range ids {
		// Of one width: no id is another's prefix.
		ids[i] = fmt.Sprintf("%s-%05d", bg.prefix, len(bg.ids)+i)
	}
	// Listed before they exist, so that a failed grow still hangs up the others.
	bg.ids = append(bg.ids, ids...)
	err := bounded(len(ids), originateBatch, func(i int) error {
		_, err := bg.l.ARI.Originate(ctx, lab.OriginateParams{
			Endpoint: "Local/wait@cw-customer-audio/n", Context: "cw-customer-audio", Extension: "wait", Priority: 1,
			CallerID: "background", ChannelID: ids[i], OtherChannelID: ids[i] + "-b",
		})
		if err != nil {
			return fmt.Errorf("background call %s: %w", ids[i], err)
		}
		return nil
	})
	mustOK(b, err)
	created := time.Since(started)
	bg.waitUp(ctx, b)
	b.Logf("%d background calls originated in %s, all up in %s", n, created.Round(time.Millisecond),
		time.Since(started).Round(time.Millisecond))
}

// waitUp waits until GET /channels lists every background channel up.
func (bg *backgroundCalls) waitUp(ctx context.Context, b *testing.B) {
	b.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	waitFor(wctx, b, "the background calls up", func() error {
		up, all, err := bg.count(wctx)
		if err != nil {
			return err
		}
		if want := 2 * len(bg.ids); up != want {
			return fmt.Errorf("%d of %d background channels up (%d channels in all)", up, want, all)
		}
		return nil
	})
}

// check fails the benchmark unless every background call is still up (none may
// end during a measurement); it returns what report reports of the PBX's load.
func (bg *backgroundCalls) check(ctx context.Context, b *testing.B) pbxLoad {
	b.Helper()
	started := time.Now()
	up, all, err := bg.count(ctx)
	took := time.Since(started)
	mustOK(b, err)
	if want := 2 * len(bg.ids); up != want {
		b.Fatalf("%d of %d background channels up", up, want)
	}
	return pbxLoad{channels: all, list: took}
}

// pbxLoad is the PBX's channel count before a case, and how long that GET
// /channels took: callwarden lists every channel to find a target's call.
type pbxLoad struct {
	channels int
	list     time.Duration
}

// report reports them (channels, list-ms); after the timer's last reset, which
// deletes the metrics reported before it.
func (p pbxLoad) report(b *testing.B) {
	b.ReportMetric(float64(p.channels), "channels")
	b.ReportMetric(ms(p.list), "list-ms")
}

// count is how many background channels are up, and how many channels Asterisk
// has in all.
func (bg *backgroundCalls) count(ctx context.Context) (up, all int, err error) {
	chans, err := bg.l.ARI.Channels(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, ch := range chans {
		if strings.HasPrefix(ch.ID, bg.prefix+"-") && ch.State == "Up" {
			up++
		}
	}
	return up, len(chans), nil
}

// hangupAll hangs every background call up, originateBatch at a time, and waits
// until Asterisk lists none of their channels.
func (bg *backgroundCalls) hangupAll(tb testing.TB) {
	if len(bg.ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := bounded(len(bg.ids), originateBatch, func(i int) error {
		if err := bg.l.ARI.Hangup(ctx, bg.ids[i]); err != nil && !errors.Is(err, lab.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		tb.Errorf("hang up the background calls: %v", err)
	}
	waitFor(ctx, tb, "the background calls gone", func() error {
		chans, err := bg.l.ARI.Channels(ctx)
		if err != nil {
			return err
		}
		left := 0
		for _, ch := range chans {
			if strings.HasPrefix(ch.ID, bg.prefix+"-") {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d background channels left", left)
		}
		return nil
	})
	bg.ids = nil
}

// bounded runs f(0..n-1), at most limit at a time, and joins their errors.
func bounded(n, limit int, f func(i int) error) error {
	sem := make(chan struct{}, limit)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// interceptBench measures one load's cases against agent's call (the agent's
// channel and its extension).
type interceptBench struct {
	l          *lab.TestLab
	bg         *backgroundCalls
	asterisk   string // the Asterisk container's id
	agent, ext string
	logs       *observer.ObservedLogs
	trace      *ariTrace     // nil unless CALLWARDEN_BENCH_ARI_TRACE is set
	caseCPU    cpuTimes      // when the case began, when tracing
	seqP99     time.Duration // the sequential case's p99, once it ran
}

// start checks the load and connects the case's events; the case reports the
// load and the trace with done.
func (h *interceptBench) start(ctx context.Context, b *testing.B) (*lab.EventStream, pbxLoad) {
	b.Helper()
	load := h.bg.check(ctx, b)
	reportContainerCores(b, h.asterisk, coresWindow)
	events := h.caseEvents(ctx, b)
	h.logs.TakeAll()
	h.takeTrace() // the previous case's
	if h.trace != nil {
		h.caseCPU = h.trace.cpu()
	}
	return events, load
}

// done reports load and, when tracing, logs the case's ARI calls: those
// traced and not taken yet, besides taken (and the timeline of lastRound).
func (h *interceptBench) done(b *testing.B, load pbxLoad, taken, lastRound []tracedCall, notes ...string) {
	load.report(b)
	if h.trace != nil {
		notes = append(notes, "whole case: "+h.trace.cpu().since(h.caseCPU))
		h.trace.log(b, append(taken, h.takeTrace()...), lastRound, notes)
	}
	b.ReportMetric(0, "ns/op") // calls' set-up and tear-down: not the figure
}

// takeTrace returns the ARI calls traced since the last take, nil unless tracing.
func (h *interceptBench) takeTrace() []tracedCall {
	if h.trace == nil {
		return nil
	}
	return h.trace.take()
}

// caseEvents connects an event stream for one case, closed when the case ends,
// so that each case scans only its own events.
func (h *interceptBench) caseEvents(ctx context.Context, b *testing.B) *lab.EventStream {
	b.Helper()
	s, err := h.l.ARI.Events(ctx, h.l.NewID("app"))
	mustOK(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// errRefused means callwarden refused a supervisor (under load: pbx_error, an
// ARI call past its deadline); the benchmark counts such refusals (refused).
var errRefused = errors.New("refused")

// monitorSample is one supervisor's intercept: its channel, its snoop and the
// time from its Stasis() to the snoop bridged, by Asterisk's timestamps.
type monitorSample struct {
	sup, snoop string
	lat        time.Duration
}

// intercept has supervisor 1001 listen to the agent (*222<ext>) and measures it.
func (h *interceptBench) intercept(ctx context.Context, events *lab.EventStream) (monitorSample, error) {
	ctx, cancel := context.WithTimeout(ctx, sampleLimit)
	defer cancel()
	call, err := h.l.OriginateSupervisor(ctx, "1001", "cw-supervisors", "*222"+h.ext)
	if err != nil {
		return monitorSample{}, err
	}
	s := monitorSample{sup: call.First}
	start, err := events.Wait(ctx, "Stasis on "+s.sup, func(e lab.Event) bool {
		return e.Type == "ChannelDialplan" && e.ChannelID() == s.sup && e.DialplanApp == "Stasis"
	})
	if err != nil {
		return s, err
	}
	joined, err := events.Wait(ctx, s.sup+" bridged or refused", func(e lab.Event) bool {
		return e.ChannelID() == s.sup && (e.Type == "ChannelEnteredBridge" ||
			e.Type == "ChannelVarset" && e.Variable == "CALLWARDEN_DECISION" && e.Value == "deny")
	})
	if err != nil {
		return s, err
	}
	if joined.Type == "ChannelVarset" {
		reason, err := events.Wait(ctx, s.sup+"'s refusal reason", func(e lab.Event) bool {
			return e.Type == "ChannelVarset" && e.ChannelID() == s.sup && e.Variable == "CALLWARDEN_REASON"
		})
		if err != nil {
			return s, err
		}
		return s, fmt.Errorf("%w: %s", errRefused, reason.Value)
	}
	bridged, err := events.Wait(ctx, "the snoop in "+s.sup+"'s bridge", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.Bridge != nil && e.Bridge.ID == joined.Bridge.ID &&
			e.Channel != nil && strings.HasPrefix(e.Channel.Name, "Snoop/"+h.agent+"-")
	})
	if err != nil {
		return s, err
	}
	s.snoop = bridged.ChannelID()
	t0, err := eventTimestamp(start)
	if err != nil {
		return s, err
	}
	t1, err := eventTimestamp(bridged)
	s.lat = t1.Sub(t0)
	return s, err
}

// end hangs the supervisors up and waits until they and their snoops are gone,
// so that no session outlives its sample.
func (h *interceptBench) end(ctx context.Context, b *testing.B, events *lab.EventStream, samples ...monitorSample) {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, sampleLimit)
	defer cancel()
	for _, s := range samples {
		if err := h.l.ARI.Hangup(ctx, s.sup); err != nil && !errors.Is(err, lab.ErrNotFound) {
			b.Fatal(err)
		}
	}
	for _, s := range samples {
		for _, id := range []string{s.sup, s.snoop} {
			if id != "" {
				mustWait(ctx, b, events, id+" destroyed", lab.OnChannel("ChannelDestroyed", id))
			}
		}
	}
}

// sequential measures min(b.N, maxSamples) supervisors, one at a time.
func (h *interceptBench) sequential(ctx context.Context, b *testing.B) {
	events, load := h.start(ctx, b)
	var lat []time.Duration
	refused := 0
	b.ResetTimer()
	for range min(b.N, maxSamples) {
		s, err := h.intercept(ctx, events)
		switch {
		case errors.Is(err, errRefused):
			if refused++; refused == 1 {
				b.Logf("%s: %v", s.sup, err)
			}
		case err != nil:
			b.Fatal(err)
		default:
			lat = append(lat, s.lat)
		}
		h.end(ctx, b, events, s)
	}
	b.StopTimer()
	h.reportSessions(b, lat, refused)
	if len(lat) > 0 {
		h.seqP99 = percentile(lat, 0.99)
	}
	h.done(b, load, nil, nil)
}

// simultaneous runs rounds of atOnce supervisors dialling at the same moment,
// min(b.N, maxSamples/atOnce) rounds.
func (h *interceptBench) simultaneous(ctx context.Context, b *testing.B) {
	events, load := h.start(ctx, b)
	var lat, slowest []time.Duration
	var traced, lastRound []tracedCall
	var notes []string
	refused := 0
	b.ResetTimer()
	for range min(b.N, maxSamples/atOnce) {
		traced = append(traced, h.takeTrace()...)
		var cpu0 cpuTimes
		if h.trace != nil {
			cpu0 = h.trace.cpu()
		}
		samples := make([]monitorSample, atOnce)
		errs := make([]error, atOnce)
		var wg sync.WaitGroup
		for i := range atOnce {
			wg.Go(func() { samples[i], errs[i] = h.intercept(ctx, events) })
		}
		wg.Wait()
		for i, err := range errs {
			switch {
			case errors.Is(err, errRefused):
				if refused++; refused == 1 {
					b.Logf("%s: %v", samples[i].sup, err)
				}
			case err != nil:
				b.Fatal(err)
			}
		}
		if h.trace != nil {
			notes = append(notes, "round: "+h.trace.cpu().since(cpu0))
		}
		var round time.Duration
		for i, s := range samples {
			if errs[i] == nil {
				lat = append(lat, s.lat)
				round = max(round, s.lat)
			}
		}
		slowest = append(slowest, round)
		lastRound = h.takeTrace() // the round's calls up to every snoop bridged
		traced = append(traced, lastRound...)
		h.end(ctx, b, events, samples...)
	}
	b.StopTimer()
	h.reportSessions(b, lat, refused)
	slices.Sort(slowest)
	b.ReportMetric(ms(percentile(slowest, 0.5)), "round-max-p50-ms")
	if h.seqP99 > 0 && len(lat) > 0 {
		b.ReportMetric(float64(percentile(lat, 0.99))/float64(h.seqP99), "x-sequential-p99")
	}
	h.done(b, load, traced, lastRound, notes...)
}

// reportSessions reports the bridged sessions' latencies (reportPercentiles),
// how many were refused (refused), and the percentiles of the `intercept`
// durations callwarden logged since the case began (cw-p50-ms, cw-p99-ms).
func (h *interceptBench) reportSessions(b *testing.B, lat []time.Duration, refused int) {
	b.ReportMetric(float64(refused), "refused")
	reportPercentiles(b, lat)
	lat = nil
	for _, e := range h.logs.FilterMessage("monitoring").TakeAll() {
		for _, f := range e.Context {
			if f.Key == "intercept" && f.Type == zapcore.DurationType {
				lat = append(lat, time.Duration(f.Integer))
			}
		}
	}
	if len(lat) == 0 {
		return // every request refused
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 0.50)), "cw-p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "cw-p99-ms")
}

// watchdogChanSpy has supervisor 1002 dial the lab's unguarded ChanSpy on the
// agent (cw-unguarded, *999<ext>), min(b.N, maxSamples) times, and reports the
// time from ChanSpy's start to the watchdog's hang-up (ChannelHangupRequest).
func (h *interceptBench) watchdogChanSpy(ctx context.Context, b *testing.B) {
	events, load := h.start(ctx, b)
	var lat []time.Duration
	b.ResetTimer()
	for range min(b.N, maxSamples) {
		spy := mustOriginateSupervisor(ctx, b, h.l, "1002", "cw-unguarded", "*999"+h.ext).First
		began := mustWait(ctx, b, events, "the rogue ChanSpy", func(e lab.Event) bool {
			return e.Type == "ChannelDialplan" && e.ChannelID() == spy && e.DialplanApp == "ChanSpy"
		})
		ended := mustWait(ctx, b, events, "the rogue ChanSpy hung up", lab.OnChannel("ChannelHangupRequest", spy))
		lat = append(lat, eventTime(b, ended).Sub(eventTime(b, began)))
		mustWait(ctx, b, events, "the rogue ChanSpy gone", lab.OnChannel("ChannelDestroyed", spy))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	h.done(b, load, nil, nil)
}

// watchdogSnoop has another ARI application snoop on the agent, min(b.N,
// maxSamples) times, and reports the time from the snoop's creation to its end
// (ChannelCreated to ChannelDestroyed), as TestWatchdogHangsUpBypassesWithin200ms.
func (h *interceptBench) watchdogSnoop(ctx context.Context, b *testing.B) {
	events, load := h.start(ctx, b)
	app := rogueApp(ctx, b, h.l)
	var lat []time.Duration
	b.ResetTimer()
	for range min(b.N, maxSamples) {
		snoop := foreignSnoop(ctx, b, h.l, app, h.agent)
		began := mustWait(ctx, b, events, "the foreign snoop", lab.OnChannel("ChannelCreated", snoop))
		ended := mustWait(ctx, b, events, "the foreign snoop hung up", lab.OnChannel("ChannelDestroyed", snoop))
		lat = append(lat, eventTime(b, ended).Sub(eventTime(b, began)))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	h.done(b, load, nil, nil)
}

// ariTrace is a reverse proxy between callwarden and ARI that times every REST
// call callwarden makes (its event websocket passes through untimed), so a case
// can say where its sessions' time went; it also reads the CPU time Asterisk's
// container, this process (callwarden's adapter) and the whole host used during
// each simultaneous round. CALLWARDEN_BENCH_ARI_TRACE=<file> turns it on and
// appends its report to the file; it adds a loopback hop to every call, so the
// benchmark's figures are not comparable with a run without it.
type ariTrace struct {
	url      string
	out      string // the report's file
	asterisk string // the Asterisk container's id

	mu       sync.Mutex
	calls    []tracedCall
	inFlight int
}

// tracedCall is one REST call: its kind (method and path, ids elided), when it
// started, how long it took and how many calls were in flight when it started.
type tracedCall struct {
	kind     string
	start    time.Time
	took     time.Duration
	inFlight int
}

// newARITrace starts the proxy in front of ariURL until the benchmark ends;
// it reports to the file out, and reads the CPU time of the container asterisk.
func newARITrace(tb testing.TB, ariURL, out, asterisk string) *ariTrace {
	target, err := url.Parse(ariURL)
	mustOK(tb, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
		r.Out.Host = target.Host
	},
		// Pooled like callwarden's own client (ariclient): the default
		// transport keeps 2 idle connections, so ten requests at once
		// would dial Asterisk anew for most calls, overflow its listen
		// backlog and wait out a SYN retransmission (1 s).
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
	}
	t := &ariTrace{out: out, asterisk: asterisk}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			proxy.ServeHTTP(w, r)
			return
		}
		t.mu.Lock()
		t.inFlight++
		c := tracedCall{kind: r.Method + " " + elideIDs(r.URL.Path), start: time.Now(), inFlight: t.inFlight}
		t.mu.Unlock()
		proxy.ServeHTTP(w, r)
		c.took = time.Since(c.start)
		t.mu.Lock()
		t.inFlight--
		t.calls = append(t.calls, c)
		t.mu.Unlock()
	}))
	tb.Cleanup(srv.Close)
	t.url = srv.URL + target.Path
	return t
}

// elideIDs replaces the ids of an ARI path (segments with a '-', '.' or digit)
// with {id}: /ari/channels/t-x-1/variable -> /ari/channels/{id}/variable.
func elideIDs(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.ContainsAny(p, "-.0123456789") {
			parts[i] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

// take returns the calls traced since the last take.
func (t *ariTrace) take() []tracedCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	calls := t.calls
	t.calls = nil
	return calls
}

// log writes, per kind of call, how many there were, their mean and longest
// time and the mean number in flight when one started; and, when timeline is
// set, every call of the last round relative to its first call; then the
// notes (the rounds' CPU use).
func (t *ariTrace) log(b *testing.B, calls []tracedCall, timeline []tracedCall, notes []string) {
	type agg struct {
		n, inFlight int
		sum, max    time.Duration
	}
	byKind := map[string]*agg{}
	for _, c := range calls {
		a := byKind[c.kind]
		if a == nil {
			a = &agg{}
			byKind[c.kind] = a
		}
		a.n++
		a.sum += c.took
		a.max = max(a.max, c.took)
		a.inFlight += c.inFlight
	}
	var out strings.Builder
	fmt.Fprintf(&out, "=== %s (b.N=%d)\nARI calls of callwarden (%d):\n", b.Name(), b.N, len(calls))
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		a := byKind[k]
		fmt.Fprintf(&out, "  %-55s n=%4d mean %7.2f ms  max %7.2f ms  in flight %.1f\n", k, a.n,
			ms(a.sum/time.Duration(a.n)), ms(a.max), float64(a.inFlight)/float64(a.n))
	}
	if len(timeline) > 0 {
		t0 := timeline[0].start
		fmt.Fprintf(&out, "last round, call by call (start, took, in flight):\n")
		for _, c := range timeline {
			fmt.Fprintf(&out, "  +%7.2f ms %7.2f ms %2d  %s\n", ms(c.start.Sub(t0)), ms(c.took), c.inFlight, c.kind)
		}
	}
	for _, n := range notes {
		fmt.Fprintln(&out, n)
	}
	f, err := os.OpenFile(t.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	mustOK(b, err)
	_, err = f.WriteString(out.String())
	mustOK(b, errors.Join(err, f.Close()))
}

// cpuTimes are cumulative CPU times: of Asterisk's container, of this process
// and of the whole host (busy, every core).
type cpuTimes struct {
	asterisk, self, host time.Duration
	at                   time.Time
}

// cpu reads them (the container's cgroup, getrusage, /proc/stat); a time it
// cannot read is left 0.
func (t *ariTrace) cpu() cpuTimes {
	c := cpuTimes{at: time.Now()}
	c.asterisk, _ = containerCPU(t.asterisk)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		// cpu  user nice system idle iowait irq softirq steal ...: busy is all
		// but idle and iowait, in clock ticks (100 a second on Linux).
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		var busy int64
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i != 3 && i != 4 && i < 8 {
				busy += n
			}
		}
		c.host = time.Duration(busy) * 10 * time.Millisecond
	}
	return c
}

// since says how many cores each used from c0 to c.
func (c cpuTimes) since(c0 cpuTimes) string {
	wall := c.at.Sub(c0.at)
	cores := func(d time.Duration) float64 { return float64(d) / float64(wall) }
	return fmt.Sprintf("%7.1f ms wall: Asterisk %.2f cores, callwarden's process %.2f, whole host %.2f",
		ms(wall), cores(c.asterisk-c0.asterisk), cores(c.self-c0.self), cores(c.host-c0.host))
}

// listsAtOnce asks GET /channels, what callwarden asks on every request, alone
// and then atOnce times at the same moment, min(b.N, maxSamples/atOnce) rounds
// of each, from the test's own ARI client: alone-ms is the median alone; first-ms
// and last-ms the medians of when the first and the last of a round's answers
// were read. Answers read one after the other, last-ms near atOnce × alone-ms
// and first-ms near alone-ms, mean Asterisk serves the lists one at a time; all
// read near the end mean it serves them side by side.
func (h *interceptBench) listsAtOnce(ctx context.Context, b *testing.B) {
	_, load := h.start(ctx, b)
	var alone, first, last []time.Duration
	b.ResetTimer()
	for range min(b.N, maxSamples/atOnce) {
		started := time.Now()
		_, err := h.l.ARI.Channels(ctx)
		mustOK(b, err)
		alone = append(alone, time.Since(started))
		done := make([]time.Duration, atOnce)
		started = time.Now()
		mustOK(b, bounded(atOnce, atOnce, func(i int) error {
			_, err := h.l.ARI.Channels(ctx)
			done[i] = time.Since(started)
			return err
		}))
		slices.Sort(done)
		first, last = append(first, done[0]), append(last, done[atOnce-1])
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		lat  []time.Duration
	}{{"alone-ms", alone}, {"first-ms", first}, {"last-ms", last}} {
		slices.Sort(m.lat)
		b.ReportMetric(ms(percentile(m.lat, 0.5)), m.name)
	}
	h.done(b, load, nil, nil)
}
