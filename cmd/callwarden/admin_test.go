package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// storeArgs point the store commands at a Redis address; the tests'
// opener ignores it and hands out the in-memory store.
var storeArgs = []string{"--redis-addr", "127.0.0.1:1"}

func openFake(st store) openStoreFunc {
	return func(context.Context, config.Redis, *zap.Logger) (store, error) { return st, nil }
}

// runStore runs a command line whose store is st.
func runStore(tb testing.TB, ctx context.Context, st store, stdin string, args ...string) result {
	tb.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return map[string]string{"USER": "tester"}[k] },
		open:   openFake(st), now: time.Now, pollInterval: 10 * time.Millisecond}
	code := e.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func mustLoad(tb testing.TB, files ...string) enforce.Policy {
	tb.Helper()
	p, err := config.LoadProfiles(files...)
	if err != nil {
		tb.Fatalf("load %v: %v", files, err)
	}
	return p
}

// seededStore is a memory store holding testdata/admin.yaml at generation 1.
func seededStore(tb testing.TB) *memoryStore {
	tb.Helper()
	st := newMemoryStore()
	if _, _, err := st.ApplyPolicy(context.Background(), mustLoad(tb, "testdata/admin.yaml"), enforce.Unconditionally()); err != nil {
		tb.Fatal(err)
	}
	return st
}

func generationOf(tb testing.TB, st store) uint64 {
	tb.Helper()
	_, gen, err := st.Policy(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return gen
}

func TestProfilesApply(t *testing.T) {
	ctx := context.Background()
	apply := append([]string{"profiles", "apply"}, storeArgs...)
	t.Run("dry run prints the diff and writes nothing", func(t *testing.T) {
		st := seededStore(t)
		r := runStore(t, ctx, st, "", append(apply, "-f", "testdata/admin-changed.yaml", "--dry-run")...)
		if r.code != 0 {
			t.Fatalf("exit %d stderr %s", r.code, r.stderr)
		}
		want := "+ user bob\n- user dave\n~ user alice\ndry run: nothing written (store at generation 1)\n"
		if r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
		if g := generationOf(t, st); g != 1 {
			t.Errorf("generation %d after a dry run", g)
		}
	})
	t.Run("broken file names file, line and field, exits 2 and writes nothing", func(t *testing.T) {
		st := seededStore(t)
		r := runStore(t, ctx, st, "", append(apply, "-f", "testdata/broken.yaml")...)
		if r.code != 2 {
			t.Errorf("exit %d", r.code)
		}
		if !strings.Contains(r.stderr, "testdata/broken.yaml:5: profiles[0].grants[0].actions[1]: ") ||
			!strings.Contains(r.stderr, "nothing applied") {
			t.Errorf("stderr %q", r.stderr)
		}
		if r.stdout != "" || generationOf(t, st) != 1 {
			t.Errorf("stdout %q, generation %d", r.stdout, generationOf(t, st))
		}
	})
	t.Run("apply writes, prints the new generation and is audited", func(t *testing.T) {
		st := seededStore(t)
		r := runStore(t, ctx, st, "", append(apply, "-f", "testdata/admin-changed.yaml")...)
		if r.code != 0 || !strings.HasSuffix(r.stdout, "applied: generation 2\n") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		got, _, _ := st.Policy(ctx)
		if d := enforce.DiffPolicies(got, mustLoad(t, "testdata/admin-changed.yaml")); !d.Empty() {
			t.Errorf("store differs from the file: %+v", d)
		}
		recs, _ := st.ReadAudit(ctx, enforce.AuditFilter{})
		if len(recs) != 1 || recs[0].Source != "admin" || recs[0].User != "cli:tester" || !strings.Contains(recs[0].Detail, "+ user bob") {
			t.Errorf("audit %+v", recs)
		}
		r = runStore(t, ctx, st, "", append(apply, "-f", "testdata/admin-changed.yaml")...)
		if r.code != 0 || r.stdout != "no changes (generation 2)\n" {
			t.Errorf("second apply: exit %d stdout %q", r.code, r.stdout)
		}
	})
	t.Run("without Redis configured it is bad input", func(t *testing.T) {
		r := runStore(t, ctx, seededStore(t), "", "profiles", "apply", "-f", "testdata/admin.yaml")
		if r.code != 2 || !strings.Contains(r.stderr, "no Redis configured") {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

func TestProfilesExport(t *testing.T) {
	st := seededStore(t)
	r := runStore(t, context.Background(), st, "", append([]string{"profiles", "export"}, storeArgs...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "# exported from generation 1\n") {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	back, err := config.ParseProfiles("export", []byte(r.stdout))
	if err != nil {
		t.Fatalf("export does not parse back: %v", err)
	}
	if d := enforce.DiffPolicies(mustLoad(t, "testdata/admin.yaml"), back); !d.Empty() {
		t.Errorf("export differs from the stored policy: %+v", d)
	}
}

func TestUsersAssignRevoke(t *testing.T) {
	ctx := context.Background()
	st := seededStore(t)
	user := func(id string) (enforce.User, bool) {
		p, _, _ := st.Policy(ctx)
		for _, u := range p.Users {
			if u.ID == id {
				return u, true
			}
		}
		return enforce.User{}, false
	}
	t.Run("assign creates a user with its profile and queues", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"users", "assign", "bob", "teacher", "--queue", "sales", "--valid-until", "2026-12-01T00:00:00Z"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "+ user bob") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		if u, ok := user("bob"); !ok || u.Profile != "teacher" || len(u.Queues) != 1 || u.ValidUntil.IsZero() {
			t.Errorf("bob = %+v", u)
		}
	})
	t.Run("assign to an unknown profile is bad input", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"users", "assign", "bob", "coach"}, storeArgs...)...)
		if r.code != 2 || !strings.Contains(r.stderr, `no profile "coach"`) {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
	t.Run("revoke keeps a user that still has identities", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"users", "revoke", "alice"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "~ user alice") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		if u, ok := user("alice"); !ok || u.Profile != "" || u.Queues != nil || len(u.Identities) != 2 {
			t.Errorf("alice = %+v", u)
		}
	})
	t.Run("revoke removes a user with nothing left", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"users", "revoke", "bob"}, storeArgs...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "- user bob") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		if _, ok := user("bob"); ok {
			t.Error("bob still there")
		}
	})
	t.Run("revoke of an unknown user is bad input", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"users", "revoke", "nobody"}, storeArgs...)...)
		if r.code != 2 {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

func TestAuditCommands(t *testing.T) {
	ctx := context.Background()
	st := seededStore(t)
	for _, rec := range []enforce.AuditRecord{
		{Time: time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC), Source: "asterisk", User: "alice", Action: "monitor.listen", Target: "dave", Decision: "allow", Reason: "granted"},
		{Time: time.Date(2026, 11, 10, 9, 1, 0, 0, time.UTC), Source: "asterisk", User: "bob", Action: "monitor.barge", Target: "dave", Decision: "deny", Reason: "action_not_granted"},
	} {
		if err := st.Audit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	tail := append([]string{"audit", "tail"}, storeArgs...)
	t.Run("tail prints one JSON record per line", func(t *testing.T) {
		r := runStore(t, ctx, st, "", tail...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		var rec enforce.AuditRecord
		if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.User != "bob" {
			t.Errorf("line %q: %v", lines[1], err)
		}
	})
	t.Run("tail filters", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append(tail, "--decision", "deny", "--since", "2026-11-10T09:00:30Z")...)
		if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"user":"bob"`) {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
	t.Run("tail refuses a bad filter", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append(tail, "--decision", "perhaps")...)
		if r.code != 2 || !strings.Contains(r.stderr, "--decision") {
			t.Errorf("exit %d stderr %q", r.code, r.stderr)
		}
	})
	t.Run("tail --follow prints new records until cancelled", func(t *testing.T) {
		fctx, cancel := context.WithCancel(ctx)
		var (
			wg  sync.WaitGroup
			res result
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res = runStore(t, fctx, st, "", append(tail, "--follow", "--user", "carol")...)
		}()
		time.Sleep(50 * time.Millisecond)
		if err := st.Audit(ctx, enforce.AuditRecord{Time: time.Now(), Source: "http", User: "carol", Action: "monitor.listen", Decision: "deny", Reason: "unknown_user"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		cancel()
		wg.Wait()
		if res.code != 0 || strings.Count(res.stdout, `"user":"carol"`) != 1 {
			t.Errorf("exit %d stdout %q stderr %q", res.code, res.stdout, res.stderr)
		}
	})
	t.Run("verify reports an intact chain", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"audit", "verify"}, storeArgs...)...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ok: 3 records, chain intact") {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("verify reports a gap record and fails, though every link holds", func(t *testing.T) {
		gap := verifiedStore{memoryStore: st, res: enforce.VerifyResult{Checked: 5,
			Gaps: []enforce.AuditGap{{ID: "7-0", Detail: "record 5-0 is no longer in the trail"}}}}
		r := runStore(t, ctx, gap, "", append([]string{"audit", "verify"}, storeArgs...)...)
		if r.code != 1 || !strings.HasPrefix(r.stdout, "gap: record 7-0: record 5-0 is no longer in the trail\nbad: ") ||
			strings.Contains(r.stdout, "intact") {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
	t.Run("verify never calls a trail on a primary that took over intact", func(t *testing.T) {
		promoted := verifiedStore{memoryStore: st, res: enforce.VerifyResult{Checked: 3, Failover: "this Redis primary took over from another one"}}
		r := runStore(t, ctx, promoted, "", append([]string{"audit", "verify"}, storeArgs...)...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "unconfirmed: 3 records, every link holds, but this Redis primary took over") ||
			strings.Contains(r.stdout, "intact") {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
	t.Run("verify names the first bad record", func(t *testing.T) {
		bad := &tamperedStore{memoryStore: st}
		r := runStore(t, ctx, bad, "", append([]string{"audit", "verify"}, storeArgs...)...)
		if r.code != 1 || !strings.HasPrefix(r.stdout, "bad: record 42-0: altered") {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
}

// tamperedStore reports a broken audit chain.
type tamperedStore struct{ *memoryStore }

func (tamperedStore) VerifyAudit(context.Context, ...enforce.VerifyOption) (enforce.VerifyResult, error) {
	return enforce.VerifyResult{Checked: 2, FirstBad: "42-0", Reason: "altered"}, nil
}

// verifiedStore answers VerifyAudit with res.
type verifiedStore struct {
	*memoryStore
	res enforce.VerifyResult
}

func (s verifiedStore) VerifyAudit(context.Context, ...enforce.VerifyOption) (enforce.VerifyResult, error) {
	return s.res, nil
}

func TestTokenHash(t *testing.T) {
	t.Run("prints the sha256 of the token on stdin", func(t *testing.T) {
		r := runCLI(t, "s3cret\n", nil, "token", "hash")
		if r.code != 0 || r.stdout != httpauth.HashToken("s3cret")+"\n" {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
	t.Run("refuses an empty token", func(t *testing.T) {
		if r := runCLI(t, "\n", nil, "token", "hash"); r.code != 2 {
			t.Errorf("exit %d", r.code)
		}
	})
}

func TestConfigCodec(t *testing.T) {
	c := configCodec{}
	names := []string{"administrator", "supervisor-with-recording", "teacher"}
	t.Run("profile errors carry body-relative paths and lines", func(t *testing.T) {
		_, err := c.DecodeProfile([]byte("{\"name\": \"teacher\",\n \"grants\": [{\"actions\": [\"recording.playback\", \"monitor.spy\"]}]}"), names)
		var ve *adminapi.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "grants[0].actions[1]" || ve.Fields[0].Line != 2 {
			t.Fatalf("err %#v", err)
		}
	})
	t.Run("references to existing profiles resolve", func(t *testing.T) {
		p, err := c.DecodeProfile([]byte(`{"name": "lead", "grants": [{"actions": ["profile.assign"], "profiles": ["teacher"], "queues": "assigned"}]}`), names)
		if err != nil || p.Name != "lead" || p.Grants[0].Profiles[0] != "teacher" {
			t.Errorf("profile %+v, err %v", p, err)
		}
	})
	t.Run("grant limits are read, refused when nonsense and written back", func(t *testing.T) {
		p, err := c.DecodeProfile([]byte(`{"name": "lead", "grants": [{"actions": ["monitor.listen", "recording.pause"], "max_duration": "30m", "max_pause": "2m"}]}`), names)
		if err != nil || p.Grants[0].MaxDuration != 30*time.Minute || p.Grants[0].MaxPause != 2*time.Minute {
			t.Fatalf("profile %+v, err %v", p, err)
		}
		out, err := c.EncodeProfile(p)
		if err != nil || !strings.Contains(string(out), `"max_duration":"30m0s"`) || !strings.Contains(string(out), `"max_pause":"2m0s"`) {
			t.Errorf("encoded %s, err %v", out, err)
		}
		_, err = c.DecodeProfile([]byte(`{"name": "lead", "grants": [{"actions": ["monitor.listen"], "max_pause": "2m"}]}`), names)
		var ve *adminapi.ValidationError
		if !errors.As(err, &ve) || ve.Fields[0].Field != "grants[0].max_pause" {
			t.Errorf("err %#v", err)
		}
	})
	t.Run("a user naming an unknown profile is refused on profile", func(t *testing.T) {
		_, err := c.DecodeUser([]byte(`{"id": "bob", "profile": "coach"}`), names)
		var ve *adminapi.ValidationError
		if !errors.As(err, &ve) || ve.Fields[0].Field != "profile" {
			t.Errorf("err %#v", err)
		}
	})
	t.Run("a body that is not one JSON object is refused", func(t *testing.T) {
		for _, body := range []string{`{"name": "x"}], "users": [{"id": "y"}`, `[]`, `{"name":`} {
			if _, err := c.DecodeProfile([]byte(body), names); err == nil {
				t.Errorf("%s accepted", body)
			}
		}
	})
	t.Run("encoding round-trips", func(t *testing.T) {
		pol := mustLoad(t, "testdata/profiles.yaml")
		checkRoundTrip(t, pol.Profiles, func(p enforce.Profile) string { return p.Name }, c.EncodeProfile, c.DecodeProfile, enforce.ProfilesEqual)
		checkRoundTrip(t, pol.Users, func(u enforce.User) string { return u.ID }, c.EncodeUser, c.DecodeUser, enforce.UsersEqual)
	})
}

// checkRoundTrip encodes each item and decodes it back against the
// profile names of testdata/profiles.yaml; the result must equal the item.
func checkRoundTrip[T any](tb testing.TB, items []T, name func(T) string, encode func(T) (json.RawMessage, error),
	decode func([]byte, []string) (T, error), equal func(a, b T) bool) {
	tb.Helper()
	for _, item := range items {
		raw, err := encode(item)
		if err != nil {
			tb.Fatal(err)
		}
		back, err := decode(raw, []string{"supervisor-with-recording", "teacher"})
		if err != nil || !equal(item, back) {
			tb.Errorf("%s: %s -> %+v (%v)", name(item), raw, back, err)
		}
	}
}

// adminClient calls an App's admin API with a token.
type adminClient struct {
	c    *http.Client
	base string
}

func (a adminClient) do(tb testing.TB, method, path, token, ifMatch, body string) (int, http.Header, string) {
	tb.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func adminConfig() config.Config {
	cfg := config.Default()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 2 * time.Second
	cfg.Admin.Tokens = []config.AdminToken{
		{User: "root", SHA256: httpauth.HashToken("root-token")},
		{User: "alice", SHA256: httpauth.HashToken("alice-token")},
		checkTokenConfig(),
	}
	return cfg
}

// eventually polls check until it returns want or fails after 3s.
func eventually(tb testing.TB, what string, check func() string, want string) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := check()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %s, want %s", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoDaemonsShareOneStore runs two daemons on one store (in memory,
// with Redis' semantics): a change through either's admin API or through
// the CLI is enforced by both.
func TestTwoDaemonsShareOneStore(t *testing.T) {
	st := seededStore(t)
	d0, d1 := MustRunDaemon(t, st, nil), MustRunDaemon(t, st, nil)
	ctx := d0.ctx
	c := newClient()
	bases := []string{d0.base, d1.base}
	admin := adminClient{c: c, base: bases[0]}
	const bobPlays = "user=bob&action=recording.playback&queue=sales"

	for i, b := range bases {
		if got := decision(t, c, b, bobPlays); got != "deny/unknown_user" {
			t.Fatalf("daemon %d before the change: %s", i, got)
		}
	}
	t.Run("supervisor delegation through the API is enforced by both daemons", func(t *testing.T) {
		code, hdr, body := admin.do(t, "GET", "/v1/users", "alice-token", "", "")
		if code != 200 {
			t.Fatalf("GET /v1/users: %d %s", code, body)
		}
		code, _, body = admin.do(t, "PUT", "/v1/users/bob", "alice-token", hdr.Get("ETag"), `{"id": "bob", "profile": "teacher", "queues": ["sales"]}`)
		if code != 200 {
			t.Fatalf("PUT /v1/users/bob: %d %s", code, body)
		}
		for i, b := range bases {
			eventually(t, "daemon "+string(rune('0'+i)), func() string { return decision(t, c, b, bobPlays) }, "allow/granted")
		}
	})
	t.Run("supervisor outside its queues is refused with the reason", func(t *testing.T) {
		_, hdr, _ := admin.do(t, "GET", "/v1/users", "alice-token", "", "")
		code, _, body := admin.do(t, "PUT", "/v1/users/bob", "alice-token", hdr.Get("ETag"), `{"id": "bob", "profile": "teacher", "queues": ["billing"]}`)
		if code != 403 || !strings.Contains(body, `"reason":"out_of_scope"`) {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("stale ETag is 409", func(t *testing.T) {
		code, _, body := admin.do(t, "PUT", "/v1/users/bob", "root-token", `"1"`, `{"id": "bob", "profile": "teacher", "queues": ["support"]}`)
		if code != 409 {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("invalid body is 422 with the parser's field path", func(t *testing.T) {
		_, hdr, _ := admin.do(t, "GET", "/v1/profiles", "root-token", "", "")
		code, _, body := admin.do(t, "PUT", "/v1/profiles/teacher", "root-token", hdr.Get("ETag"),
			`{"name": "teacher", "grants": [{"actions": ["recording.playback", "monitor.spy"], "queues": "assigned"}]}`)
		if code != 422 || !strings.Contains(body, `"field":"grants[0].actions[1]"`) {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("a CLI apply is enforced by both daemons", func(t *testing.T) {
		r := runStore(t, ctx, st, "", append([]string{"profiles", "apply", "-f", "testdata/admin.yaml"}, storeArgs...)...)
		if r.code != 0 {
			t.Fatalf("apply: %d %s", r.code, r.stderr)
		}
		for i, b := range bases {
			eventually(t, "daemon "+string(rune('0'+i)), func() string { return decision(t, c, b, bobPlays) }, "deny/unknown_user")
		}
	})
	t.Run("admin changes and decisions are in the audit trail", func(t *testing.T) {
		code, _, body := admin.do(t, "GET", "/v1/audit?action=profile.assign&decision=deny", "root-token", "", "")
		if code != 200 || !strings.Contains(body, `"source":"admin"`) || !strings.Contains(body, `"reason":"out_of_scope"`) {
			t.Errorf("%d %s", code, body)
		}
		code, _, body = admin.do(t, "GET", "/v1/audit?user=bob", "root-token", "", "")
		if code != 200 || !strings.Contains(body, `"source":"http"`) {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("ready", func(t *testing.T) {
		if status, body := get(t, c, bases[1]+"/readyz"); status != 200 {
			t.Errorf("%d %s", status, body)
		}
	})
}

func TestFileModeAdminIsReadOnly(t *testing.T) {
	cfg := adminConfig()
	cfg.Profiles = []string{"testdata/admin.yaml"}
	admin := adminClient{c: newClient(), base: MustServe(t, cfg, io.Discard).base}
	code, hdr, body := admin.do(t, "GET", "/v1/users/alice", "root-token", "", "")
	if code != 200 || !strings.Contains(body, `"id":"alice"`) {
		t.Fatalf("GET: %d %s", code, body)
	}
	code, _, body = admin.do(t, "PUT", "/v1/users/alice", "root-token", hdr.Get("ETag"), `{"id": "alice", "profile": "teacher"}`)
	if code != 405 || !strings.Contains(body, "read-only") {
		t.Errorf("PUT: %d %s", code, body)
	}
	if code, _, _ := admin.do(t, "GET", "/v1/profiles", "wrong-token", "", ""); code != 401 {
		t.Errorf("bad token: %d", code)
	}
}

// FuzzConfigCodec feeds arbitrary admin API bodies to the codec: it must
// never panic, and every refusal must be a ValidationError (422).
func FuzzConfigCodec(f *testing.F) {
	for _, s := range []string{
		`{"name": "teacher", "grants": [{"actions": ["recording.playback"], "queues": "assigned"}]}`,
		`{"id": "bob", "profile": "teacher", "queues": ["sales"]}`,
		`{"name": "x"}], "users": [{"id": "y"}`, `[]`, `{`, `{"name": "a", "grants": [{"hours": {"tz": "Mars/Base"}}]}`,
	} {
		f.Add(s)
	}
	names := []string{"teacher", "supervisor"}
	f.Fuzz(func(t *testing.T, body string) {
		var ve *adminapi.ValidationError
		if _, err := (configCodec{}).DecodeProfile([]byte(body), names); err != nil && !errors.As(err, &ve) {
			t.Errorf("profile %q: %T %v", body, err, err)
		}
		if _, err := (configCodec{}).DecodeUser([]byte(body), names); err != nil && !errors.As(err, &ve) {
			t.Errorf("user %q: %T %v", body, err, err)
		}
	})
}

// TestFileModeAdminServesTheLastGoodSnapshot: in file mode the admin API
// reads the snapshot decisions are made from: a broken file on disk
// changes neither (200 from the last good generation, writes 405), and
// after a reload its ETag is the generation the log announces.
func TestFileModeAdminServesTheLastGoodSnapshot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	copyFile(t, "admin.yaml", file)
	cfg := adminConfig()
	cfg.Profiles = []string{file}
	logs := &syncBuffer{}
	d := MustServe(t, cfg, logs)
	app := d.app
	admin := adminClient{c: newClient(), base: d.base}

	copyFile(t, "broken.yaml", file)
	if err := app.Reload(); err == nil {
		t.Fatal("Reload of a broken file succeeded")
	}
	t.Run("reads answer from the last good snapshot while the file is broken", func(t *testing.T) {
		for _, p := range []string{"/v1/profiles", "/v1/profiles/teacher", "/v1/users", "/v1/users/alice", "/v1/protected"} {
			code, hdr, body := admin.do(t, "GET", p, "root-token", "", "")
			if code != 200 || hdr.Get("ETag") != `"1"` {
				t.Errorf("GET %s: %d ETag %q %s, want 200 and \"1\"", p, code, hdr.Get("ETag"), body)
			}
		}
	})
	t.Run("writes are 405 whatever their If-Match", func(t *testing.T) {
		for _, ifMatch := range []string{`"1"`, `"7"`} {
			code, hdr, body := admin.do(t, "PUT", "/v1/users/dave", "root-token", ifMatch, `{"id": "dave", "profile": "teacher", "queues": ["sales"]}`)
			if code != 405 || hdr.Get("Allow") != "GET" || !strings.Contains(body, "read-only") {
				t.Errorf("PUT with If-Match %s: %d Allow %q %s, want 405", ifMatch, code, hdr.Get("Allow"), body)
			}
		}
	})
	t.Run("after a reload the ETag is the new generation", func(t *testing.T) {
		copyFile(t, "admin-changed.yaml", file)
		if err := app.Reload(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "logs", logs.String, `"msg":"profiles reloaded","generation":2`, time.Second)
		code, hdr, body := admin.do(t, "GET", "/v1/users", "root-token", "", "")
		if code != 200 || hdr.Get("ETag") != `"2"` || !strings.Contains(body, `"generation":2`) || !strings.Contains(body, `"id":"bob"`) {
			t.Errorf("GET /v1/users after reload: %d ETag %q %s, want generation 2 with bob", code, hdr.Get("ETag"), body)
		}
	})
}

// TestSessionStreamOutlivesTheReadTimeoutAndEndsOnShutdown follows
// /v1/sessions/stream on a daemon whose read and write timeouts are far
// shorter than the stream: it stays open past them (heartbeats go on),
// and the daemon's graceful shutdown ends it at once rather than waiting
// out its timeout.
func TestSessionStreamOutlivesTheReadTimeoutAndEndsOnShutdown(t *testing.T) {
	cfg := adminConfig()
	cfg.Profiles = []string{"testdata/admin.yaml"}
	cfg.HTTP.ReadTimeout = 200 * time.Millisecond
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := NewApp(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	req, err := http.NewRequest(http.MethodGet, "http://"+app.Addr().String()+"/v1/sessions/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer root-token")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if resp.StatusCode != 200 || line != "event: sessions\n" {
		t.Fatalf("status %d, first line %q (%v)", resp.StatusCode, line, err)
	}
	// Past three read timeouts the stream is still open.
	opened := time.Now()
	readErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		readErr <- err
	}()
	select {
	case err := <-readErr:
		t.Fatalf("the stream ended after %s: %v", time.Since(opened), err)
	case <-time.After(3 * cfg.HTTP.ReadTimeout):
	}
	stopping := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v (a stream held the graceful shutdown)", err)
		}
	case <-time.After(cfg.HTTP.ShutdownTimeout):
		t.Fatal("Run did not return")
	}
	if d := time.Since(stopping); d > time.Second {
		t.Errorf("shutdown took %s with a stream open", d)
	}
	if err := <-readErr; err != nil {
		t.Errorf("the stream ended with %v, want a clean end", err)
	}
}
