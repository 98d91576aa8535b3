package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write
// while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls s until it contains want, or fails the test after timeout.
func waitFor(tb testing.TB, what string, s func() string, want string, timeout time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s()
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: no %q after %s in:\n%s", what, want, timeout, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// copyFile writes testdata/src over dst, as an administrator editing the
// served file would.
func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", src))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// client never keeps connections, so no transport goroutine outlives a
// test (goleak) and graceful shutdown has nothing to wait for.
func newClient() *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func get(tb testing.TB, c *http.Client, url string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return send(tb, c, req, "GET "+url)
}

// send does req and returns its status and body; what names the request
// in a failure.
func send(tb testing.TB, c *http.Client, req *http.Request, what string) (int, string) {
	tb.Helper()
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read %s: %v", what, err)
	}
	return resp.StatusCode, string(body)
}

// checkToken is the check-role token of testConfig and adminConfig,
// named "pbx".
const checkToken = "pbx-token"

// checkTokenConfig is checkToken as configured.
func checkTokenConfig() config.AdminToken {
	return config.AdminToken{Name: "pbx", Role: config.TokenRoleCheck, SHA256: httpauth.HashToken(checkToken)}
}

// check sends one /v1/check query with the check token.
func check(tb testing.TB, c *http.Client, base, query string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/check?"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+checkToken)
	return send(tb, c, req, "check "+query)
}

// decision asks base for one check and returns "decision/reason".
func decision(tb testing.TB, c *http.Client, base, query string) string {
	tb.Helper()
	status, body := check(tb, c, base, query)
	if status != http.StatusOK {
		tb.Fatalf("check %s: status %d body %s", query, status, body)
	}
	var r enforce.Answer
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		tb.Fatalf("decode %s: %v", body, err)
	}
	return r.Decision + "/" + r.Reason
}

const (
	aliceSales   = "user=alice&action=monitor.listen&queue=sales"
	aliceBilling = "user=alice&action=monitor.listen&queue=billing"
)

func testConfig(profiles string) config.Config {
	cfg := config.Default()
	cfg.Profiles = []string{profiles}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 2 * time.Second
	cfg.Admin.Tokens = []config.AdminToken{checkTokenConfig()}
	return cfg
}

func TestApp(t *testing.T) {
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	copyFile(t, "profiles.yaml", file)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := NewApp(ctx, testConfig(file), logs)
	if err != nil {
		t.Fatalf("NewApp: %v", err)
	}
	defer app.Close()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	c := newClient()
	base := "http://" + app.Addr().String()

	t.Run("check answers from the loaded file", func(t *testing.T) {
		if got := decision(t, c, base, aliceSales); got != "allow/granted" {
			t.Errorf("alice on sales: %s", got)
		}
		if got := decision(t, c, base, aliceBilling); got != "deny/out_of_scope" {
			t.Errorf("alice on billing: %s", got)
		}
	})
	t.Run("bad parameters answer 400", func(t *testing.T) {
		status, body := check(t, c, base, "user=alice&action=monitor.spy")
		if status != http.StatusBadRequest || !strings.Contains(body, `"error":"action: unknown action`) {
			t.Errorf("got %d %s", status, body)
		}
	})
	t.Run("ready and healthy", func(t *testing.T) {
		for _, p := range []string{"/readyz", "/healthz"} {
			if status, body := get(t, c, base+p); status != http.StatusOK {
				t.Errorf("%s: %d %s", p, status, body)
			}
		}
	})
	t.Run("metrics count decisions", func(t *testing.T) {
		_, m := get(t, c, base+"/metrics")
		for _, want := range []string{
			`callwarden_decisions_total{action="monitor.listen",decision="allow",reason="granted"} 1`,
			`callwarden_profile_reloads_total{result="error"} 0`,
			`callwarden_snapshot_generation 1`,
			`go_goroutines`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	t.Run("decisions are audited in the log", func(t *testing.T) {
		waitFor(t, "logs", logs.String, `"reason":"out_of_scope"`, time.Second)
	})

	t.Run("a broken file keeps the previous snapshot", func(t *testing.T) {
		copyFile(t, "broken.yaml", file)
		err := app.Reload()
		if err == nil {
			t.Fatal("Reload of a broken file succeeded")
		}
		var fe config.Errors
		if !errors.As(err, &fe) {
			t.Errorf("reload error %v does not carry the file errors", err)
		}
		if got := decision(t, c, base, aliceSales); got != "allow/granted" {
			t.Errorf("alice on sales after a failed reload: %s", got)
		}
		if g := app.Snapshot().Generation(); g != 1 {
			t.Errorf("generation %d, want 1", g)
		}
		waitFor(t, "logs", logs.String, "profiles reload failed, keeping generation 1", time.Second)
		waitFor(t, "logs", logs.String, "profiles.yaml:5: profiles[0].grants[0].actions[1]", time.Second)
		_, m := get(t, c, base+"/metrics")
		if !strings.Contains(m, `callwarden_profile_reloads_total{result="error"} 1`) {
			t.Errorf("failed reload not counted")
		}
	})
	t.Run("a fixed file is swapped in", func(t *testing.T) {
		copyFile(t, "reloaded.yaml", file)
		if err := app.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if got := decision(t, c, base, aliceSales); got != "deny/out_of_scope" {
			t.Errorf("alice on sales after reload: %s", got)
		}
		if got := decision(t, c, base, aliceBilling); got != "allow/granted" {
			t.Errorf("alice on billing after reload: %s", got)
		}
		if g := app.Snapshot().Generation(); g != 2 {
			t.Errorf("generation %d, want 2", g)
		}
		_, m := get(t, c, base+"/metrics")
		for _, want := range []string{`callwarden_profile_reloads_total{result="ok"} 1`, `callwarden_snapshot_generation 2`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := c.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestAppStartup(t *testing.T) {
	t.Run("a broken file at startup is a profiles error", func(t *testing.T) {
		_, err := NewApp(context.Background(), testConfig("testdata/broken.yaml"), io.Discard)
		var pe *profilesError
		if !errors.As(err, &pe) {
			t.Errorf("err = %v, want a *profilesError", err)
		}
	})
	t.Run("a port in use is not a profiles error", func(t *testing.T) {
		first, err := NewApp(context.Background(), testConfig(profilesFile), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		cfg := testConfig(profilesFile)
		cfg.HTTP.Listen = first.Addr().String()
		_, err = NewApp(context.Background(), cfg, io.Discard)
		var pe *profilesError
		if err == nil || errors.As(err, &pe) {
			t.Errorf("err = %v, want a listen error", err)
		}
	})
	t.Run("Close without Run releases the port", func(t *testing.T) {
		app, err := NewApp(context.Background(), testConfig(profilesFile), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		addr := app.Addr().String()
		if err := app.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		cfg := testConfig(profilesFile)
		cfg.HTTP.Listen = addr
		again, err := NewApp(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatalf("port not released: %v", err)
		}
		again.Close()
	})
}

// TestServeCommand drives `callwarden serve` through run, as main does:
// configuration from flags over the environment, SIGHUP on the reload
// channel, and a clean exit when the context ends.
func TestServeCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	copyFile(t, "profiles.yaml", file)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - {name: pbx, role: check, sha256: "+httpauth.HashToken(checkToken)+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{
		"CALLWARDEN_PROFILES":          file,
		"CALLWARDEN_ADMIN_TOKENS_FILE": tokens,
		// The flag wins: were this used, the bind would fail.
		"CALLWARDEN_HTTP_LISTEN":           "192.0.2.1:1",
		"CALLWARDEN_HTTP_SHUTDOWN_TIMEOUT": "2s",
		"CALLWARDEN_LOG_LEVEL":             "debug",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	reload := make(chan os.Signal, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--log-level", "info"},
			strings.NewReader(""), io.Discard, stderr, func(k string) string { return environ[k] }, reload)
	}()
	base := "http://" + listenAddr(t, stderr.String)
	c := newClient()

	if got := decision(t, c, base, aliceSales); got != "allow/granted" {
		t.Errorf("alice on sales: %s", got)
	}
	copyFile(t, "broken.yaml", file)
	reload <- syscall.SIGHUP
	waitFor(t, "logs", stderr.String, "profiles reload failed, keeping generation 1", 3*time.Second)
	if got := decision(t, c, base, aliceSales); got != "allow/granted" {
		t.Errorf("alice on sales after a broken reload: %s", got)
	}
	copyFile(t, "reloaded.yaml", file)
	reload <- syscall.SIGHUP
	waitFor(t, "logs", stderr.String, `"msg":"profiles reloaded","generation":2`, 3*time.Second)
	if got := decision(t, c, base, aliceSales); got != "deny/out_of_scope" {
		t.Errorf("alice on sales after reload: %s", got)
	}
	if strings.Contains(stderr.String(), `"level":"debug"`) {
		t.Error("--log-level info did not override CALLWARDEN_LOG_LEVEL=debug")
	}

	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d, want 0; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

// listenAddr waits for the "serving" log line and returns its address.
func listenAddr(tb testing.TB, logs func() string) string {
	tb.Helper()
	waitFor(tb, "startup", logs, `"msg":"serving"`, 5*time.Second)
	for _, line := range strings.Split(logs(), "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" && rec.Addr != "" {
			return rec.Addr
		}
	}
	tb.Fatalf("no address in the serving line:\n%s", logs())
	return ""
}

// TestAppCheckNeedsACheckToken: the daemon answers /v1/check only to a
// check token by default; a tokenless probe learns nothing and writes no
// decision record.
func TestAppCheckNeedsACheckToken(t *testing.T) {
	logs := &syncBuffer{}
	d := MustServe(t, testConfig(profilesFile), logs)
	c := newClient()
	base := d.base

	status, body := get(t, c, base+"/v1/check?"+aliceSales)
	if status != http.StatusUnauthorized {
		t.Fatalf("tokenless check: %d %s, want 401", status, body)
	}
	if strings.Contains(logs.String(), `"msg":"decision"`) {
		t.Errorf("a tokenless check was decided and audited:\n%s", logs)
	}
}

// TestServeRefusesTokenlessChecksOffLoopback: none-on-loopback with a
// listener reachable from other hosts is a config error, and nothing is
// served.
func TestServeRefusesTokenlessChecksOffLoopback(t *testing.T) {
	stderr := &syncBuffer{}
	environ := map[string]string{"CALLWARDEN_HTTP_CHECK_AUTH": "none-on-loopback"}
	code := run(context.Background(), []string{"serve", "-f", profilesFile, "--listen", "0.0.0.0:0"},
		strings.NewReader(""), io.Discard, stderr, func(k string) string { return environ[k] }, make(chan os.Signal))
	if code != 2 || !strings.Contains(stderr.String(), "http.check_auth: none-on-loopback needs every HTTP listen address to be a loopback address") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr.String(), `"msg":"serving"`) {
		t.Error("the daemon served anyway")
	}
}

// TestServeAnswersTokenlessChecksOnLoopback: with none-on-loopback on a
// loopback listener, a PBX on the same host checks without a token, and
// the decision is audited as asked by "loopback".
func TestServeAnswersTokenlessChecksOnLoopback(t *testing.T) {
	logs := &syncBuffer{}
	cfg := testConfig(profilesFile)
	cfg.HTTP.CheckAuth = config.CheckAuthLoopback
	d := MustServe(t, cfg, logs)
	status, body := get(t, newClient(), d.base+"/v1/check?"+aliceSales)
	if status != http.StatusOK || !strings.Contains(body, `"decision":"allow"`) {
		t.Fatalf("tokenless loopback check: %d %s", status, body)
	}
	waitFor(t, "logs", logs.String, `"asked_by":"loopback"`, time.Second)
}

// TestServeNotifiesTheServiceManager: under a Type=notify unit (the
// manager's socket in NOTIFY_SOCKET), serve says READY=1 once /readyz
// answers ready and STOPPING=1 when it is told to stop; a NOTIFY_SOCKET
// it cannot use is bad input.
func TestServeNotifiesTheServiceManager(t *testing.T) {
	t.Run("ready once /readyz is and stopping on SIGTERM", func(t *testing.T) {
		// Not under t.TempDir, whose name can exceed a socket path's 107 bytes.
		dir, err := os.MkdirTemp("", "cw")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		sock := filepath.Join(dir, "notify")
		mgr, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer mgr.Close()
		file := filepath.Join(t.TempDir(), "profiles.yaml")
		copyFile(t, "profiles.yaml", file)
		environ := map[string]string{"CALLWARDEN_PROFILES": file, "NOTIFY_SOCKET": sock}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stderr := &syncBuffer{}
		code := make(chan int, 1)
		go func() {
			code <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0"},
				strings.NewReader(""), io.Discard, stderr, func(k string) string { return environ[k] }, nil)
		}()
		next := func() string {
			t.Helper()
			buf := make([]byte, 1024)
			_ = mgr.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := mgr.Read(buf)
			if err != nil {
				t.Fatalf("no notification: %v; stderr:\n%s", err, stderr.String())
			}
			return string(buf[:n])
		}
		if got := next(); got != "READY=1\nSTATUS=ready" {
			t.Fatalf("first notification %q, want READY=1", got)
		}
		base := "http://" + listenAddr(t, stderr.String)
		if status, body := get(t, newClient(), base+"/readyz"); status != http.StatusOK {
			t.Errorf("/readyz after READY=1: %d %s", status, body)
		}
		cancel() // what main does on SIGTERM
		if got := next(); got != "STOPPING=1\nSTATUS=stopping" {
			t.Fatalf("notification %q, want STOPPING=1", got)
		}
		if c := <-code; c != exitOK {
			t.Errorf("exit %d; stderr:\n%s", c, stderr.String())
		}
	})
	t.Run("a relative NOTIFY_SOCKET is bad input", func(t *testing.T) {
		stderr := &syncBuffer{}
		environ := map[string]string{"NOTIFY_SOCKET": "notify"}
		c := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "-f", filepath.Join("testdata", "profiles.yaml")},
			strings.NewReader(""), io.Discard, stderr, func(k string) string { return environ[k] }, nil)
		if c != exitBadInput || !strings.Contains(stderr.String(), "NOTIFY_SOCKET") {
			t.Errorf("exit %d, stderr %q; want 2 naming NOTIFY_SOCKET", c, stderr.String())
		}
	})
}
