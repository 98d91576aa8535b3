package adminapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/adminapi"
)

// sseEvent is one server-sent event, or a comment (name "").
type sseEvent struct {
	name, data string
}

// sseClient reads GET /v1/sessions/stream.
type sseClient struct {
	events chan sseEvent // closed when the stream ends
	cancel context.CancelFunc
}

// openStream opens the stream as user and wants 200 and an event stream.
func (f *sessionsFixture) openStream(t *testing.T, user string) *sseClient {
	t.Helper()
	code, c := f.tryStream(t, user)
	if code != 200 {
		t.Fatalf("GET /v1/sessions/stream as %s: %d", user, code)
	}
	return c
}

// tryStream opens the stream as user and returns the status code; the
// client is nil unless it is 200.
func (f *sessionsFixture) tryStream(t *testing.T, user string) (int, *sseClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", f.af.srv.URL+"/v1/sessions/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+user+"-token")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := f.af.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	c := &sseClient{events: make(chan sseEvent, 100), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				c.events <- e
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				e.data = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				e.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				e.data = line[len("data: "):]
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return 200, c
}

// next returns the next event that is not a heartbeat; ok is false when
// the stream ended.
func (c *sseClient) next(t *testing.T) (e sseEvent, ok bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e, ok = <-c.events:
			if !ok || e.name != "" {
				return e, ok
			}
		case <-deadline:
			t.Fatal("no event within 5s")
		}
	}
}

// change returns the next event as a session change.
func (c *sseClient) change(t *testing.T) enforce.SessionEvent {
	t.Helper()
	e, ok := c.next(t)
	if !ok {
		t.Fatal("the stream ended")
	}
	var ev enforce.SessionEvent
	if err := json.Unmarshal([]byte(e.data), &ev); err != nil || ev.Type != e.name {
		t.Fatalf("event %s %s: %v", e.name, e.data, err)
	}
	return ev
}

// ended waits for the stream to end.
func (c *sseClient) ended(t *testing.T) {
	t.Helper()
	for {
		if _, ok := c.next(t); !ok {
			return
		}
	}
}

// first reads the view the stream starts with.
func (c *sseClient) first(t *testing.T) adminapi.SessionsBody {
	t.Helper()
	e, ok := c.next(t)
	var b adminapi.SessionsBody
	if !ok || e.name != "sessions" {
		t.Fatalf("first event %+v (stream open: %v), want sessions", e, ok)
	}
	if err := json.Unmarshal([]byte(e.data), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *sessionsFixture) put(t *testing.T, s enforce.LiveSession) {
	t.Helper()
	if err := f.store.PutSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func TestAdminSessionsStream(t *testing.T) {
	ctx := context.Background()
	t.Run("an administrator gets the list, then every change another daemon writes, with the end's cause", func(t *testing.T) {
		f := newSessionsFixture(t)
		c := f.openStream(t, "root")
		if b := c.first(t); len(b.Sessions) != 2 || b.Sessions[0].ID != "s1" || len(b.Recordings) != 1 {
			t.Fatalf("first view %+v", b)
		}
		f.put(t, enforce.LiveSession{ID: "s3", User: "carol", Target: "agent3", Queue: "billing", Mode: "listen", Instance: "d2", StartedAt: now})
		if e := c.change(t); e.Type != enforce.EventSessionStarted || e.Session.ID != "s3" {
			t.Fatalf("event %+v, want s3 started", e)
		}
		f.put(t, enforce.LiveSession{ID: "s3", User: "carol", Target: "agent3", Queue: "billing", Mode: "barge", Instance: "d2", StartedAt: now})
		if e := c.change(t); e.Type != enforce.EventSessionSwitched || e.Session.Mode != "barge" {
			t.Fatalf("event %+v, want s3 switched to barge", e)
		}
		if err := f.store.EndSession(ctx, enforce.EndedSession{ID: "s3", Cause: enforce.CauseRevoked, At: now}); err != nil {
			t.Fatal(err)
		}
		if e := c.change(t); e.Type != enforce.EventSessionEnded || e.Session.ID != "s3" || e.Cause != enforce.CauseRevoked {
			t.Fatalf("event %+v, want s3 ended revoked", e)
		}
	})

	t.Run("recordings started, paused, resumed and stopped are told", func(t *testing.T) {
		f := newSessionsFixture(t)
		c := f.openStream(t, "root")
		c.first(t)
		rec := enforce.Recording{ID: "r2", Target: "agent1", Queue: "sales", State: enforce.RecordingActive, StartedBy: "carol"}
		for _, step := range []struct {
			state enforce.RecordingState
			by    string
			want  string
		}{
			{enforce.RecordingActive, "", enforce.EventRecordingStarted},
			{enforce.RecordingPaused, "", enforce.EventRecordingPaused},
			{enforce.RecordingActive, "", enforce.EventRecordingResumed},
			{enforce.RecordingStopped, "carol", enforce.EventRecordingStopped},
		} {
			rec.State, rec.StoppedBy = step.state, step.by
			if err := f.recs.SaveRecording(ctx, rec); err != nil {
				t.Fatal(err)
			}
			e := c.change(t)
			if e.Type != step.want || e.Recording.ID != "r2" {
				t.Fatalf("event %+v, want %s of r2", e, step.want)
			}
			if step.want == enforce.EventRecordingStopped && e.Recording.StoppedBy != "carol" {
				t.Errorf("stopped recording %+v, want its final record (stopped by carol)", e.Recording)
			}
		}
	})

	t.Run("a supervisor sees only the changes presence.view allows, caller masked", func(t *testing.T) {
		f := newSessionsFixture(t)
		c := f.openStream(t, "alice")
		if b := c.first(t); len(b.Sessions) != 1 || b.Sessions[0].ID != "s1" || b.Sessions[0].Caller != "061234****" {
			t.Fatalf("first view %+v", b)
		}
		// A billing session (out of alice's scope) starts, then a sales one:
		// the first event alice gets is the sales one.
		f.put(t, enforce.LiveSession{ID: "s3", Target: "agent3", Queue: "billing", Caller: "0699999999", Mode: "listen", StartedAt: now})
		time.Sleep(20 * time.Millisecond) // a few polls: the billing start is its own batch
		f.put(t, enforce.LiveSession{ID: "s4", Target: "agent4", Queue: "sales", Caller: "0611112222", Mode: "listen", StartedAt: now})
		e := c.change(t)
		if e.Type != enforce.EventSessionStarted || e.Session.ID != "s4" || e.Session.Caller != "061111****" {
			t.Fatalf("event %+v, want s4 started with the caller masked", e)
		}
	})

	t.Run("a reader who loses its profile sees the stream end", func(t *testing.T) {
		f := newSessionsFixture(t)
		c := f.openStream(t, "bob")
		c.first(t)
		p := sessionsPolicy()
		for i := range p.Users {
			if p.Users[i].ID == "bob" {
				p.Users[i].Profile = ""
			}
		}
		f.holder.Store(mustSnapshot(t, p, 2))
		c.ended(t)
	})

	t.Run("an idle stream sends heartbeat comments", func(t *testing.T) {
		f := newSessionsFixture(t)
		c := f.openStream(t, "root")
		c.first(t)
		select {
		case e := <-c.events:
			if e.name != "" || e.data != "heartbeat" {
				t.Errorf("event %+v, want a heartbeat comment", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no heartbeat within 5s")
		}
	})

	t.Run("a stream outlives the server's read and write timeouts", func(t *testing.T) {
		f := newSessionsFixtureOn(t, func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = 50*time.Millisecond, 50*time.Millisecond })
		c := f.openStream(t, "root")
		c.first(t)
		time.Sleep(150 * time.Millisecond)
		f.put(t, enforce.LiveSession{ID: "s3", Target: "agent3", Queue: "billing", Mode: "listen", StartedAt: now})
		if e := c.change(t); e.Type != enforce.EventSessionStarted || e.Session.ID != "s3" {
			t.Fatalf("event %+v, want s3 started", e)
		}
	})

	t.Run("a client that goes away ends its stream and the registry is no longer read", func(t *testing.T) {
		f := newSessionsFixture(t)
		c := f.openStream(t, "root")
		c.first(t)
		c.cancel()
		c.ended(t)
		// The poller stopped with the last stream: a stream opened now
		// reads the registry afresh, and fails with it (a poller still
		// running would hand out its last view).
		f.store.Down(true)
		waitFor(t, func() bool {
			code, c2 := f.tryStream(t, "root")
			if c2 != nil {
				c2.cancel()
			}
			return code == 503
		})
	})

	t.Run("shutdown ends every stream and refuses new ones", func(t *testing.T) {
		f := newSessionsFixture(t)
		a, b := f.openStream(t, "root"), f.openStream(t, "alice")
		a.first(t)
		b.first(t)
		f.admin.CloseStreams()
		a.ended(t)
		b.ended(t)
		if code, _ := f.tryStream(t, "root"); code != 503 {
			t.Errorf("a stream opened during shutdown: %d, want 503", code)
		}
	})

	t.Run("a user without a profile and a missing token are refused", func(t *testing.T) {
		f := newSessionsFixture(t)
		if code, _ := f.tryStream(t, "dave"); code != 403 {
			t.Errorf("dave: %d, want 403", code)
		}
		if code, _ := f.tryStream(t, "nobody"); code != 401 {
			t.Errorf("unknown token: %d, want 401", code)
		}
	})
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}
