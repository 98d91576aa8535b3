package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	tclog "github.com/testcontainers/testcontainers-go/log"

	redisstore "github.com/callwarden/callwarden/cache/redis"
	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/integration/lab"
)

// Bounds of the phases around the scenario.
const (
	labStartTimeout = 3 * time.Minute
	readyTimeout    = 30 * time.Second
	teardownTimeout = time.Minute
)

// demo is one run: the lab, the callwarden child, the observer, and the
// channels the demo placed (hung up at the end).
type demo struct {
	opts options
	out  io.Writer
	dir  string // temp dir: callwarden's config and log, the lab's log

	labLog *os.File // testcontainers' messages
	lab    *lab.Lab // Asterisk and Redis; Redis only with --pbx freeswitch
	pbx    *pbx     // the ARI observer (Asterisk)
	fs     *fsPBX   // the FreeSWITCH lab and its ESL observer (--pbx freeswitch)
	daemon *daemon
	store  *redisstore.Store // the Redis store: audit stream and recording metadata

	mu       sync.Mutex
	channels []string
	seq      int
}

func newDemo(o options, out io.Writer) *demo { return &demo{opts: o, out: out} }

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// run plays the whole demo and returns the exit status. Teardown always
// runs, with its own deadline, also when ctx is cancelled (Ctrl-C).
func (d *demo) run(ctx context.Context) (code int) {
	started := time.Now()
	d.printf("callwarden demo: a real %s and Redis 7 in containers, the real `callwarden serve` deciding.\n", d.opts.pbxName())
	defer func() {
		if ctx.Err() != nil {
			d.printf("\ninterrupted: tearing everything down\n")
			code = exitInterrupted
		}
		if err := d.teardown(); err != nil {
			d.printf("teardown: %s\n", oneLine(err.Error()))
			if code == exitOK {
				code = exitFailure
			}
		}
		d.printf("demo finished in %s\n", time.Since(started).Round(100*time.Millisecond))
	}()
	if err := d.setup(ctx); err != nil {
		if ctx.Err() == nil {
			d.printf("\nsetup failed: %s\n", oneLine(err.Error()))
		}
		return exitFailure
	}
	var results []*stepResult
	if d.opts.pbx == pbxFreeSWITCH {
		results = d.fsScenario(ctx)
	} else {
		results = d.scenario(ctx)
	}
	if ctx.Err() != nil {
		return exitInterrupted
	}
	line, ok := summarize(results)
	d.printf("\n== %s\n", line)
	if !ok {
		d.printf("   callwarden's log: %s\n", d.daemon.logPath)
		return exitFailure
	}
	return exitOK
}

// setup starts the lab, applies the profiles, starts callwarden and the
// observer, and waits until callwarden is connected to the PBX.
func (d *demo) setup(ctx context.Context) error {
	if err := d.prepare(); err != nil {
		return err
	}
	if d.opts.pbx == pbxFreeSWITCH {
		return d.setupFreeSWITCH(ctx)
	}
	d.printf("\n== starting the lab: Asterisk (%s) and Redis (%s)\n", lab.AsteriskImage, lab.RedisImage)
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, labStartTimeout)
	var err error
	d.lab, err = lab.Start(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("start the lab: %w", err)
	}
	info, err := d.lab.ARI.Info(ctx)
	if err != nil {
		return err
	}
	d.printf("   up in %s: Asterisk %s, ARI %s, Redis %s\n", time.Since(t0).Round(100*time.Millisecond),
		info.System.Version, d.lab.ARIURL, d.lab.RedisAddr)
	if err := d.applyProfiles(ctx); err != nil {
		return err
	}

	d.pbx = newPBX(d.lab)
	if d.pbx.events, err = d.lab.ARI.Events(ctx, observerApp); err != nil {
		return fmt.Errorf("observe ARI: %w", err)
	}
	if err := d.ensureHandsetContext(ctx); err != nil {
		return err
	}
	cfg := func(httpAddr string) string {
		return d.lab.ServeConfig(httpAddr, config.Default().Asterisk.App, config.Default().Redis.Prefix)
	}
	if err := d.startCallwarden(ctx, cfg, config.EnvAsteriskPassword+"="+d.lab.ARIPassword); err != nil {
		return err
	}
	app := config.Default().Asterisk.App
	if err := d.waitApplication(ctx, app); err != nil {
		if ctx.Err() != nil || !d.daemon.running() {
			return err
		}
		// Play the steps anyway: each one then shows, from the PBX, what a
		// phone gets when callwarden is not there (the feature codes fail
		// closed), and fails.
		d.printf("   WARNING: %s\n", oneLine(err.Error()))
		return nil
	}
	d.printf("   ready: HTTP API on %s; Asterisk lists the Stasis application %q\n", d.daemon.addr, app)
	return nil
}

// prepare makes the run's temp dir and sends testcontainers' messages to
// its lab.log.
func (d *demo) prepare() error {
	var err error
	if d.dir, err = os.MkdirTemp("", "cwdemo-"); err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	// The reaper (Ryuk) image cannot be pulled without a registry; the demo
	// removes its containers itself, also on Ctrl-C, and lab.Start sweeps
	// those of a demo that was killed.
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			return err
		}
	}
	if d.labLog, err = os.Create(filepath.Join(d.dir, "lab.log")); err != nil {
		return fmt.Errorf("lab log: %w", err)
	}
	// testcontainers' own messages would drown the demo's output.
	tclog.SetDefault(log.New(d.labLog, "", log.LstdFlags))
	return nil
}

// applyProfiles applies the profiles files to the lab's Redis with the
// CLI, and opens the store the steps read the audit trail and the
// recordings from.
func (d *demo) applyProfiles(ctx context.Context) error {
	d.printf("\n== applying the profiles to Redis: callwarden profiles apply -f %s\n", strings.Join(d.opts.profiles, " -f "))
	args := []string{"profiles", "apply", "--redis-addr", d.lab.RedisAddr}
	for _, f := range d.opts.profiles {
		args = append(args, "-f", f)
	}
	out, err := runCLI(ctx, d.opts.callwarden, args...)
	if err != nil {
		return err
	}
	d.printf("   %s\n", lastLine(out))
	d.store, err = redisstore.New(redisstore.Options{Addrs: []string{d.lab.RedisAddr}, Prefix: config.Default().Redis.Prefix})
	return err
}

// startCallwarden writes the serve config that config(httpAddr) returns and
// starts `callwarden serve` with env, then waits for /readyz.
func (d *demo) startCallwarden(ctx context.Context, config func(httpAddr string) string, env ...string) error {
	addr, err := freeAddrOn("127.0.0.1")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(d.dir, "callwarden.yaml")
	body := "# callwarden serve config written by cwdemo for this run.\n" + config(addr)
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write daemon config: %w", err)
	}
	logPath := filepath.Join(d.dir, "callwarden.log")
	d.printf("\n== starting %s serve --config %s\n", d.opts.callwarden, cfgPath)
	d.printf("   log: %s\n", logPath)
	if d.daemon, err = startDaemon(d.opts.callwarden, cfgPath, logPath, addr, env...); err != nil {
		return err
	}
	return d.daemon.waitReady(ctx, readyTimeout)
}

// waitApplication waits until Asterisk lists callwarden's Stasis
// application, i.e. callwarden's ARI websocket is connected.
func (d *demo) waitApplication(ctx context.Context, app string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := d.pbx.applicationRegistered(ctx, app)
		if ok {
			return nil
		}
		select {
		case <-d.daemon.exited:
			return fmt.Errorf("callwarden exited: %v (see %s)", d.daemon.waitErr, d.daemon.logPath)
		case <-tick.C:
		case <-ctx.Done():
			why := "is the Asterisk adapter configured (asterisk.url)?"
			if err != nil {
				why = err.Error()
			}
			return fmt.Errorf("Asterisk never listed the Stasis application %q after %s: %s (see %s)",
				app, readyTimeout, why, d.daemon.logPath)
		}
	}
}

// handsetContext is the lab context of the demo's scripted handsets
// (deploy/lab/asterisk/etc/asterisk/extensions.conf): the ;2 half of
// Local/<phone>@cw-demo-handset/n answers and enters the observer's Stasis
// application, where the demo presses keys on it.
const handsetContext = "cw-demo-handset"

// ensureHandsetContext checks that the lab image has the handset context:
// an image built before it existed needs `make lab`.
func (d *demo) ensureHandsetContext(ctx context.Context) error {
	out, err := d.lab.AsteriskCLI(ctx, "dialplan show "+handsetContext)
	if err != nil {
		return fmt.Errorf("look for the demo handset context: %w", err)
	}
	if strings.Contains(out, "There is no existence") {
		return fmt.Errorf("the lab image has no [%s] context: rebuild it with `make lab`", handsetContext)
	}
	return nil
}

// track remembers channels to hang up at the end.
func (d *demo) track(ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.channels = append(d.channels, ids...)
}

// newID returns a channel id unique to this run, e.g. cwdemo-alice-3.
func (d *demo) newID(kind string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	return fmt.Sprintf("cwdemo-%s-%d", kind, d.seq)
}

// teardown stops callwarden (SIGTERM), removes the containers and checks
// that none of this process's containers is left.
func (d *demo) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	d.printf("\n== tearing down\n")
	var errs []error
	d.mu.Lock()
	chans := d.channels
	d.mu.Unlock()
	for _, id := range chans {
		var err error
		switch {
		case d.fs != nil:
			err = d.fs.hangup(ctx, id)
		case d.lab != nil && d.pbx != nil:
			err = d.pbx.hangup(ctx, id)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("hang up %s: %w", id, err))
		}
	}
	if d.daemon != nil {
		how, err := d.daemon.stop()
		if err != nil {
			errs = append(errs, err)
		} else {
			d.printf("   callwarden %s (log: %s)\n", how, d.daemon.logPath)
		}
	}
	if d.pbx != nil && d.pbx.events != nil {
		errs = append(errs, d.pbx.events.Close())
		if path, err := d.saveEvents(); err != nil {
			errs = append(errs, err)
		} else {
			d.printf("   ARI events seen by the demo: %s\n", path)
		}
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	if d.fs != nil {
		errs = append(errs, d.fs.close(ctx, d))
	}
	if d.lab != nil && d.lab.ARI != nil {
		if logs, err := d.lab.AsteriskLogs(ctx); err == nil {
			path := filepath.Join(d.dir, "asterisk.log")
			if err := os.WriteFile(path, []byte(logs), 0o600); err == nil {
				d.printf("   Asterisk's console log: %s\n", path)
			}
		}
	}
	if d.lab != nil {
		if err := d.lab.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if d.labLog != nil {
		errs = append(errs, d.labLog.Close())
	}
	left, err := lab.Leftovers(ctx)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("check for leftover containers: %w", err))
	case len(left) > 0:
		errs = append(errs, fmt.Errorf("containers left behind: %s (remove them with docker rm -f)", strings.Join(left, ", ")))
	case d.lab != nil:
		d.printf("   containers removed: docker ps -a lists none of the demo's\n")
	}
	return errors.Join(errs...)
}

// saveEvents writes every ARI event the observer saw, one JSON object per
// line, for whoever wants to see what the PBX did in detail.
func (d *demo) saveEvents() (string, error) {
	path := filepath.Join(d.dir, "ari-events.jsonl")
	var b bytes.Buffer
	if n := d.pbx.events.Dropped(); n > 0 {
		fmt.Fprintf(&b, "{\"note\":\"%d older events dropped\"}\n", n)
	}
	for _, ev := range d.pbx.events.Events() {
		b.Write(ev.Raw)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("save ARI events: %w", err)
	}
	return path, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
