package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/integration/lab"
)

// stopTimeout bounds callwarden's graceful shutdown after SIGTERM; then it is
// killed.
const stopTimeout = 15 * time.Second

// daemon is the callwarden serve child process.
type daemon struct {
	cmd     *exec.Cmd
	addr    string // 127.0.0.1:port of its HTTP API
	logPath string
	exited  chan struct{}
	waitErr error
}

// runCLI runs a callwarden subcommand to completion and returns its
// combined output.
func runCLI(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = lab.CallwardenEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, oneLine(out.String()))
	}
	return out.String(), nil
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeDaemonConfig writes the serve config pointing at the lab's ARI and
// Redis. The ARI password is not in the file: it is passed in the
// environment, as a real deployment would.
func writeDaemonConfig(dir string, l *lab.Lab, port int) (string, error) {
	d := config.Default()
	body := "# callwarden serve config written by cwdemo for this run.\n" +
		l.ServeConfig(fmt.Sprintf("127.0.0.1:%d", port), d.Asterisk.App, d.Redis.Prefix)
	path := filepath.Join(dir, "callwarden.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("write daemon config: %w", err)
	}
	return path, nil
}

// startDaemon starts `callwarden serve --config cfgPath`, logging to
// logPath. The child gets its own process group, so a Ctrl-C in the terminal
// reaches the demo only, which then stops it in order; and it is killed if
// the demo dies.
func startDaemon(bin, cfgPath, logPath, addr string, l *lab.Lab) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("callwarden log: %w", err)
	}
	cmd := lab.ServeCommand(bin, cfgPath, logf, config.EnvAsteriskPassword+"="+l.ARIPassword)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	d := &daemon{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	return d, nil
}

// waitReady waits, up to timeout, until callwarden answers /readyz with 200.
// It fails at once if the process exits.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-d.exited:
			return fmt.Errorf("callwarden exited: %v (see %s)", d.waitErr, d.logPath)
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("callwarden not ready after %s: %s (see %s)", timeout, oneLine(last), d.logPath)
		}
	}
}

// stop sends SIGTERM and waits for a graceful exit, killing the process
// after stopTimeout. It returns how it ended.
func (d *daemon) stop() (string, error) {
	select {
	case <-d.exited:
		return "", fmt.Errorf("callwarden had already exited: %v (see %s)", d.waitErr, d.logPath)
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return "", fmt.Errorf("signal callwarden: %w", err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			return "", fmt.Errorf("callwarden stopped with %v (see %s)", d.waitErr, d.logPath)
		}
		return "stopped cleanly on SIGTERM", nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return "", fmt.Errorf("callwarden did not stop within %s of SIGTERM: killed (see %s)", stopTimeout, d.logPath)
	}
}

// running reports whether the process is still up.
func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}
