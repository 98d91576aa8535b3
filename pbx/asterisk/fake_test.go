package asterisk

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	pathpkg "path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeARI is an Asterisk stand-in: an ARI websocket the test pushes raw
// events into, and a REST API that records every call.
type fakeARI struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	conns []net.Conn
	calls []string // "POST /channels/c1/variable?..."
	vars  map[string]string
	dials int
	open  int // websockets connected
	conn  chan net.Conn
	// answers override the default answer of a REST call: the first whose
	// method and path prefix match the request is served.
	answers []fakeAnswer
}

// fakeAnswer is a canned answer of the fake REST API.
type fakeAnswer struct {
	method, prefix string // prefix: a path.Match pattern
	status         int
	body           string
}

// answer makes the fake answer method requests on path (after /ari) with
// status and body, before any earlier answer; path is a path.Match
// pattern (a * stands for one path segment, e.g. a bridge id).
func (f *fakeARI) answer(method, path string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append([]fakeAnswer{{method, path, status, body}}, f.answers...)
}

func (c fakeAnswer) matches(method, path string) bool {
	if c.method != method {
		return false
	}
	ok, err := pathpkg.Match(c.prefix, path)
	return ok && err == nil
}

// query returns the query of the first call starting with prefix, e.g. the
// snoopId the adapter gave a snoop.
func (f *fakeARI) query(prefix string) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			_, q, _ := strings.Cut(c, "?")
			v, _ := url.ParseQuery(q)
			return v
		}
	}
	return nil
}

func newFakeARI(t *testing.T) *fakeARI {
	f := &fakeARI{t: t, vars: map[string]string{}, conn: make(chan net.Conn, 8)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.dropConnections()
		f.srv.Close()
	})
	return f
}

func (f *fakeARI) serve(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "cw" || p != "secret" {
		http.Error(w, `{"message":"auth"}`, http.StatusUnauthorized)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/ari")
	if path == "/events" {
		f.upgrade(w, r)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+path+"?"+r.URL.RawQuery)
	if r.Method == http.MethodPost && strings.HasSuffix(path, "/variable") {
		f.vars[r.URL.Query().Get("variable")] = r.URL.Query().Get("value")
	}
	var canned *fakeAnswer
	for i := range f.answers {
		if f.answers[i].matches(r.Method, path) {
			canned = &f.answers[i]
			break
		}
	}
	f.mu.Unlock()
	switch {
	case canned != nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(canned.status)
		_, _ = w.Write([]byte(canned.body))
	case strings.HasPrefix(path, "/applications/"):
		// Like Asterisk: the application exists while a websocket holds it.
		f.mu.Lock()
		open := f.open
		f.mu.Unlock()
		if open == 0 {
			http.Error(w, `{"message":"Application not found"}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(`{"name":"callwarden"}`))
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/variable"):
		http.Error(w, `{"message":"Provided variable was not found"}`, http.StatusNotFound)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeARI) upgrade(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		f.t.Errorf("hijack: %v", err)
		return
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		ariclient.AcceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	_ = brw.Flush()
	f.mu.Lock()
	f.conns = append(f.conns, conn)
	f.dials++
	f.open++
	f.mu.Unlock()
	f.conn <- conn
	// Answer the client's close frame, as Asterisk does.
	go func() {
		defer func() {
			f.mu.Lock()
			f.open--
			f.mu.Unlock()
		}()
		br := bufio.NewReader(conn)
		for {
			_, op, _, err := ariclient.ReadFrame(br)
			if err != nil {
				return
			}
			if op == ariclient.OpClose {
				_, _ = conn.Write(ariclient.AppendFrame(nil, ariclient.OpClose, []byte{0x03, 0xe8}, nil))
				_ = conn.Close()
				return
			}
		}
	}()
}

// send writes one event, as Asterisk would, on the latest connection.
func (f *fakeARI) send(conn net.Conn, event string) {
	f.t.Helper()
	if _, err := conn.Write(ariclient.AppendFrame(nil, ariclient.OpText, []byte(event), nil)); err != nil {
		f.t.Fatalf("send event: %v", err)
	}
}

func (f *fakeARI) dropConnections() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}

func (f *fakeARI) variable(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vars[name]
}

func (f *fakeARI) called(prefix string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

// count is how many calls started with prefix.
func (f *fakeARI) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// startAdapter runs an adapter against f until the test ends.
func startAdapter(t *testing.T, f *fakeARI, snap func() *enforce.Snapshot, reg prometheus.Registerer, audit enforce.Auditor) *Adapter {
	t.Helper()
	return startAdapterWith(t, f, snap, reg, audit, nil)
}

// startAuditedAdapter starts an adapter deciding from the example
// profiles, its options changed by change when it is not nil, and returns
// the auditor that records its audit trail.
func startAuditedAdapter(t *testing.T, f *fakeARI, change func(*Options)) *recordingAuditor {
	t.Helper()
	audit := &recordingAuditor{}
	snap := mustExampleSnapshot(t)
	startAdapterWith(t, f, func() *enforce.Snapshot { return snap }, nil, audit, change)
	return audit
}

// startAdapterWith is startAdapter with a chance to change the options.
func startAdapterWith(t *testing.T, f *fakeARI, snap func() *enforce.Snapshot, reg prometheus.Registerer, audit enforce.Auditor, change func(*Options)) *Adapter {
	t.Helper()
	if audit == nil {
		audit = enforce.AuditorFunc(func(context.Context, enforce.AuditRecord) error { return nil })
	}
	o := Options{
		URL: f.srv.URL + "/ari", User: "cw", Password: "secret", Timeout: time.Second,
		Snapshot: snap, Auditor: audit, Recordings: memory.NewRecordings(),
		Logger: zaptest.NewLogger(t), Registerer: reg,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
	if change != nil {
		change(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := a.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// asterisk22Only are the event types Asterisk 22 sends that ari/v5 v5.3.1
// does not decode; its own reader panics on each of them.
var asterisk22Only = []string{
	"ApplicationRegistered", "ApplicationUnregistered", "CallBroadcast", "CallClaimed",
	"ChannelToneDetected", "ChannelTransfer", "RESTResponse",
}

// asterisk22Events are the eight event types reported as new in Asterisk
// 22: the seven above, and ChannelCallerId, which v5.3.1 does decode (as
// ari.ChannelCallerID) even though older notes list it as unknown.
var asterisk22Events = append([]string{"ChannelCallerId"}, asterisk22Only...)

func stasisStart(channelID string, args ...string) string {
	b, _ := json.Marshal(map[string]any{
		"type": "StasisStart", "application": "callwarden", "timestamp": "2026-11-23T10:00:00.000+0000",
		"args": args,
		"channel": map[string]any{"id": channelID, "name": "PJSIP/1001-00000001", "state": "Up",
			"caller": map[string]string{"number": "1001"}, "creationtime": "2026-11-23T10:00:00.000+0000"},
	})
	return string(b)
}
