package integration

// The admin suite: the real callwarden binary, two `callwarden serve`
// daemons on the lab's Redis, changed through the admin API and through
// the CLI (`profiles apply`, `audit verify`), each change enforced by both.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/integration/lab"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

const (
	adminProfiles   = "../cmd/callwarden/testdata/admin.yaml"
	changedProfiles = "../cmd/callwarden/testdata/admin-changed.yaml"
	brokenProfiles  = "../cmd/callwarden/testdata/broken.yaml"
)

// buildCallwarden builds the binary into a temporary directory.
func buildCallwarden(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "callwarden")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/callwarden").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// adminLab is the binary, a daemon config on the test's Redis prefix and
// helpers to run commands and daemons.
type adminLab struct {
	bin, config string
}

func newAdminLab(tb testing.TB, l *lab.TestLab) *adminLab {
	tb.Helper()
	cfg := filepath.Join(tb.TempDir(), "callwarden.yaml")
	body := fmt.Sprintf(`redis:
  addrs: [%q]
  prefix: %q
  staleness: 10s
log:
  level: warn
admin:
  tokens:
    - {user: root, sha256: %s}
    - {user: alice, sha256: %s}
    - {name: itest, role: check, sha256: %s}
`, l.RedisAddr, l.KeyPrefix, httpauth.HashToken("root-token"), httpauth.HashToken("alice-token"), httpauth.HashToken(checkToken))
	mustOK(tb, os.WriteFile(cfg, []byte(body), 0o600))
	return &adminLab{bin: buildCallwarden(tb), config: cfg}
}

// cli runs one command with the lab's config and returns its exit
// status and output.
func (a *adminLab) cli(tb testing.TB, args ...string) (int, string, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args[:2:2], append([]string{"--config", a.config}, args[2:]...)...)
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = []string{"USER=itest"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			tb.Fatalf("%v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errOut.String()
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// lockedBuffer collects a daemon's log for the failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts a daemon and returns its base URL once /readyz answers;
// the daemon is stopped (SIGTERM, by its pid) when the test ends.
func (a *adminLab) serve(tb testing.TB) string {
	tb.Helper()
	addr := freeAddr(tb)
	cmd := exec.Command(a.bin, "serve", "--config", a.config, "--listen", addr)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	mustOK(tb, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			tb.Errorf("daemon %s did not stop on SIGTERM; log:\n%s", addr, logs)
		}
	})
	base := "http://" + addr
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("daemon %s not ready: %v; log:\n%s", addr, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type httpResult struct {
	code int
	hdr  http.Header
	body string
}

func call(tb testing.TB, method, url, token, ifMatch, body string) httpResult {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

// checkToken is the lab daemons' check-role token (named "itest").
const checkToken = "itest-check-token"

// verdict asks a daemon one check and returns "decision/reason".
func verdict(tb testing.TB, base, query string) string {
	tb.Helper()
	r := call(tb, "GET", base+"/v1/check?"+query, checkToken, "", "")
	var cr enforce.Answer
	if err := json.Unmarshal([]byte(r.body), &cr); err != nil {
		tb.Fatalf("check %s: %d %s", query, r.code, r.body)
	}
	return cr.Decision + "/" + cr.Reason
}

func eventuallyVerdict(tb testing.TB, base, query, want string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := verdict(tb, base, query)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s on %s: %s, want %s", query, base, got, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestAdminTwoDaemonsOnOneRedis(t *testing.T) {
	l := suite.Lab(t)
	a := newAdminLab(t, l)
	if code, out, errOut := a.cli(t, "profiles", "apply", "-f", adminProfiles); code != 0 || !strings.Contains(out, "applied: generation 1") {
		t.Fatalf("first apply: exit %d\n%s%s", code, out, errOut)
	}
	daemons := []string{a.serve(t), a.serve(t)}
	const bobPlays = "user=bob&action=recording.playback&queue=sales"
	for _, d := range daemons {
		if got := verdict(t, d, bobPlays); got != "deny/unknown_user" {
			t.Fatalf("%s before any change: %s", d, got)
		}
	}

	t.Run("no token and a bad token are 401", func(t *testing.T) {
		for _, tok := range []string{"", "forged"} {
			if r := call(t, "GET", daemons[0]+"/v1/users", tok, "", ""); r.code != 401 {
				t.Errorf("token %q: %d %s", tok, r.code, r.body)
			}
		}
	})
	t.Run("checks need a check token and the trail names who asked", func(t *testing.T) {
		for _, tok := range []string{"", "forged", "root-token"} {
			if r := call(t, "GET", daemons[0]+"/v1/check?user=alice&action=monitor.listen&queue=sales", tok, "", ""); r.code != 401 && r.code != 403 {
				t.Errorf("check with token %q: %d %s", tok, r.code, r.body)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			// The daemon audits decisions asynchronously: wait for bob's.
			r := call(t, "GET", daemons[0]+"/v1/audit?user=bob&action=recording.playback", "root-token", "", "")
			if r.code == 200 && strings.Contains(r.body, `"asked_by":"token:itest"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no record of bob's check asked by token:itest: %d %s", r.code, r.body)
			}
			time.Sleep(25 * time.Millisecond)
		}
		r := call(t, "GET", daemons[0]+"/v1/audit?user=alice&action=monitor.listen", "root-token", "", "")
		if r.code != 200 || strings.Contains(r.body, `"source":"http"`) {
			t.Errorf("refused checks were audited as decisions: %d %s", r.code, r.body)
		}
	})
	etag := call(t, "GET", daemons[0]+"/v1/users", "alice-token", "", "").hdr.Get("ETag")
	t.Run("a delegation through one daemon's API is enforced by both", func(t *testing.T) {
		r := call(t, "PUT", daemons[0]+"/v1/users/bob", "alice-token", etag, `{"id": "bob", "profile": "teacher", "queues": ["sales"]}`)
		if r.code != 200 {
			t.Fatalf("PUT: %d %s", r.code, r.body)
		}
		for _, d := range daemons {
			eventuallyVerdict(t, d, bobPlays, "allow/granted")
		}
	})
	t.Run("a supervisor assigning teacher outside its queues is 403 with the reason", func(t *testing.T) {
		cur := call(t, "GET", daemons[1]+"/v1/users", "alice-token", "", "").hdr.Get("ETag")
		r := call(t, "PUT", daemons[1]+"/v1/users/bob", "alice-token", cur, `{"id": "bob", "profile": "teacher", "queues": ["billing"]}`)
		if r.code != 403 || !strings.Contains(r.body, `"reason":"out_of_scope"`) {
			t.Errorf("%d %s", r.code, r.body)
		}
	})
	t.Run("a write with a stale ETag is 409", func(t *testing.T) {
		r := call(t, "PUT", daemons[1]+"/v1/users/bob", "root-token", etag, `{"id": "bob", "profile": "teacher", "queues": ["support"]}`)
		if r.code != 409 {
			t.Errorf("%d %s", r.code, r.body)
		}
	})
	t.Run("a dry run prints the diff and writes nothing", func(t *testing.T) {
		before := call(t, "GET", daemons[0]+"/v1/profiles", "root-token", "", "").hdr.Get("ETag")
		code, out, errOut := a.cli(t, "profiles", "apply", "--dry-run", "-f", changedProfiles)
		if code != 0 || !strings.Contains(out, "~ user alice") || !strings.Contains(out, "dry run: nothing written") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		if after := call(t, "GET", daemons[0]+"/v1/profiles", "root-token", "", "").hdr.Get("ETag"); after != before {
			t.Errorf("ETag %s -> %s after a dry run", before, after)
		}
	})
	t.Run("a broken file names file, line and field and changes nothing", func(t *testing.T) {
		code, out, errOut := a.cli(t, "profiles", "apply", "-f", brokenProfiles)
		if code != 2 || !strings.Contains(errOut, "broken.yaml:5: profiles[0].grants[0].actions[1]") || out != "" {
			t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		for _, d := range daemons {
			if got := verdict(t, d, bobPlays); got != "allow/granted" {
				t.Errorf("%s after a broken apply: %s", d, got)
			}
		}
	})
	t.Run("a CLI apply is enforced by both daemons", func(t *testing.T) {
		code, out, errOut := a.cli(t, "profiles", "apply", "-f", adminProfiles)
		if code != 0 || !strings.Contains(out, "- user bob") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		for _, d := range daemons {
			eventuallyVerdict(t, d, bobPlays, "deny/unknown_user")
		}
	})
	t.Run("the audit trail holds the changes and verifies", func(t *testing.T) {
		r := call(t, "GET", daemons[1]+"/v1/audit?user=alice&action=profile.assign", "root-token", "", "")
		if r.code != 200 || !strings.Contains(r.body, `"decision":"deny"`) || !strings.Contains(r.body, `"decision":"allow"`) {
			t.Errorf("GET /v1/audit: %d %s", r.code, r.body)
		}
		code, out, errOut := a.cli(t, "audit", "tail", "--user", "cli:itest")
		if code != 0 || strings.Count(out, "\n") != 2 {
			t.Errorf("audit tail: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = a.cli(t, "audit", "verify")
		if code != 0 || !strings.HasPrefix(out, "ok: ") {
			t.Errorf("audit verify: exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("a token stored in Redis with the CLI is accepted by both daemons until revoked", func(t *testing.T) {
		code, out, errOut := a.cli(t, "token", "add", "root", "--sha256", httpauth.HashToken("ops-token"))
		if code != 0 || !strings.Contains(out, "added a token for root") {
			t.Fatalf("token add: exit %d\n%s%s", code, out, errOut)
		}
		status := func(d string) func() bool {
			return func() bool { return call(t, "GET", d+"/v1/profiles", "ops-token", "", "").code == 200 }
		}
		for _, d := range daemons {
			waitUntil(t, 5*time.Second, d+" accepts the stored token", status(d))
		}
		if code, out, errOut := a.cli(t, "token", "revoke", "root"); code != 0 || !strings.Contains(out, "revoked 1 tokens of root") {
			t.Fatalf("token revoke: exit %d\n%s%s", code, out, errOut)
		}
		for _, d := range daemons {
			waitUntil(t, 5*time.Second, d+" refuses the revoked token", func() bool { return !status(d)() })
			if r := call(t, "GET", d+"/v1/profiles", "root-token", "", ""); r.code != 200 {
				t.Errorf("%s: the config's root token: %d", d, r.code)
			}
		}
	})
}
