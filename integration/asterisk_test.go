package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/asterisk"
	"github.com/callwarden/callwarden/pbx/session"
)

// The Asterisk suite runs callwarden's Stasis application in-process against the
// lab's Asterisk, with the example profiles (deploy/examples/profiles.yaml): alice
// (1001) supervisor-with-recording on sales and support, carol (1002) without
// recording on support, erin (1003) listen-only on sales, bob (1004) teacher for
// November 2026, agents 2001..2004, the protected ceo on 2005.

// labNow is the suite's clock: a Wednesday morning in Paris inside bob's teacher
// period and office hours.
var labNow = time.Date(2026, 11, 18, 10, 0, 0, 0, time.FixedZone("CET", 3600))

// auditLog is an enforce.Auditor that keeps records for the test to wait on.
type auditLog struct {
	mu      sync.Mutex
	recs    []enforce.AuditRecord
	changed chan struct{}
}

func newAuditLog() *auditLog { return &auditLog{changed: make(chan struct{})} }

func (l *auditLog) Audit(_ context.Context, r enforce.AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

func (l *auditLog) wait(ctx context.Context, t testing.TB, what string, match func(enforce.AuditRecord) bool) enforce.AuditRecord {
	t.Helper()
	for {
		l.mu.Lock()
		for _, r := range l.recs {
			if match(r) {
				l.mu.Unlock()
				return r
			}
		}
		changed := l.changed
		seen := fmt.Sprintf("%+v", l.recs)
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no audit record %s: %v; records: %s", what, ctx.Err(), seen)
		}
	}
}

func (l *auditLog) count(match func(enforce.AuditRecord) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if match(r) {
			n++
		}
	}
	return n
}

func decision(user, action, verdict string) func(enforce.AuditRecord) bool {
	return func(r enforce.AuditRecord) bool {
		return r.Source == "asterisk" && r.User == user && r.Action == action && r.Decision == verdict
	}
}

// callwarden is one in-process adapter against the lab.
type callwarden struct {
	a        *asterisk.Adapter
	audit    *auditLog
	recs     *memory.Recordings
	reg      *prometheus.Registry
	now      *clock
	sessions *session.Registry // over a memory store, on the real clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func exampleSnapshot(t testing.TB) *enforce.Snapshot {
	t.Helper()
	p := mustExampleProfiles(t)
	s, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startCallwarden runs the Stasis application "callwarden", deciding from the
// example profiles, until the test ends.
func startCallwarden(t testing.TB, l *lab.TestLab, mode asterisk.WatchdogMode) *callwarden {
	t.Helper()
	return startCallwardenWith(t, l, mode, exampleSnapshot(t))
}

// startCallwardenWith runs the Stasis application deciding from snap.
func startCallwardenWith(t testing.TB, l *lab.TestLab, mode asterisk.WatchdogMode, snap *enforce.Snapshot) *callwarden {
	t.Helper()
	return startCallwardenFrom(t, l, mode, func() *enforce.Snapshot { return snap }, session.RegistryOptions{})
}

// startCallwardenFrom runs the Stasis application deciding from the
// snapshot policy returns, its session registry made with ro (its store
// and metrics set here), and its options then changed by change. ro.Logger,
// when set, is the adapter's logger too (a benchmark reads the lines it
// writes); else both log to the test.
func startCallwardenFrom(t testing.TB, l *lab.TestLab, mode asterisk.WatchdogMode, policy func() *enforce.Snapshot, ro session.RegistryOptions, change ...func(*asterisk.Options)) *callwarden {
	t.Helper()
	return startCallwardenOn(t, l, l.ARIURL, mode, policy, ro, change...)
}

// startCallwardenOn is startCallwardenFrom reaching the lab's ARI at ariURL
// (a benchmark's tracing proxy in front of it).
func startCallwardenOn(t testing.TB, l *lab.TestLab, ariURL string, mode asterisk.WatchdogMode, policy func() *enforce.Snapshot, ro session.RegistryOptions, change ...func(*asterisk.Options)) *callwarden {
	t.Helper()
	cw := &callwarden{audit: newAuditLog(), recs: memory.NewRecordings(), reg: prometheus.NewRegistry(), now: &clock{t: labNow}}
	if ro.Logger == nil {
		ro.Logger = zaptest.NewLogger(t)
	}
	ro.Store, ro.Registerer = memory.NewSessions(), cw.reg
	sessions, err := session.NewRegistry(ro)
	if err != nil {
		t.Fatal(err)
	}
	cw.sessions = sessions
	o := asterisk.Options{
		URL: ariURL, User: l.ARIUser, Password: l.ARIPassword, App: "callwarden", Timeout: 2 * time.Second,
		Snapshot:   policy,
		Auditor:    cw.audit,
		Recordings: cw.recs,
		Sessions:   cw.sessions,
		Now:        cw.now.Now,
		Logger:     ro.Logger,
		Registerer: cw.reg,
		Watchdog:   mode,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	}
	for _, c := range change {
		c(&o)
	}
	a, err := asterisk.New(o)
	if err != nil {
		t.Fatal(err)
	}
	cw.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("callwarden Run: %v", err)
		}
		// Asterisk drops the application once its session is gone; the next
		// test's adapter must not race that teardown (see waitPreviousSession).
		if !waitApplicationGone(t, l, "callwarden left") {
			dumpAsterisk(t, l)
		}
	})
	// Registered last, run first: the test's calls end while callwarden still
	// runs, as they would on a live PBX.
	t.Cleanup(func() { hangupAll(t, l) })
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := a.WaitConnected(wctx); err != nil {
		dumpAsterisk(t, l)
		t.Fatal(err)
	}
	return cw
}

// hangupAll hangs up every channel of the lab and waits until they are gone.
func hangupAll(t testing.TB, l *lab.TestLab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	chans, err := l.ARI.Channels(ctx)
	if err != nil {
		t.Errorf("cleanup: list channels: %v", err)
		return
	}
	for _, ch := range chans {
		if err := l.ARI.Hangup(ctx, ch.ID); err != nil && !errors.Is(err, lab.ErrNotFound) {
			t.Errorf("cleanup: hang up %s: %v", ch.Name, err)
		}
	}
	for _, ch := range chans {
		if err := l.WaitChannelGone(ctx, ch.ID); err != nil {
			t.Errorf("cleanup: %s (%s): %v", ch.Name, ch.ID, err)
		}
	}
}

// dumpAsterisk logs what Asterisk is doing, for a test that failed on it.
func dumpAsterisk(t testing.TB, l *lab.TestLab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, cmd := range []string{"core show channels verbose", "bridge show all", "ari show apps"} {
		out, err := l.AsteriskCLI(ctx, cmd)
		t.Logf("asterisk -rx %q: %v\n%s", cmd, err, out)
	}
	if logs, err := l.AsteriskLogs(ctx); err == nil {
		lines := strings.Split(logs, "\n")
		t.Logf("asterisk log tail:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}

// waitApplicationGone waits up to 10s for Asterisk to drop the callwarden
// application; if it does not, it fails the test saying it was still there
// after what happened, and returns false.
func waitApplicationGone(t testing.TB, l *lab.TestLab, after string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := ari(ctx, l, http.MethodGet, "/applications/callwarden", nil, nil)
		if errors.Is(err, lab.ErrNotFound) {
			return true
		}
		if ctx.Err() != nil {
			t.Errorf("Asterisk still has the callwarden application 10s after %s: %v", after, err)
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ari calls the lab's ARI for what lab.ARI does not offer (DTMF, snoop, live
// recordings).
func ari(ctx context.Context, l *lab.TestLab, method, path string, q url.Values, out any) error {
	return l.ARI.Do(ctx, method, path, q, nil, out)
}

type liveRecording struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

func eventTime(t testing.TB, e lab.Event) time.Time {
	t.Helper()
	ts, err := eventTimestamp(e)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// eventTimestamp is when Asterisk says e happened (to the millisecond).
func eventTimestamp(e lab.Event) (time.Time, error) {
	ts, err := time.Parse("2006-01-02T15:04:05.000-0700", e.Timestamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s event timestamp %q: %w", e.Type, e.Timestamp, err)
	}
	return ts, nil
}

// salesCall puts a customer in the sales queue and returns the agent's channel
// (the queue member bridged with the customer) and the agent's extension.
func salesCall(ctx context.Context, t testing.TB, l *lab.TestLab, events *lab.EventStream, callerID string) (lab.Channel, string) {
	t.Helper()
	return queueCall(ctx, t, l, events, "sales", callerID)
}

// queueCall puts a customer in queue and returns the agent's channel (the
// queue member bridged with the customer) and the agent's extension.
func queueCall(ctx context.Context, t testing.TB, l *lab.TestLab, events *lab.EventStream, queue, callerID string) (lab.Channel, string) {
	t.Helper()
	return queueCallWith(ctx, t, l, events, queue, callerID, "play")
}

// queueCallWith is queueCall with the customer's phone doing audio (see
// lab.TestLab.OriginateCustomer).
func queueCallWith(ctx context.Context, t testing.TB, l *lab.TestLab, events *lab.EventStream, queue, callerID, audio string) (lab.Channel, string) {
	t.Helper()
	call, err := l.OriginateCustomer(ctx, queue, callerID, audio)
	if err != nil {
		t.Fatalf("a customer calls %s: %v", queue, err)
	}
	entered := mustWait(ctx, t, events, "customer entering a bridge", lab.OnChannel("ChannelEnteredBridge", call.Second))
	agentEv := mustWait(ctx, t, events, "agent entering the customer's bridge", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.Bridge != nil && e.Bridge.ID == entered.Bridge.ID && e.ChannelID() != call.Second
	})
	ext, err := l.ARI.ChannelVar(ctx, agentEv.Channel.ID, "CALLWARDEN_AGENT")
	if err != nil {
		t.Fatalf("CALLWARDEN_AGENT on %s: %v", agentEv.Channel.Name, err)
	}
	return *agentEv.Channel, ext
}

// originatePhone makes supervisor dial exten in cw-supervisors from the handset
// endpoint (e.g. Local/1001@cw-supervisor-line/n), with extra channel variables.
func originatePhone(ctx context.Context, t *testing.T, l *lab.TestLab, supervisor, endpoint, exten string, vars map[string]string) lab.LocalCall {
	t.Helper()
	id := l.NewID("supervisor")
	call := lab.LocalCall{First: id, Second: id + "-handset"}
	if _, err := l.Originate(ctx, lab.OriginateParams{
		Endpoint: endpoint, Context: "cw-supervisors", Extension: exten, Priority: 1,
		CallerID:  fmt.Sprintf("\"Supervisor %s\" <%s>", supervisor, supervisor),
		ChannelID: call.First, OtherChannelID: call.Second, Variables: vars,
	}); err != nil {
		t.Fatal(err)
	}
	return call
}

func snoopOn(agentID string) func(lab.Event) bool {
	return func(e lab.Event) bool {
		return e.Type == "ChannelCreated" && e.Channel != nil && strings.HasPrefix(e.Channel.Name, "Snoop/"+agentID+"-")
	}
}

// monitorSession is a supervisor's line bridged with a snoop on an agent.
type monitorSession struct {
	sup           lab.LocalCall
	snoop, bridge string // ids
}

// mustMonitor has supervisor dial exten (a monitor feature code) and waits
// until a snoop on agentID and the supervisor's line are in one bridge.
func mustMonitor(ctx context.Context, t *testing.T, l *lab.TestLab, events *lab.EventStream, supervisor, exten, agentID string) monitorSession {
	t.Helper()
	sup := mustOriginateSupervisor(ctx, t, l, supervisor, "cw-supervisors", exten)
	created := mustWait(ctx, t, events, "a snoop on the agent's channel", snoopOn(agentID))
	snoop := created.Channel.ID
	inBridge := mustWait(ctx, t, events, "the snoop entering a bridge", lab.OnChannel("ChannelEnteredBridge", snoop))
	bridge := inBridge.Bridge.ID
	mustWait(ctx, t, events, "the supervisor in the snoop's bridge", func(e lab.Event) bool {
		return e.Type == "ChannelEnteredBridge" && e.ChannelID() == sup.First && e.Bridge.ID == bridge
	})
	return monitorSession{sup: sup, snoop: snoop, bridge: bridge}
}

// startMonitoring starts callwarden on the suite's lab in mode and
// subscribes to the lab's events, for a test that may take
// monitorContext's time.
func startMonitoring(t *testing.T, mode asterisk.WatchdogMode) (*lab.TestLab, context.Context, *callwarden, *lab.EventStream) {
	t.Helper()
	l := suite.Lab(t)
	ctx := monitorContext(t)
	cw := startCallwarden(t, l, mode)
	return l, ctx, cw, mustEvents(ctx, t, l)
}

// startMonitoringPolicy is startMonitoring (watchdog enforcing) deciding
// from p.
func startMonitoringPolicy(t *testing.T, p enforce.Policy) (*lab.TestLab, context.Context, *callwarden, *lab.EventStream) {
	t.Helper()
	snap, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	l := suite.Lab(t)
	ctx := monitorContext(t)
	cw := startCallwardenWith(t, l, asterisk.WatchdogEnforce, snap)
	return l, ctx, cw, mustEvents(ctx, t, l)
}

// monitorContext allows for the refusal prompt (a few seconds) and call set-up.
func monitorContext(t *testing.T) context.Context { return contextFor(t, 60*time.Second) }

func TestAllowedSupervisorIsBridgedToASnoopWithTheModesDirections(t *testing.T) {
	for _, tc := range []struct {
		mode, code, spy, whisper string
	}{
		{"listen", "*222", "both", "none"},
		{"whisper", "*223", "both", "out"},
		{"barge", "*224", "both", "both"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
			agent, ext := salesCall(ctx, t, l, events, "5550100")
			sess := mustMonitor(ctx, t, l, events, "1001", tc.code+ext, agent.ID)
			sup, snoop, bridge := sess.sup, sess.snoop, sess.bridge
			// Asterisk's own view of the snoop: the Stasis arguments it was created with.
			ch, err := l.ARI.Channel(ctx, snoop)
			if err != nil {
				t.Fatal(err)
			}
			wantArgs := fmt.Sprintf("snoop,%s,spy=%s,whisper=%s", tc.mode, tc.spy, tc.whisper)
			if !strings.Contains(ch.Dialplan.AppData, wantArgs) {
				t.Errorf("snoop %s runs %s(%s), want arguments %s", ch.Name, ch.Dialplan.AppName, ch.Dialplan.AppData, wantArgs)
			}
			rec := cw.audit.wait(ctx, t, "alice allowed", decision("alice", "monitor."+tc.mode, "allow"))
			if rec.Target != "agent"+ext || rec.Queue != "sales" || rec.Caller != "5550100" || rec.Reason != "granted" {
				t.Errorf("audit record = %+v, want target agent%s, queue sales, caller 5550100, granted", rec, ext)
			}

			// The supervisor hangs up: the snoop and the bridge go too.
			mustHangup(ctx, t, l, sup.First)
			mustWait(ctx, t, events, "the snoop destroyed", lab.OnChannel("ChannelDestroyed", snoop))
			mustWait(ctx, t, events, "the bridge destroyed", func(e lab.Event) bool {
				return e.Type == "BridgeDestroyed" && e.Bridge != nil && e.Bridge.ID == bridge
			})
			if _, err := l.ARI.Channel(ctx, agent.ID); err != nil {
				t.Errorf("the agent's call ended with the supervisor's: %v", err)
			}
		})
	}
}

func TestNotifyTargetProfileMakesTheAgentHearATone(t *testing.T) {
	// carol's profile (supervisor-without-recording) says notify_target: the agent
	// hears notify_sound through a whisper-only snoop, beside the listen snoop.
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
	agent, ext := queueCall(ctx, t, l, events, "support", "5550177")
	agentID := agent.ID
	mustOriginateSupervisor(ctx, t, l, "1002", "cw-supervisors", "*222"+ext)
	rec := cw.audit.wait(ctx, t, "carol allowed on support", decision("carol", "monitor.listen", "allow"))
	if rec.Caller != "555****" {
		t.Errorf("audit caller = %q, want 555**** (carol's mask_digits: 4)", rec.Caller)
	}
	var snoops []string
	for len(snoops) < 2 {
		e := mustWait(ctx, t, events, "two snoops on the agent", func(e lab.Event) bool {
			if !snoopOn(agentID)(e) {
				return false
			}
			for _, id := range snoops {
				if id == e.Channel.ID {
					return false
				}
			}
			return true
		})
		snoops = append(snoops, e.Channel.ID)
	}
	// The notify snoop plays the tone, then goes; the listen snoop stays.
	var notify string
	for _, id := range snoops {
		if strings.HasPrefix(id, "cw-callwarden-notify-") {
			notify = id
		}
	}
	if notify == "" {
		t.Fatalf("no notify snoop among %v", snoops)
	}
	mustWait(ctx, t, events, "the notify snoop done", lab.OnChannel("ChannelDestroyed", notify))
}

func TestTargetHangingUpEndsTheSessionWithoutLeaks(t *testing.T) {
	l, ctx, _, events := startMonitoring(t, asterisk.WatchdogEnforce)
	agent, ext := salesCall(ctx, t, l, events, "5550100")
	sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*222"+ext)
	created := mustWait(ctx, t, events, "a snoop on the agent's channel", snoopOn(agent.ID))
	inBridge := mustWait(ctx, t, events, "the snoop bridged", lab.OnChannel("ChannelEnteredBridge", created.Channel.ID))
	mustHangup(ctx, t, l, agent.ID)
	for _, id := range []string{created.Channel.ID, sup.First} {
		mustWait(ctx, t, events, "channel "+id+" destroyed", lab.OnChannel("ChannelDestroyed", id))
	}
	mustWait(ctx, t, events, "the bridge destroyed", func(e lab.Event) bool {
		return e.Type == "BridgeDestroyed" && e.Bridge != nil && e.Bridge.ID == inBridge.Bridge.ID
	})
}

func TestTwoSupervisorsOnOneAgentBothEndCleanlyWhenTheAgentHangsUp(t *testing.T) {
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
	agent, ext := salesCall(ctx, t, l, events, "5550100")

	// alice, then erin (listen-only on sales) listen to the same agent.
	type session struct{ sup, snoop, bridge string }
	var sessions []session
	for _, s := range []struct{ phone, user string }{{"1001", "alice"}, {"1003", "erin"}} {
		sup := mustOriginateSupervisor(ctx, t, l, s.phone, "cw-supervisors", "*222"+ext)
		cw.audit.wait(ctx, t, s.user+" allowed", decision(s.user, "monitor.listen", "allow"))
		joined := mustWait(ctx, t, events, s.user+" bridged", lab.OnChannel("ChannelEnteredBridge", sup.First))
		bridge := joined.Bridge.ID
		snoop := mustWait(ctx, t, events, s.user+"'s snoop in the bridge", func(e lab.Event) bool {
			return e.Type == "ChannelEnteredBridge" && e.Bridge != nil && e.Bridge.ID == bridge &&
				e.Channel != nil && strings.HasPrefix(e.Channel.Name, "Snoop/"+agent.ID+"-")
		})
		sessions = append(sessions, session{sup: sup.First, snoop: snoop.ChannelID(), bridge: bridge})
	}
	if sessions[0].bridge == sessions[1].bridge || sessions[0].snoop == sessions[1].snoop {
		t.Fatalf("the two sessions share a bridge or a snoop: %+v", sessions)
	}

	mustHangup(ctx, t, l, agent.ID)
	for i, s := range sessions {
		for _, id := range []string{s.snoop, s.sup} {
			mustWait(ctx, t, events, fmt.Sprintf("session %d: channel %s destroyed", i+1, id), lab.OnChannel("ChannelDestroyed", id))
		}
		mustWait(ctx, t, events, fmt.Sprintf("session %d: bridge destroyed", i+1), func(e lab.Event) bool {
			return e.Type == "BridgeDestroyed" && e.Bridge != nil && e.Bridge.ID == s.bridge
		})
	}

	// Asterisk's own lists: no monitor bridge and no snoop left behind.
	for _, b := range mustList(ctx, t, l.ARI.Bridges) {
		if strings.HasPrefix(b.ID, "cw-callwarden-bridge-") {
			t.Errorf("monitor bridge %s left with channels %v", b.ID, b.Channels)
		}
	}
	for _, ch := range mustList(ctx, t, l.ARI.Channels) {
		if strings.HasPrefix(ch.Name, "Snoop/") {
			t.Errorf("snoop %s (%s) left behind", ch.Name, ch.ID)
		}
	}
}

func TestRefusedSupervisorHearsTheRefusalAndIsHungUpWithoutSnoop(t *testing.T) {
	for _, tc := range []struct {
		name, supervisor, user, reason string
		vars                           map[string]string
		now                            time.Time
	}{
		{name: "out of scope", supervisor: "1002", user: "carol", reason: "out_of_scope"},
		{name: "no profile", supervisor: "1001", user: "dave", reason: "no_profile", vars: map[string]string{"CALLWARDEN_USER": "dave"}},
		{name: "teacher outside its period", supervisor: "1004", user: "bob", reason: "outside_window", now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := suite.Lab(t)
			ctx := monitorContext(t)
			cw := startCallwarden(t, l, asterisk.WatchdogEnforce)
			if !tc.now.IsZero() {
				cw.now.Set(tc.now)
			}
			events := mustEvents(ctx, t, l)
			_, ext := salesCall(ctx, t, l, events, "5550100")
			sup := originatePhone(ctx, t, l, tc.supervisor, "Local/"+tc.supervisor+"@cw-supervisor-line/n", "*222"+ext, tc.vars)
			mustWait(ctx, t, events, "CALLWARDEN_REASON set on the supervisor", func(e lab.Event) bool {
				return e.Type == "ChannelVarset" && e.ChannelID() == sup.First && e.Variable == "CALLWARDEN_REASON" && e.Value == tc.reason
			})
			mustWait(ctx, t, events, "the refused supervisor hung up", lab.OnChannel("ChannelDestroyed", sup.First))
			for _, e := range events.Events() {
				if e.Type == "ChannelCreated" && e.Channel != nil && strings.HasPrefix(e.Channel.Name, "Snoop/") {
					t.Errorf("a snoop was created for a refused request: %s", e.Channel.Name)
				}
			}
			rec := cw.audit.wait(ctx, t, tc.user+" refused", decision(tc.user, "monitor.listen", "deny"))
			if rec.Reason != tc.reason {
				t.Errorf("audit reason = %q, want %q (record %+v)", rec.Reason, tc.reason, rec)
			}
			if tc.user == "carol" && rec.Caller != "555****" {
				// carol's profile has mask_digits: 4.
				t.Errorf("audit caller = %q, want 555**** (masked per carol's profile)", rec.Caller)
			}
		})
	}
}

// dialDone has supervisor dial exten from its phone and waits until the
// call is over.
func dialDone(ctx context.Context, t *testing.T, l *lab.TestLab, events *lab.EventStream, supervisor, exten string) {
	t.Helper()
	sup := mustOriginateSupervisor(ctx, t, l, supervisor, "cw-supervisors", exten)
	mustWait(ctx, t, events, supervisor+" dialling "+exten+" done", lab.OnChannel("ChannelDestroyed", sup.First))
}

// liveRecordingState is ARI's state of the live recording name, "gone"
// when there is none.
func liveRecordingState(ctx context.Context, t *testing.T, l *lab.TestLab, name string) string {
	t.Helper()
	var lr liveRecording
	if err := ari(ctx, l, http.MethodGet, "/recordings/live/"+url.PathEscape(name), nil, &lr); err != nil {
		if errors.Is(err, lab.ErrNotFound) {
			return "gone"
		}
		t.Fatal(err)
	}
	return lr.State
}

func TestRecordingIsControlledOnlyByAllowedUsersAndPlayedBackWithinItsAge(t *testing.T) {
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
	_, ext := salesCall(ctx, t, l, events, "5550123")
	agentUser := "agent" + ext

	dial := func(supervisor, exten string) { t.Helper(); dialDone(ctx, t, l, events, supervisor, exten) }
	liveState := func(name string) string { t.Helper(); return liveRecordingState(ctx, t, l, name) }

	dial("1003", "*225"+ext) // erin: listen-only
	if r := cw.audit.wait(ctx, t, "erin refused", decision("erin", "recording.start", "deny")); r.Reason != "action_not_granted" {
		t.Errorf("erin refused with %q, want action_not_granted", r.Reason)
	}
	if _, err := cw.recs.ActiveRecording(ctx, agentUser); !errors.Is(err, enforce.ErrNotFound) {
		t.Fatalf("a refused start left a recording: %v", err)
	}

	dial("1001", "*225"+ext)
	cw.audit.wait(ctx, t, "alice starts", decision("alice", "recording.start", "allow"))
	rec, err := cw.recs.ActiveRecording(ctx, agentUser)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Queue != "sales" || rec.StartedBy != "alice" || rec.Caller != "5550123" || rec.Target != agentUser {
		t.Errorf("recording metadata = %+v", rec)
	}
	if s := liveState(rec.Name); s != "recording" {
		t.Fatalf("ARI recording %s is %q, want recording", rec.Name, s)
	}
	// step has supervisor dial a recording code and waits for the decision
	// callwarden audits; the live recording must then be in state want,
	// or the test stops with failure (a format of the state it is in).
	step := func(supervisor, code, what string, match func(enforce.AuditRecord) bool, want, failure string) {
		t.Helper()
		dial(supervisor, code+ext)
		cw.audit.wait(ctx, t, what, match)
		if s := liveState(rec.Name); s != want {
			t.Fatalf(failure, s)
		}
	}

	// erin may not pause.
	step("1003", "*228", "erin refused pause", decision("erin", "recording.pause", "deny"), "recording", "a refused pause changed the recording to %q")
	step("1001", "*228", "alice pauses", decision("alice", "recording.pause", "allow"), "paused", "after alice's pause ARI says %q, want paused")
	step("1001", "*228", "alice resumes", decision("alice", "recording.resume", "allow"), "recording", "after alice's resume ARI says %q, want recording")
	got, err := cw.recs.Recording(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Pauses) != 1 || got.Pauses[0].By != "alice" || got.Pauses[0].ResumedBy != "alice" {
		t.Errorf("pauses = %+v, want one by alice resumed by alice", got.Pauses)
	}

	step("1003", "*229", "erin refused stop", decision("erin", "recording.stop", "deny"), "recording", "a refused stop changed the recording to %q")
	step("1001", "*229", "alice stops", decision("alice", "recording.stop", "allow"), "gone", "after alice's stop ARI says %q, want no live recording")
	if got, _ := cw.recs.Recording(ctx, rec.ID); got.State != enforce.RecordingStopped || got.StoppedBy != "alice" {
		t.Errorf("stored recording = %+v, want stopped by alice", got)
	}

	// Playback: bob the teacher reaches recordings at most 720h old.
	dial("1004", "*227"+rec.ID)
	cw.audit.wait(ctx, t, "bob plays a fresh recording", decision("bob", "recording.playback", "allow"))
	old := rec
	old.ID = "900000000001"
	old.StartedAt = labNow.Add(-800 * time.Hour)
	old.State = enforce.RecordingStopped
	mustOK(t, cw.recs.SaveRecording(ctx, old))
	dial("1004", "*227"+old.ID)
	if r := cw.audit.wait(ctx, t, "bob refused an old recording", decision("bob", "recording.playback", "deny")); r.Reason != "recording_too_old" {
		t.Errorf("old recording refused with %q, want recording_too_old", r.Reason)
	}
}

// TestWatchdogHangsUpBypassesWithin200ms: the dialplan's ChanSpy and MixMonitor are
// rows of the scenarios table (scenarios_test.go); this is the Asterisk-only bypass.
func TestWatchdogHangsUpBypassesWithin200ms(t *testing.T) {
	// bypass holds the events that mark when a case's bypass of callwarden
	// began and when the watchdog ended it.
	type bypass struct {
		began, ended lab.Event
	}
	for _, tc := range []struct {
		name   string
		bypass func(ctx context.Context, t *testing.T, l *lab.TestLab, events *lab.EventStream) bypass
		audit  func(enforce.AuditRecord) bool // the watchdog's record of it, awaited
		want   func(enforce.AuditRecord) bool // what that record must say besides, if anything
	}{
		{
			name: "snoop created by another ARI application",
			bypass: func(ctx context.Context, t *testing.T, l *lab.TestLab, events *lab.EventStream) bypass {
				agent, _ := salesCall(ctx, t, l, events, "5550100")
				snoop := rogueSnoop(ctx, t, l, agent.ID)
				return bypass{
					began: mustWait(ctx, t, events, "the rogue snoop", lab.OnChannel("ChannelCreated", snoop)),
					ended: mustWait(ctx, t, events, "the rogue snoop hung up", lab.OnChannel("ChannelDestroyed", snoop)),
				}
			},
			audit: func(r enforce.AuditRecord) bool {
				return r.Source == "watchdog" && strings.Contains(r.Detail, "snoop")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogEnforce)
			b := tc.bypass(ctx, t, l, events)
			if d := eventTime(t, b.ended).Sub(eventTime(t, b.began)); d > 200*time.Millisecond {
				t.Errorf("the bypass was ended %s after it began, want <= 200ms", d)
			} else {
				t.Logf("the bypass was ended %s after it began", d)
			}
			r := cw.audit.wait(ctx, t, "the watchdog's record", tc.audit)
			if tc.want != nil && !tc.want(r) {
				t.Errorf("watchdog audit = %+v", r)
			}
		})
	}
}

// rogueSnoop has another ARI application snoop on channelID; it returns the
// snoop's id and hangs it up when the test ends.
func rogueSnoop(ctx context.Context, t testing.TB, l *lab.TestLab, channelID string) string {
	t.Helper()
	return foreignSnoop(ctx, t, l, rogueApp(ctx, t, l), channelID)
}

// rogueApp registers an ARI application other than callwarden's, until the
// test ends, and returns its name: snoops placed in it are foreign.
func rogueApp(ctx context.Context, t testing.TB, l *lab.TestLab) string {
	t.Helper()
	app := l.NewID("rogue")
	stream, err := l.ARI.Events(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stream.Close() })
	return app
}

// foreignSnoop has the ARI application app snoop on channelID; it returns
// the snoop's id and hangs it up when the test ends.
func foreignSnoop(ctx context.Context, t testing.TB, l *lab.TestLab, app, channelID string) string {
	t.Helper()
	id := l.NewID("rogue-snoop")
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.ARI.Hangup(cctx, id); err != nil && !errors.Is(err, lab.ErrNotFound) {
			t.Errorf("hang up the rogue snoop: %v", err)
		}
	})
	if err := ari(ctx, l, http.MethodPost, "/channels/"+url.PathEscape(channelID)+"/snoop",
		url.Values{"app": {app}, "spy": {"both"}, "snoopId": {id}}, nil); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestWatchdogReportOnlyAuditsWithoutHangingUp(t *testing.T) {
	l, ctx, cw, events := startMonitoring(t, asterisk.WatchdogReportOnly)
	agent, ext := salesCall(ctx, t, l, events, "5550100")
	sup := mustOriginateSupervisor(ctx, t, l, "1002", "cw-unguarded", "*999"+ext)
	snoop := rogueSnoop(ctx, t, l, agent.ID)
	cw.audit.wait(ctx, t, "the ChanSpy reported", func(r enforce.AuditRecord) bool {
		return r.Source == "watchdog" && strings.HasPrefix(r.Detail, "reported") && strings.Contains(r.Detail, "ChanSpy")
	})
	cw.audit.wait(ctx, t, "the snoop reported", func(r enforce.AuditRecord) bool {
		return r.Source == "watchdog" && strings.HasPrefix(r.Detail, "reported") && strings.Contains(r.Detail, "snoop")
	})
	// A negative check: a second after reporting, both bypasses still run.
	time.Sleep(time.Second)
	for _, id := range []string{sup.First, snoop} {
		if _, err := l.ARI.Channel(ctx, id); err != nil {
			t.Errorf("report-only hung up %s: %v", id, err)
		}
	}
}

func TestInterceptLatencyFromStasisToBridged(t *testing.T) {
	l := suite.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cw := startCallwarden(t, l, asterisk.WatchdogEnforce)
	events := mustEvents(ctx, t, l)
	const n = 15
	lat := interceptSamples(ctx, t, l, events, n)
	p50, p99 := lat[len(lat)/2], lat[len(lat)-1]
	t.Logf("intercept latency (Asterisk timestamps, Stasis() -> snoop bridged), n=%d: p50 %s, p99(max) %s", n, p50, p99)
	if p99 > 500*time.Millisecond {
		t.Errorf("intercept p99 %s, want < 500ms", p99)
	}
	if c := histogramCount(t, cw.reg, "callwarden_asterisk_intercept_seconds"); c < n {
		t.Errorf("intercept histogram has %d observations, want >= %d", c, n)
	}
}

// interceptSamples has supervisor 1001 listen to a new sales call n times,
// one after the other, and returns each time from the supervisor's
// Stasis() to its snoop entering the bridge (Asterisk's timestamps),
// sorted.
func interceptSamples(ctx context.Context, t *testing.T, l *lab.TestLab, events *lab.EventStream, n int) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		agent, ext := salesCall(ctx, t, l, events, "5550100")
		sup := mustOriginateSupervisor(ctx, t, l, "1001", "cw-supervisors", "*222"+ext)
		start := mustWait(ctx, t, events, "Stasis on the supervisor", func(e lab.Event) bool {
			return e.Type == "ChannelDialplan" && e.ChannelID() == sup.First && e.DialplanApp == "Stasis"
		})
		created := mustWait(ctx, t, events, "the snoop", snoopOn(agent.ID))
		bridged := mustWait(ctx, t, events, "the snoop bridged", lab.OnChannel("ChannelEnteredBridge", created.Channel.ID))
		lat = append(lat, eventTime(t, bridged).Sub(eventTime(t, start)))
		for _, id := range []string{sup.First, agent.ID} {
			if err := l.ARI.Hangup(ctx, id); err != nil && !errors.Is(err, lab.ErrNotFound) {
				t.Fatal(err)
			}
		}
		mustOK(t, l.WaitChannelGone(ctx, agent.ID))
		waitMemberFree(ctx, t, l, "sales", ext) // so the next call can reach an agent
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

// waitMemberFree waits until queue shows member ext "(Not in use)" again.
func waitMemberFree(ctx context.Context, t testing.TB, l *lab.TestLab, queue, ext string) {
	t.Helper()
	for {
		out := mustAsteriskCLI(ctx, t, l, "queue show "+queue)
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), ext+" ") && strings.Contains(line, "(Not in use)") {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("queue %s member %s never free again: %v\n%s", queue, ext, ctx.Err(), out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func histogramCount(t testing.TB, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	for _, mf := range gather(t, reg) {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func gather(t testing.TB, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	var sum float64
	for _, mf := range gather(t, reg) {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestAgentPausesItsOwnRecordingForACardNumber(t *testing.T) {
	// The example agents have no profile; here agent2001 gets one that lets it
	// pause and resume the recordings of its own calls (agents: self), as a PCI
	// policy would.
	p := mustExampleProfiles(t)
	p.Profiles = append(p.Profiles, enforce.Profile{Name: "agent-pci", Grants: []enforce.Grant{{
		Actions: enforce.NewActionSet(enforce.RecordingPause, enforce.RecordingResume),
		Scopes:  [4]enforce.Scope{enforce.DimAgents: {Kind: enforce.ScopeSelf}},
	}}})
	for i := range p.Users {
		if p.Users[i].ID == "agent2001" {
			p.Users[i].Profile = "agent-pci"
		}
	}
	l, ctx, cw, events := startMonitoringPolicy(t, p)
	_, ext := salesCall(ctx, t, l, events, "5550100")
	if ext != "2001" {
		t.Fatalf("the sales call went to %s, want 2001", ext)
	}
	dial := func(caller, exten string) {
		t.Helper()
		// The agent's second line: caller id 2001, no endpoint identity.
		call := originatePhone(ctx, t, l, caller, "Local/1001@cw-supervisor-line/n", exten, nil)
		mustWait(ctx, t, events, caller+" dialling "+exten+" done", lab.OnChannel("ChannelDestroyed", call.First))
	}
	dial("1001", "*2252001") // alice starts the recording
	cw.audit.wait(ctx, t, "alice starts", decision("alice", "recording.start", "allow"))
	rec, err := cw.recs.ActiveRecording(ctx, "agent2001")
	if err != nil {
		t.Fatal(err)
	}

	dial("2001", "*226")
	cw.audit.wait(ctx, t, "the agent pauses its own recording", decision("agent2001", "recording.pause", "allow"))
	var lr liveRecording
	if err := ari(ctx, l, http.MethodGet, "/recordings/live/"+url.PathEscape(rec.Name), nil, &lr); err != nil || lr.State != "paused" {
		t.Fatalf("after the agent's pause ARI says %q (%v), want paused", lr.State, err)
	}
	dial("2001", "*226")
	cw.audit.wait(ctx, t, "the agent resumes", decision("agent2001", "recording.resume", "allow"))
	if err := ari(ctx, l, http.MethodGet, "/recordings/live/"+url.PathEscape(rec.Name), nil, &lr); err != nil || lr.State != "recording" {
		t.Fatalf("after the agent's resume ARI says %q (%v), want recording", lr.State, err)
	}
	got, err := cw.recs.Recording(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Pauses) != 1 || got.Pauses[0].By != "agent2001" || got.Pauses[0].ResumedBy != "agent2001" {
		t.Errorf("pauses = %+v, want one paused and resumed by agent2001", got.Pauses)
	}
	// The agent may not stop it: its profile only pauses.
	dial("2001", "*2292001")
	if r := cw.audit.wait(ctx, t, "the agent refused stop", decision("agent2001", "recording.stop", "deny")); r.Reason != "action_not_granted" {
		t.Errorf("stop refused with %q, want action_not_granted", r.Reason)
	}
}
