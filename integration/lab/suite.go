package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds Suite.Main's start of the lab (both containers, in parallel).
const StartTimeout = 3 * time.Minute

// Suite is the lab of one test package: started once by Main (from TestMain), shared
// by the package's tests through Lab, removed when the tests end.
type Suite struct {
	lab  *Lab
	skip string
	fs   freeswitchOnce

	// topologies are the Redis Sentinel groups and Clusters tests started
	// and have not removed yet, for the interrupt handler.
	topoMu     sync.Mutex
	topologies map[*RedisTopology]bool
}

// track records t as running (or, with running false, removed).
func (s *Suite) track(t *RedisTopology, running bool) {
	s.topoMu.Lock()
	defer s.topoMu.Unlock()
	if s.topologies == nil {
		s.topologies = map[*RedisTopology]bool{}
	}
	if running {
		s.topologies[t] = true
	} else {
		delete(s.topologies, t)
	}
}

// closeTopologies removes the topologies tests left running.
func (s *Suite) closeTopologies(ctx context.Context) error {
	s.topoMu.Lock()
	defer s.topoMu.Unlock()
	var errs []error
	for t := range s.topologies {
		errs = append(errs, t.Close(ctx))
	}
	return errors.Join(errs...)
}

// Main starts the lab, runs the tests and removes the lab; TestMain passes its result
// to os.Exit. When Docker is unavailable it fails (exit status 1) if
// CALLWARDEN_INTEGRATION=required, and otherwise runs the tests so each one skips with
// the reason. A missing image always fails: it means `make lab` was not run.
func (s *Suite) Main(m *testing.M) int {
	// The reaper (Ryuk) image cannot be pulled without a registry; the lab removes its
	// containers itself (Close, interrupt handler, stale-container sweep).
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			fmt.Fprintf(os.Stderr, "integration: %v\n", err)
			return 1
		}
	}
	required := os.Getenv(EnvIntegration) == "required"

	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	l, err := Start(ctx)
	cancel()
	switch {
	case errors.Is(err, ErrDockerUnavailable) && required:
		fmt.Fprintf(os.Stderr, "integration: Docker is required (%s=required) but unavailable: %v\n", EnvIntegration, err)
		return 1
	case errors.Is(err, ErrDockerUnavailable):
		s.skip = fmt.Sprintf("integration: Docker is unavailable, skipping (set %s=required to make this fatal): %v", EnvIntegration, err)
		fmt.Fprintln(os.Stderr, s.skip)
		return m.Run()
	case err != nil:
		fmt.Fprintf(os.Stderr, "integration: cannot start the lab: %v\n", err)
		return 1
	}
	s.lab = l
	fmt.Fprintf(os.Stderr, "integration: lab up in %s: ARI %s, Redis %s\n",
		time.Since(started).Round(time.Millisecond), l.ARIURL, l.RedisAddr)

	stopSignals := s.removeOnSignal()
	code := m.Run()
	stopSignals()

	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := errors.Join(l.Close(ctx), s.closeFreeSWITCH(ctx)); err != nil {
		fmt.Fprintf(os.Stderr, "integration: removing the lab: %v\n", err)
		code = 1
	}
	left, err := Leftovers(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "integration: checking for leftover containers: %v\n", err)
		code = 1
	case len(left) > 0:
		fmt.Fprintf(os.Stderr, "integration: containers left behind: %s\n", strings.Join(left, ", "))
		code = 1
	default:
		fmt.Fprintln(os.Stderr, "integration: lab containers removed")
	}
	return code
}

// removeOnSignal removes the containers when the test binary is interrupted, then
// lets the signal terminate the process as it would have. The returned func stops it.
func (s *Suite) removeOnSignal() func() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "integration: %v: removing the lab containers\n", sig)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := errors.Join(s.lab.Close(ctx), s.closeFreeSWITCH(ctx), s.closeTopologies(ctx)); err != nil {
				fmt.Fprintf(os.Stderr, "integration: removing the lab: %v\n", err)
			}
			cancel()
			signal.Stop(sigs)
			if sysSig, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), sysSig)
			}
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}

// mustRun skips the test (with the reason) when Docker is unavailable and the suite
// is not required, and fails it if Main did not run.
func (s *Suite) mustRun(tb testing.TB) {
	tb.Helper()
	if s.lab == nil {
		if s.skip != "" {
			tb.Skip(s.skip)
		}
		tb.Fatal("integration: the lab is not running: call Suite.Main from TestMain")
	}
}

// Lab returns the test's view of the lab: its own Redis key prefix, its own channels,
// all cleaned up when the test ends. It skips the test (with the reason) when Docker is
// unavailable and the suite is not required, and fails it if Main did not run.
func (s *Suite) Lab(tb testing.TB) *TestLab {
	tb.Helper()
	s.mustRun(tb)
	tl := &TestLab{Lab: s.lab, tb: tb, KeyPrefix: KeyPrefix(tb), idBase: channelIDBase(tb)}
	tb.Cleanup(tl.cleanup)
	return tl
}

// KeyPrefix returns a Redis key prefix unique to the test: its name (sanitised) and a
// random part, so reruns and -count=N never share keys. It ends with ':'.
func KeyPrefix(tb testing.TB) string {
	return "cwtest:" + sanitize(tb.Name(), 60) + ":" + randomHex(4) + ":"
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func sanitize(s string, n int) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if len(s) > n {
		s = s[:n]
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on Linux; a time-based value still keeps tests apart.
		return fmt.Sprintf("%0*x", 2*n, time.Now().UnixNano())[:2*n]
	}
	return hex.EncodeToString(b)
}

func channelIDBase(tb testing.TB) string {
	return "t-" + sanitize(tb.Name(), 40) + "-" + randomHex(3)
}

// TestLab is one test's handle on the shared lab. Channels it originates are hung up
// and Redis keys under KeyPrefix are deleted when the test ends.
type TestLab struct {
	*Lab
	// KeyPrefix is the test's own Redis key prefix (see KeyPrefix).
	KeyPrefix string

	tb     testing.TB
	idBase string
	seq    atomic.Int64

	mu       sync.Mutex
	channels []string
	streams  []*EventStream
}

// NewID returns a channel id unique to the test, e.g. t-TestX-1a2b3c-customer-1.
func (tl *TestLab) NewID(kind string) string {
	return fmt.Sprintf("%s-%s-%d", tl.idBase, kind, tl.seq.Add(1))
}

// Events connects a Stasis application unique to the test, subscribed to all events,
// closed when the test ends. Connect before acting so no event is missed.
func (tl *TestLab) Events(ctx context.Context) (*EventStream, error) {
	app := tl.NewID("app")
	s, err := tl.ARI.Events(ctx, app)
	if err != nil {
		return nil, err
	}
	tl.mu.Lock()
	tl.streams = append(tl.streams, s)
	tl.mu.Unlock()
	return s, nil
}

// LocalCall is a call whose "phone" is a Local channel: First is the ";1" half (the
// channel ARI originated, running the context/extension given to Originate) and Second
// the ";2" half (running the dialplan of the Local endpoint's exten@context).
type LocalCall struct {
	First, Second string
}

// OriginateCustomer puts a customer call in queue (e.g. "sales"): Second waits in
// Queue() and is the channel an agent gets bridged with; First is the customer's phone,
// answering and silent (audio "wait") or playing a prompt in a loop (audio "play").
func (tl *TestLab) OriginateCustomer(ctx context.Context, queue, callerID, audio string) (LocalCall, error) {
	if audio == "" {
		audio = "wait"
	}
	id := tl.NewID("customer")
	return tl.originateLocal(ctx, LocalCall{First: id, Second: id + "-q"}, "Local/"+queue+"@cw-customer/n", audio, callerID)
}

// OriginateAgentCall makes a direct call (no queue) to agent (e.g. "2001"): Second is
// the agent (Local/<agent>@cw-agent, carrying CALLWARDEN_AGENT and SPYGROUP
// agent<agent>), First the caller.
func (tl *TestLab) OriginateAgentCall(ctx context.Context, agent, callerID string) (LocalCall, error) {
	id := tl.NewID("direct")
	return tl.originateLocal(ctx, LocalCall{First: id, Second: id + "-agent"}, "Local/"+agent+"@cw-agent/n", "wait", callerID)
}

// originateLocal originates call over a Local endpoint whose ";1" half runs
// extension audio of cw-customer-audio (the caller's phone).
func (tl *TestLab) originateLocal(ctx context.Context, call LocalCall, endpoint, audio, callerID string) (LocalCall, error) {
	_, err := tl.originate(ctx, OriginateParams{
		Endpoint:       endpoint,
		Context:        "cw-customer-audio",
		Extension:      audio,
		Priority:       1,
		CallerID:       callerID,
		ChannelID:      call.First,
		OtherChannelID: call.Second,
	}, call)
	return call, err
}

// OriginateSupervisor makes supervisor (e.g. "1001") dial exten in context, as a SIP
// phone would: First runs the dialplan with caller id <supervisor> (e.g. context
// "cw-supervisors", exten "*2222001"; or "cw-unguarded", "*9992001"); Second is the
// supervisor's handset (Local/<supervisor>@cw-supervisor-line), answering and listening.
func (tl *TestLab) OriginateSupervisor(ctx context.Context, supervisor, dialContext, exten string) (LocalCall, error) {
	id := tl.NewID("supervisor")
	call := LocalCall{First: id, Second: id + "-handset"}
	_, err := tl.originate(ctx, OriginateParams{
		Endpoint:       "Local/" + supervisor + "@cw-supervisor-line/n",
		Context:        dialContext,
		Extension:      exten,
		Priority:       1,
		CallerID:       fmt.Sprintf("\"Supervisor %s\" <%s>", supervisor, supervisor),
		ChannelID:      call.First,
		OtherChannelID: call.Second,
		Variables:      map[string]string{"CALLWARDEN_SUPERVISOR": supervisor},
	}, call)
	return call, err
}

// Originate is ARI.Originate with the channels hung up when the test ends.
func (tl *TestLab) Originate(ctx context.Context, p OriginateParams) (Channel, error) {
	return tl.originate(ctx, p, LocalCall{First: p.ChannelID, Second: p.OtherChannelID})
}

func (tl *TestLab) originate(ctx context.Context, p OriginateParams, ids LocalCall) (Channel, error) {
	tl.track(ids.First, ids.Second)
	ch, err := tl.ARI.Originate(ctx, p)
	if err != nil {
		return ch, fmt.Errorf("originate %s: %w", p.Endpoint, err)
	}
	tl.track(ch.ID)
	return ch, nil
}

func (tl *TestLab) track(ids ...string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, id := range ids {
		if id != "" {
			tl.channels = append(tl.channels, id)
		}
	}
}

// WaitChannelGone waits until the channel no longer exists in Asterisk.
func (tl *TestLab) WaitChannelGone(ctx context.Context, channelID string) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := tl.ARI.Channel(ctx, channelID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("channel %s: %w", channelID, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("channel %s still up: %w", channelID, ctx.Err())
		}
	}
}

// cleanup hangs up the test's channels, waits for them to go (so the next test finds
// its agents free), deletes its Redis keys and closes its event streams.
func (tl *TestLab) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tl.mu.Lock()
	channels, streams := tl.channels, tl.streams
	tl.channels, tl.streams = nil, nil
	tl.mu.Unlock()

	seen := map[string]bool{}
	for _, id := range channels {
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := tl.ARI.Hangup(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
			tl.tb.Errorf("cleanup: hang up %s: %v", id, err)
		}
	}
	for id := range seen {
		if err := tl.WaitChannelGone(ctx, id); err != nil {
			tl.tb.Errorf("cleanup: %v", err)
		}
	}
	if err := deletePrefix(ctx, tl, tl.KeyPrefix); err != nil {
		tl.tb.Errorf("cleanup: redis keys %s*: %v", tl.KeyPrefix, err)
	}
	for _, s := range streams {
		if err := s.Close(); err != nil {
			tl.tb.Errorf("cleanup: close ARI events: %v", err)
		}
	}
}

func deletePrefix(ctx context.Context, tl *TestLab, prefix string) error {
	iter := tl.Redis.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	if err := tl.Redis.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("del: %w", err)
	}
	return nil
}

// OwnRedisSentinel starts a Redis Sentinel group of the test's own with
// replicas replicas (StartRedisSentinel), removed when the test ends.
func (s *Suite) OwnRedisSentinel(tb testing.TB, replicas int) *RedisSentinel {
	tb.Helper()
	s.mustRun(tb)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	started := time.Now()
	rs, err := StartRedisSentinel(ctx, replicas)
	if err != nil {
		tb.Fatalf("integration: cannot start a Redis Sentinel group: %v", err)
	}
	s.track(&rs.RedisTopology, true)
	tb.Cleanup(func() {
		if err := rs.Close(context.Background()); err != nil {
			tb.Errorf("integration: %v", err)
		}
		s.track(&rs.RedisTopology, false)
	})
	var data []string
	for _, n := range rs.Data {
		data = append(data, n.Addr)
	}
	tb.Logf("lab: Redis Sentinel group up in %s: primary and replicas %s; sentinels %s", time.Since(started).Round(time.Millisecond),
		strings.Join(data, ", "), strings.Join(rs.SentinelAddrs, ", "))
	return rs
}

// OwnRedisCluster starts a Redis Cluster of the test's own
// (StartRedisCluster), removed when the test ends.
func (s *Suite) OwnRedisCluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	s.mustRun(tb)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	started := time.Now()
	rc, err := StartRedisCluster(ctx)
	if err != nil {
		tb.Fatalf("integration: cannot start a Redis Cluster: %v", err)
	}
	s.track(&rc.RedisTopology, true)
	tb.Cleanup(func() {
		if err := rc.Close(context.Background()); err != nil {
			tb.Errorf("integration: %v", err)
		}
		s.track(&rc.RedisTopology, false)
	})
	tb.Logf("lab: Redis Cluster up in %s: %s", time.Since(started).Round(time.Millisecond), strings.Join(rc.Addrs(), ", "))
	return rc
}
