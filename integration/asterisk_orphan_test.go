package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
)

// servedDaemon is `callwarden serve` run as a child process against the lab.
type servedDaemon struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}

	bin, cfg string   // what again starts once more
	env      []string // the environment it was given
	starts   int      // how many times it was started
}

// serveConfig writes a serve config deciding from the policy stored in the
// lab's Redis under the test's key prefix, with the Stasis application
// "callwarden" on the lab's Asterisk. The ARI password goes in the
// environment, as in a deployment.
func serveConfig(t *testing.T, l *lab.TestLab) string {
	t.Helper()
	body := l.ServeConfig("127.0.0.1:0", "callwarden", l.KeyPrefix)
	path := filepath.Join(t.TempDir(), "callwarden.yaml")
	mustOK(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// startServed starts `bin serve --config cfg` as name, with the environment of
// the test less its CALLWARDEN_* variables, plus env ("NAME=value"), writing its
// output to a log of its own. At the end of the test it is stopped, and its log
// shown when the test failed.
func startServed(t testing.TB, bin, cfg, name string, env ...string) *servedDaemon {
	t.Helper()
	d := &servedDaemon{name: name, log: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{}),
		bin: bin, cfg: cfg, env: env, starts: 1}
	logf, err := os.Create(d.log)
	mustOK(t, err)
	d.cmd = lab.ServeCommand(bin, cfg, logf, env...)
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		_ = d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			if b, err := os.ReadFile(d.log); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
	return d
}

// stop sends SIGTERM and waits for the daemon to exit (it may be gone already).
func (d *servedDaemon) stop(t testing.TB) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("%s did not stop within 20s of SIGTERM", d.name)
	}
}

// serveAsterisk starts `callwarden serve` and waits until its Stasis application
// is connected (its "ARI connected" log line).
func serveAsterisk(ctx context.Context, t *testing.T, l *lab.TestLab, bin, cfg, name string) *servedDaemon {
	t.Helper()
	// Registered before the daemon's own cleanup, so it runs after it: the
	// application must be gone before the next test connects one.
	t.Cleanup(func() { waitApplicationGone(t, l, name+" stopped") })
	d := startServed(t, bin, cfg, name, config.EnvAsteriskPassword+"="+l.ARIPassword)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !d.logged("ARI connected") {
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.log)
			t.Fatalf("%s exited before connecting:\n%s", name, b)
		case <-ctx.Done():
			t.Fatalf("%s never connected to ARI: %v", name, ctx.Err())
		case <-tick.C:
		}
	}
	return d
}

// again starts the (stopped) daemon once more on the same binary, config and
// environment, with a log of its own, and returns it.
func (d *servedDaemon) again(t *testing.T) *servedDaemon {
	t.Helper()
	next := startServed(t, d.bin, d.cfg, fmt.Sprintf("%s-%d", d.name, d.starts+1), d.env...)
	next.starts = d.starts + 1
	return next
}

func (d *servedDaemon) logged(msg string) bool { return d.loggedTimes(msg) > 0 }

// loggedTimes counts the daemon's log lines whose message is msg.
func (d *servedDaemon) loggedTimes(msg string) int {
	f, err := os.Open(d.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"`+msg+`"`) {
			n++
		}
	}
	return n
}

// waitGone polls gone until it reports the thing gone, or fails the test.
func waitGone(ctx context.Context, t *testing.T, l *lab.TestLab, what string, gone func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := gone()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			dumpAsterisk(t, l)
			t.Fatalf("%s still there: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func channelGone(ctx context.Context, l *lab.TestLab, id string) func() (bool, error) {
	return func() (bool, error) {
		_, err := l.ARI.Channel(ctx, id)
		if errors.Is(err, lab.ErrNotFound) {
			return true, nil
		}
		return false, err
	}
}

func bridgeGone(ctx context.Context, l *lab.TestLab, id string) func() (bool, error) {
	return func() (bool, error) {
		err := ari(ctx, l, http.MethodGet, "/bridges/"+id, nil, nil)
		if errors.Is(err, lab.ErrNotFound) {
			return true, nil
		}
		return false, err
	}
}

// crashLab is `callwarden serve` ("first") on the lab's Asterisk, deciding
// from the example profiles stored in Redis (store), for a test that kills
// it and starts it again (serveAsterisk on bin and cfg), within ctx.
type crashLab struct {
	l        *lab.TestLab
	ctx      context.Context
	bin, cfg string
	store    *redisstore.Store
	first    *servedDaemon
	events   *lab.EventStream
}

func startCrashLab(t *testing.T, timeout time.Duration) crashLab {
	t.Helper()
	c := crashLab{l: suite.Lab(t), ctx: contextFor(t, timeout)}
	c.bin, c.store = mustBinaryOnExampleProfiles(c.ctx, t, c.l)
	c.cfg = serveConfig(t, c.l)
	c.first = serveAsterisk(c.ctx, t, c.l, c.bin, c.cfg, "first")
	// Registered after the first daemon's cleanup, so it runs before it:
	// the calls end while a callwarden still runs, as on a live PBX.
	t.Cleanup(func() { hangupAll(t, c.l) })
	c.events = mustEvents(c.ctx, t, c.l)
	return c
}

// TestRestartAfterACrashEndsTheOrphanedListenSession kills callwarden -9
// while alice listens to an agent: Asterisk keeps the snoop, alice's
// channel and the bridge, unsupervised. The next callwarden, before it
// serves, ends them (the agent's call goes on) and audits it.
func TestRestartAfterACrashEndsTheOrphanedListenSession(t *testing.T) {
	c := startCrashLab(t, 3*time.Minute)
	l, ctx, bin, cfg, store, first, events := c.l, c.ctx, c.bin, c.cfg, c.store, c.first, c.events
	agent, ext := salesCall(ctx, t, l, events, "5550100")
	sess := mustMonitor(ctx, t, l, events, "1001", "*222"+ext, agent.ID)
	sup, snoop, bridge := sess.sup, sess.snoop, sess.bridge

	// kill -9: no cleanup runs. Asterisk keeps the whole session.
	mustOK(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited
	for what, gone := range map[string]func() (bool, error){
		"snoop " + snoop:          channelGone(ctx, l, snoop),
		"supervisor " + sup.First: channelGone(ctx, l, sup.First),
		"bridge " + bridge:        bridgeGone(ctx, l, bridge),
	} {
		if ok, err := gone(); err != nil || ok {
			t.Fatalf("%s gone (%v) right after the crash: the orphan this test is about was not made", what, err)
		}
	}

	crashed := time.Now()
	serveAsterisk(ctx, t, l, bin, cfg, "second")
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	waitGone(wctx, t, l, "the orphaned bridge "+bridge, bridgeGone(ctx, l, bridge))
	waitGone(wctx, t, l, "the orphaned snoop "+snoop, channelGone(ctx, l, snoop))
	waitGone(wctx, t, l, "alice's orphaned channel "+sup.First, channelGone(ctx, l, sup.First))
	t.Logf("orphaned session ended %s after starting the next callwarden", time.Since(crashed).Round(time.Millisecond))
	if _, err := l.ARI.Channel(ctx, agent.ID); err != nil {
		t.Errorf("the agent's call ended with the orphaned session: %v", err)
	}

	for {
		recs, err := store.ReadAudit(ctx, enforce.AuditFilter{Since: crashed.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		var found *enforce.AuditRecord
		for i, r := range recs {
			if r.Source == "watchdog" && strings.Contains(r.Detail, "orphaned") && strings.Contains(strings.Join(r.Channels, " "), snoop) {
				found = &recs[i]
			}
		}
		if found != nil {
			t.Logf("cleanup audited: %+v", *found)
			if found.User != "alice" || found.Action != "monitor.listen" || found.Outcome != enforce.OutcomeEnforced {
				t.Errorf("cleanup audited as %+v, want alice's monitor.listen ended (outcome enforced)", *found)
			}
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("no audit record of the cleanup; records: %+v", recs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
