package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callwarden/callwarden/pbx/httpauth"
)

// buildBinary compiles the command into dir, with a version stamped by
// -ldflags, and returns its path. A missing go tool fails the test: it is
// what runs this test in the first place.
func buildBinary(tb testing.TB, dir string) string {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("the end-to-end test needs the go tool on PATH: %v", err)
	}
	bin := filepath.Join(dir, "callwarden")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-ldflags", "-X main.version=v0.0.0-e2e", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is the test's environment without CALLWARDEN_* variables, so
// the developer's own settings cannot leak into the daemon under test.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CALLWARDEN_") {
			out = append(out, kv)
		}
	}
	return out
}

func exitCode(tb testing.TB, err error) int {
	tb.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		tb.Fatalf("run: %v", err)
	}
	return ee.ExitCode()
}

// TestBinary builds callwarden and runs it as an operator would: check's
// exit statuses, the stamped version, and serve surviving a broken file on
// SIGHUP, then stopping cleanly on SIGTERM.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	command := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = cleanEnv()
		cmd.WaitDelay = 2 * time.Second
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("version is stamped by ldflags", func(t *testing.T) {
		out, err := command(ctx, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "callwarden v0.0.0-e2e ") {
			t.Errorf("version: %v %q", err, out)
		}
	})
	t.Run("check exits with the decision", func(t *testing.T) {
		for _, tc := range []struct {
			queue string
			code  int
		}{{"sales", 0}, {"billing", 1}, {"", 1}} {
			err := command(ctx, "check", "-f", "testdata/profiles.yaml", "--user", "alice",
				"--action", "monitor.listen", "--queue", tc.queue).Run()
			if got := exitCode(t, err); got != tc.code {
				t.Errorf("queue %q: exit %d, want %d", tc.queue, got, tc.code)
			}
		}
		err := command(ctx, "check", "-f", "testdata/broken.yaml", "--user", "alice", "--action", "monitor.listen").Run()
		if got := exitCode(t, err); got != 2 {
			t.Errorf("broken file: exit %d, want 2", got)
		}
	})

	t.Run("serve keeps its snapshot on a broken SIGHUP and stops on SIGTERM", func(t *testing.T) {
		file := filepath.Join(dir, "profiles.yaml")
		copyFile(t, "profiles.yaml", file)
		tokens := filepath.Join(dir, "tokens.yaml")
		if err := os.WriteFile(tokens, []byte("tokens:\n  - {name: pbx, role: check, sha256: "+httpauth.HashToken(checkToken)+"}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		stderr := &syncBuffer{}
		cmd := command(ctx, "serve", "-f", file, "--listen", "127.0.0.1:0")
		cmd.Env = append(cmd.Env, "CALLWARDEN_ADMIN_TOKENS_FILE="+tokens)
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start serve: %v", err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		t.Cleanup(func() {
			// Only reached with the process still running when the test
			// failed half-way.
			select {
			case <-waited:
			default:
				_ = cmd.Process.Kill()
				<-waited
			}
		})

		base := "http://" + listenAddr(t, stderr.String)
		c := newClient()
		if got := decision(t, c, base, aliceSales); got != "allow/granted" {
			t.Fatalf("alice on sales: %s", got)
		}

		copyFile(t, "broken.yaml", file)
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "logs", stderr.String, "profiles reload failed, keeping generation 1", 5*time.Second)
		if got := decision(t, c, base, aliceSales); got != "allow/granted" {
			t.Errorf("alice on sales after a broken SIGHUP: %s", got)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-waited:
			waited <- err // for the cleanup
			if code := exitCode(t, err); code != 0 {
				t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("serve did not stop within 5s of SIGTERM; stderr:\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
			t.Errorf("no clean stop in the log:\n%s", stderr.String())
		}
	})
}
