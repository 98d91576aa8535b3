package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is the `callwarden serve` under load.
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	done    chan error
	stopped bool
	err     error
}

func startDaemon(ctx context.Context, o options, conf, logPath string) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", conf}
	if o.logLevel != "" {
		args = append(args, "--log-level", o.logLevel)
	}
	// Not CommandContext: stop ends it with SIGTERM, so it flushes its
	// audit queue, whatever happened to ctx.
	cmd := exec.Command(o.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.bin, err)
	}
	d := &daemon{cmd: cmd, logPath: logPath, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait(); logf.Close() }()
	return d, nil
}

// stop ends the daemon gracefully (SIGTERM), or kills it after 30 s; it
// returns how it ended, and is safe to call twice.
func (d *daemon) stop() error {
	if d.stopped {
		return d.err
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case d.err = <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		d.err = errors.Join(errors.New("did not stop within 30s, killed"), <-d.done)
	}
	return d.err
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	return lastLines(b, 5)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// clockTick is the unit of /proc/<pid>/stat times: USER_HZ, 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is the user plus system CPU time pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startRedis runs a container of image publishing Redis on a loopback
// port, and returns its address and how to remove it.
func startRedis(ctx context.Context, image string) (string, func(), error) {
	b, err := exec.CommandContext(ctx, "docker", "run", "-d", "--rm", "-p", "127.0.0.1:0:6379", image).Output()
	if err != nil {
		return "", nil, fmt.Errorf("docker run %s: %w", image, err)
	}
	id := strings.TrimSpace(string(b))
	stop := func() { _ = exec.Command("docker", "stop", "-t", "1", id).Run() }
	b, err = exec.CommandContext(ctx, "docker", "port", id, "6379/tcp").Output()
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("docker port: %w", err)
	}
	addr := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			reply, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(reply, "+PONG") {
				return addr, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis in container %.12s not answering on %s", id, addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
