package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// options are cwload's flags.
type options struct {
	bin         string
	users       int
	conns       int
	duration    time.Duration
	warmup      time.Duration
	requests    int64
	rate        int
	redisAddr   string
	redisDocker string
	logLevel    string
	keep        bool
	auditBatch  int
	auditQueue  int
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("cwload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.bin, "bin", "callwarden", "callwarden `BINARY` to serve with")
	fs.IntVar(&o.users, "users", 10000, "users in the generated profiles file")
	fs.IntVar(&o.conns, "conns", 32, "keep-alive connections, one sender each")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured run (at most 2m)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before the run; also fills the file-mode audit trail")
	fs.IntVar(&o.rate, "rate", 0, "offered load: send `N` checks/s in all, on a fixed schedule, latency counted from each check's scheduled time (0: each connection sends its next check as soon as it has the answer)")
	fs.Int64Var(&o.requests, "requests", 0, "stop the measured run after `N` checks (0: after -duration only)")
	fs.StringVar(&o.redisAddr, "redis-addr", "", "Redis mode on this loopback Redis `ADDR` (its policy is replaced)")
	fs.StringVar(&o.redisDocker, "redis-docker", "", "Redis mode on a fresh container of `IMAGE` (e.g. callwarden-lab/redis:7), removed at the end")
	fs.StringVar(&o.logLevel, "log-level", "", "the daemon's --log-level (default: its own, info)")
	fs.IntVar(&o.auditBatch, "audit-batch", 0, "Redis mode: the daemon's audit.batch_size (0: its default)")
	fs.IntVar(&o.auditQueue, "audit-queue", 0, "Redis mode: the daemon's audit.http_queue_size (0: its default)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (profiles, config, daemon log)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.users < 10 || o.conns < 1:
		return o, errors.New("-users must be at least 10 and -conns at least 1")
	case o.rate < 0 || o.rate > 1_000_000:
		return o, errors.New("-rate must be in [0, 1000000] checks/s")
	case o.duration <= 0 || o.duration > 2*time.Minute || o.warmup < 0 || o.warmup > time.Minute:
		return o, errors.New("-duration must be in (0, 2m] and -warmup in [0, 1m]")
	case o.redisAddr != "" && o.redisDocker != "":
		return o, errors.New("give -redis-addr or -redis-docker, not both")
	}
	if o.redisAddr != "" {
		host, _, err := net.SplitHostPort(o.redisAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return o, fmt.Errorf("-redis-addr %s: want a loopback host:port", o.redisAddr)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) (err error) {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cwload-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(out, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	profiles := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(profiles, profilesFile(o.users), 0o600); err != nil {
		return err
	}
	mode := "file"
	if o.redisDocker != "" {
		addr, stopRedis, err := startRedis(ctx, o.redisDocker)
		if err != nil {
			return err
		}
		defer stopRedis()
		o.redisAddr = addr
	}
	if o.redisAddr != "" {
		mode = "redis"
		apply := exec.CommandContext(ctx, o.bin, "profiles", "apply", "-f", profiles, "--redis-addr", o.redisAddr)
		if b, err := apply.CombinedOutput(); err != nil {
			return fmt.Errorf("profiles apply: %v: %s", err, lastLines(b, 3))
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(conf, configFile(addr, o.redisAddr, profiles, o.auditBatch, o.auditQueue), 0o600); err != nil {
		return err
	}
	d, err := startDaemon(ctx, o, conf, filepath.Join(dir, "daemon.log"))
	if err != nil {
		return err
	}
	defer d.stop()
	if err := waitReady(ctx, addr); err != nil {
		return fmt.Errorf("%w; daemon log: %s", err, d.logTail())
	}
	paths := checkPaths(o.users, 4096)
	offered := "as fast as answered"
	if o.rate > 0 {
		offered = fmt.Sprintf("%d checks/s offered", o.rate)
	}
	fmt.Fprintf(out, "cwload: %s mode, %d users, %d connections, %s, warmup %v, run %v, daemon %s (pid %d)\n",
		mode, o.users, o.conns, offered, o.warmup, o.duration, o.bin, d.cmd.Process.Pid)
	if o.warmup > 0 {
		if _, err := load(ctx, addr, paths, o.conns, o.rate, o.warmup, 0); err != nil {
			return fmt.Errorf("warmup: %w", err)
		}
	}
	cpu0, err := procCPU(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	res, err := load(ctx, addr, paths, o.conns, o.rate, o.duration, o.requests)
	if err != nil {
		return err
	}
	cpu1, err := procCPU(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	res.print(out)
	n := float64(res.ok + res.failed)
	fmt.Fprintf(out, "daemon CPU: %.2f s, %.1f µs per check (utime+stime of pid %d)\n",
		(cpu1 - cpu0).Seconds(), float64((cpu1-cpu0).Microseconds())/n, d.cmd.Process.Pid)
	self := rusageCPU(&ru1) - rusageCPU(&ru0)
	fmt.Fprintf(out, "load generator CPU: %.2f s, %.1f µs per check\n", self.Seconds(), float64(self.Microseconds())/n)

	if mode == "redis" {
		// The audit is written behind the answers: give the writer
		// time to drain before reading its counters.
		waitAuditDrained(ctx, addr, 30*time.Second)
	}
	if err := printAuditMetrics(ctx, addr, out); err != nil {
		return err
	}
	if err := d.stop(); err != nil {
		return fmt.Errorf("daemon: %w; log: %s", err, d.logTail())
	}
	if mode != "redis" {
		fmt.Fprintln(out, "audit verify: skipped, file mode (the trail is in the daemon's memory; `callwarden audit verify` reads Redis)")
		return nil
	}
	verify := exec.CommandContext(ctx, o.bin, "audit", "verify", "--redis-addr", o.redisAddr)
	b, verr := verify.CombinedOutput()
	fmt.Fprintf(out, "audit verify: %s", b)
	if verr != nil {
		return fmt.Errorf("audit verify: %w", verr)
	}
	return nil
}

// profilesFile is a policy of n users: one in ten a supervisor who may
// listen to, whisper to and barge into the calls of its two attributed
// queues (of 200), the others agents in one of 100 teams, without a
// profile.
func profilesFile(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`version: 1
profiles:
  - name: supervisor
    grants:
      - actions: [monitor.listen, monitor.whisper, monitor.barge]
        queues: assigned
  - name: teacher
    grants:
      - actions: [recording.playback]
        queues: assigned
users:
`)
	for i := range n {
		if i%10 == 0 {
			fmt.Fprintf(&b, "  - {id: u%05d, profile: supervisor, queues: [q%03d, q%03d], identities: [\"PJSIP/%d\"]}\n", i, i%200, (i+7)%200, 100000+i)
		} else {
			fmt.Fprintf(&b, "  - {id: u%05d, teams: [t%02d]}\n", i, i%100)
		}
	}
	b.WriteString("protected:\n  users: [u00001]\n")
	return b.Bytes()
}

// configFile is the daemon's config: tokenless checks from loopback, a
// rate limit no run reaches, Redis when redisAddr is set, and the audit
// writer's batch and queue sizes when set.
func configFile(listen, redisAddr, profiles string, auditBatch, auditQueue int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "http:\n  listen: %q\n  check_auth: none-on-loopback\n  check_rate: 10000000\n  check_burst: 10000000\n", listen)
	if redisAddr != "" {
		fmt.Fprintf(&b, "redis:\n  addrs: [%q]\n", redisAddr)
	} else {
		fmt.Fprintf(&b, "profiles: [%q]\n", profiles)
	}
	if auditBatch > 0 || auditQueue > 0 {
		b.WriteString("audit:\n")
		if auditBatch > 0 {
			fmt.Fprintf(&b, "  batch_size: %d\n", auditBatch)
		}
		if auditQueue > 0 {
			fmt.Fprintf(&b, "  http_queue_size: %d\n", auditQueue)
		}
	}
	return b.Bytes()
}

// checkPaths are n request lines for /v1/check: supervisors and agents
// asking to listen to, whisper to or barge into an agent on a queue, so
// allows and several denials mix.
func checkPaths(users, n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	actions := []string{"monitor.listen", "monitor.whisper", "monitor.barge"}
	out := make([][]byte, n)
	for i := range out {
		u, q := r.IntN(users), r.IntN(200)
		if i%4 != 0 {
			u = u / 10 * 10 // three in four asked by a supervisor,
			if i%2 == 0 {
				q = u % 200 // half of those on its own queue
			}
		}
		out[i] = fmt.Appendf(nil, "GET /v1/check?user=u%05d&action=%s&queue=q%03d&agent=u%05d HTTP/1.1\r\nHost: cwload\r\n\r\n",
			u, actions[r.IntN(len(actions))], q, r.IntN(users))
	}
	return out
}

// result is what a run measured.
type result struct {
	elapsed    time.Duration
	ok, failed int64
	allow      int64
	lat        []time.Duration
}

func (r *result) print(out io.Writer) {
	n := r.ok + r.failed
	slices.Sort(r.lat)
	p := func(q float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
	}
	fmt.Fprintf(out, "checks: %d in %v (%d not 200, %d allowed): %.0f checks/s\n",
		n, r.elapsed.Round(time.Millisecond), r.failed, r.allow, float64(n)/r.elapsed.Seconds())
	fmt.Fprintf(out, "latency: p50 %v, p99 %v, p999 %v, max %v\n",
		p(0.50).Round(time.Microsecond), p(0.99).Round(time.Microsecond), p(0.999).Round(time.Microsecond), p(1).Round(time.Microsecond))
}

// load sends checks over conns connections for d, or until limit checks
// when limit > 0; rate checks/s in all when rate > 0 (see sender).
func load(ctx context.Context, addr string, paths [][]byte, conns, rate int, d time.Duration, limit int64) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		sent atomic.Int64
		mu   sync.Mutex
		res  result
		wg   sync.WaitGroup
		errs = make(chan error, conns)
	)
	start := time.Now()
	var every time.Duration // one connection's time between checks
	if rate > 0 {
		every = time.Duration(float64(time.Second) * float64(conns) / float64(rate))
	}
	for w := range conns {
		wg.Go(func() {
			// The connections' schedules are spread over one period.
			first := start.Add(every * time.Duration(w) / time.Duration(conns))
			lat, ok, failed, allow, err := sender(ctx, addr, paths, w, &sent, limit, first, every)
			if err != nil {
				errs <- err
				cancel()
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.ok += ok
			res.failed += failed
			res.allow += allow
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(errs)
	return &res, <-errs
}

// sender is one keep-alive connection sending a check, reading its whole
// answer, and sending the next: a minimal HTTP/1.1 client, so that the
// load generator costs the shared cores as little as possible. With every
// > 0 it sends on a schedule, from first, one check every every: a check
// whose time came while the previous answer was awaited goes at once, and
// its latency counts from its scheduled time, so that a slow answer is
// not hidden by the checks it held back (coordinated omission).
func sender(ctx context.Context, addr string, paths [][]byte, w int, sent *atomic.Int64, limit int64, first time.Time, every time.Duration) (lat []time.Duration, ok, failed, allow int64, err error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer c.Close()
	go func() { <-ctx.Done(); _ = c.SetDeadline(time.Now()) }()
	br := bufio.NewReaderSize(c, 4096)
	lat = make([]time.Duration, 0, 1<<16)
	pace := time.NewTimer(time.Hour) // the schedule's waits, with every > 0
	defer pace.Stop()
	for i := w * 131; ctx.Err() == nil; i++ {
		if limit > 0 && sent.Add(1) > limit {
			break
		}
		t0 := time.Now()
		if every > 0 {
			if wait := first.Sub(t0); wait > 0 {
				pace.Reset(wait)
				select {
				case <-ctx.Done():
					return lat, ok, failed, allow, nil
				case <-pace.C:
				}
			}
			t0, first = first, first.Add(every)
		}
		if _, err := c.Write(paths[i%len(paths)]); err != nil {
			return lat, ok, failed, allow, ignoreEnd(ctx, err)
		}
		status, body, err := readResponse(br)
		if err != nil {
			return lat, ok, failed, allow, ignoreEnd(ctx, err)
		}
		lat = append(lat, time.Since(t0))
		if status != http.StatusOK {
			failed++
			continue
		}
		ok++
		if bytes.HasPrefix(body, []byte(`{"decision":"allow"`)) {
			allow++
		}
	}
	return lat, ok, failed, allow, nil
}

func ignoreEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// readResponse reads one HTTP/1.1 response with a Content-Length; the body
// returned is valid until the next read.
func readResponse(br *bufio.Reader) (int, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return 0, nil, errors.New("answer without Content-Length")
	}
	body, err := br.Peek(min(length, br.Size()))
	if err != nil {
		return 0, nil, err
	}
	_, err = br.Discard(length)
	return status, body, err
}
