package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/httpauth"
)

// The defaults of the session stream's options.
const (
	defaultStreamPoll      = time.Second
	defaultStreamHeartbeat = 15 * time.Second
	// streamWriteTimeout bounds one write to a stream's client: one that
	// reads nothing for that long is dropped.
	streamWriteTimeout = 10 * time.Second
	// followerBacklog is how many polls' events a stream may lag behind
	// before it is ended (its client reconnects and gets the list anew).
	followerBacklog = 64
)

// The SSE event names of GET /v1/sessions/stream besides the
// enforce.SessionEvent types: the view the stream starts with.
const eventSessions = "sessions"

// errStreamsClosed answers a stream asked for while the daemon shuts down.
var errStreamsClosed = errors.New("the daemon is shutting down")

// feed reads the live sessions view for every stream of one Admin: one
// read of the registry (every daemon's sessions, on a shared store) per
// poll while at least one stream follows, however many do, and none while
// no stream does. It hands each stream the view it starts from and then
// every change from that view on, in order.
type feed struct {
	a *Admin

	mu        sync.Mutex
	view      enforce.SessionsView
	followers map[*follower]struct{}
	run       *feedRun // the poller while one runs
	closed    bool
}

// feedRun is one poller, stopped by cancel; done closes when it returned.
type feedRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// follower is one stream: its batches of events, one per poll that
// changed something. ch is closed when the stream must end (it lagged
// followerBacklog polls behind, or the daemon shuts down).
type follower struct {
	ch chan []enforce.SessionEvent
}

// readView lists the sessions and the recordings in progress.
func (a *Admin) readView(ctx context.Context) (enforce.SessionsView, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.StoreTimeout)
	defer cancel()
	v := enforce.SessionsView{}
	var err error
	if v.Sessions, err = a.opts.Sessions.List(ctx); err != nil {
		return v, err
	}
	if a.opts.LiveRecordings != nil {
		if v.Recordings, err = a.opts.LiveRecordings.ActiveRecordings(ctx); err != nil {
			return v, err
		}
	}
	return v, nil
}

// subscribe returns a new follower and the view its events start from;
// the first follower starts the poller with a fresh read. Errors: the
// registry's, errStreamsClosed.
func (f *feed) subscribe(ctx context.Context) (*follower, enforce.SessionsView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, enforce.SessionsView{}, errStreamsClosed
	}
	if f.run == nil {
		// Read under the lock: a stream asked for meanwhile waits for
		// this read (at most StoreTimeout) rather than doing its own.
		v, err := f.a.readView(ctx)
		if err != nil {
			return nil, enforce.SessionsView{}, err
		}
		f.view = v
		rctx, cancel := context.WithCancel(context.Background())
		f.run = &feedRun{cancel: cancel, done: make(chan struct{})}
		go f.poll(rctx, f.run)
	}
	fl := &follower{ch: make(chan []enforce.SessionEvent, followerBacklog)}
	f.followers[fl] = struct{}{}
	return fl, f.view, nil
}

// unsubscribe forgets fl; the last one stops the poller, and waits for it.
func (f *feed) unsubscribe(fl *follower) {
	f.mu.Lock()
	delete(f.followers, fl)
	run := f.run
	if len(f.followers) > 0 || run == nil {
		f.mu.Unlock()
		return
	}
	f.run = nil
	f.mu.Unlock()
	run.cancel()
	<-run.done
}

// close ends every stream and refuses new ones, for the server's
// shutdown: an open stream would otherwise hold it until its timeout.
func (f *feed) close() {
	f.mu.Lock()
	f.closed = true
	for fl := range f.followers {
		close(fl.ch)
		delete(f.followers, fl)
	}
	run := f.run
	f.run = nil
	f.mu.Unlock()
	if run != nil {
		run.cancel()
		<-run.done
	}
}

// poll reads the view every StreamPoll until ctx ends and hands its
// changes to every follower.
func (f *feed) poll(ctx context.Context, me *feedRun) {
	defer close(me.done)
	t := time.NewTicker(f.a.opts.StreamPoll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := f.a.readView(ctx)
		if err != nil {
			if !failing && ctx.Err() == nil {
				f.a.log.Warn("session stream: cannot read the live sessions; streams wait for the registry", zap.Error(err))
			}
			failing = true
			continue
		}
		failing = false
		f.mu.Lock()
		prev := f.view
		f.mu.Unlock()
		// Only this poller changes the view while it runs, so prev is
		// still the view when the events are handed out below.
		events := prev.Changes(next)
		f.a.explain(ctx, events)
		f.mu.Lock()
		if f.run != me {
			f.mu.Unlock()
			return
		}
		f.view = next
		if len(events) > 0 {
			for fl := range f.followers {
				select {
				case fl.ch <- events:
				default:
					close(fl.ch)
					delete(f.followers, fl)
					f.a.log.Warn("session stream: a client lagged behind and was dropped", zap.Int("backlog", followerBacklog))
				}
			}
		}
		f.mu.Unlock()
	}
}

// explain fills in why sessions ended (the registry's ends) and the final
// record of the recordings that stopped; what cannot be read stays as
// last listed.
func (a *Admin) explain(ctx context.Context, events []enforce.SessionEvent) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.StoreTimeout)
	defer cancel()
	if err := enforce.ExplainChanges(ctx, a.opts.Sessions.Ends, a.opts.Recordings, events); err != nil {
		a.log.Warn("session stream: cannot read why sessions ended", zap.Error(err))
	}
}

// streamSessions serves GET /v1/sessions/stream as server-sent events:
// first a "sessions" event with the list GET /v1/sessions answers, then
// one event per change (enforce.SessionEvent, named by its type), each
// filtered and masked as the list is, and a heartbeat comment every
// StreamHeartbeat. Every batch and heartbeat checks the reader again
// (token, profile) against the current snapshot: a reader who lost the
// right to read sees the stream end. It ends when the client goes, when
// the daemon shuts down (CloseStreams), or when the client lags behind.
func (a *Admin) streamSessions(w http.ResponseWriter, r *http.Request, p *principal) {
	admin, ok := a.readerOf(w, p, a.opts.Sessions != nil, "this daemon keeps no session registry")
	if !ok {
		return
	}
	fl, view, err := a.feed.subscribe(r.Context())
	if errors.Is(err, errStreamsClosed) {
		httpauth.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if err != nil {
		a.storeFailed(w, r, err)
		return
	}
	defer a.feed.unsubscribe(fl)
	rc := http.NewResponseController(w)
	// The server's read timeout would end a stream that only writes; a
	// write deadline per event bounds a client that stopped reading.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // proxies that buffer would hold every event
	w.WriteHeader(http.StatusOK)

	v := viewerOf(p, admin)
	body := v.body(view)
	send := func(write func(io.Writer) error) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		return write(w) == nil && rc.Flush() == nil
	}
	if !send(func(w io.Writer) error { return writeEvent(w, eventSessions, body) }) {
		return
	}
	hb := time.NewTicker(a.opts.StreamHeartbeat)
	defer hb.Stop()
	for {
		var batch []enforce.SessionEvent
		select {
		case <-r.Context().Done():
			return
		case b, open := <-fl.ch:
			if !open {
				return
			}
			batch = b
		case <-hb.C:
		}
		if v, ok = a.stillReader(r, p.user); !ok {
			return
		}
		if !send(func(w io.Writer) error { return v.writeEvents(w, batch) }) {
			return
		}
	}
}

// stillReader checks again that the stream's reader may read: its token
// still authenticates it, a snapshot is trusted and it still has a
// profile; it returns the reader's view from the current snapshot.
func (a *Admin) stillReader(r *http.Request, user string) (viewer, bool) {
	tok, _ := httpauth.BearerToken(r.Header.Get("Authorization"))
	if id, ok := a.opts.Auth.Authenticate(tok); !ok || id.Name != user || id.Role != httpauth.RoleAdmin {
		return viewer{}, false
	}
	snap := a.opts.Snapshot()
	if snap == nil {
		return viewer{}, false
	}
	p := &principal{user: user, snap: snap, now: a.opts.Now()}
	admin, ok := readerKind(p)
	if !ok {
		return viewer{}, false
	}
	return viewerOf(p, admin), true
}

// writeEvents writes the events of batch the reader may see, masked; an
// empty batch is a heartbeat comment.
func (v viewer) writeEvents(w io.Writer, batch []enforce.SessionEvent) error {
	if len(batch) == 0 {
		_, err := io.WriteString(w, ": heartbeat\n\n")
		return err
	}
	for _, e := range batch {
		var ok bool
		if e.Session != nil {
			var s enforce.LiveSession
			s, ok = v.session(*e.Session)
			e.Session = &s
		} else if e.Recording != nil {
			var rec enforce.Recording
			rec, ok = v.recording(*e.Recording)
			e.Recording = &rec
		}
		if !ok {
			continue
		}
		if err := writeEvent(w, e.Type, e); err != nil {
			return err
		}
	}
	return nil
}

// writeEvent writes one server-sent event: its name and v's JSON on one
// data line (JSON escapes every newline).
func writeEvent(w io.Writer, name string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", name, err)
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, raw)
	return err
}

// CloseStreams ends every open GET /v1/sessions/stream and refuses new
// ones (503). Register it with http.Server.RegisterOnShutdown: Shutdown
// waits for handlers, and a stream's never returns by itself.
func (a *Admin) CloseStreams() { a.feed.close() }
