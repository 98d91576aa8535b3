package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// RegistryOptions configure a Registry; every field is optional.
type RegistryOptions struct {
	// Store is the shared registry every daemon lists sessions from (Redis
	// or memory). Nil keeps the sessions in this process only.
	Store enforce.SessionStore
	// Instance names this daemon in the records it writes (default: a
	// random id taken at start).
	Instance string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Timeout bounds one store call (default 2s).
	Timeout time.Duration
	// PollInterval is how often Run looks for ends other daemons asked
	// for (default 1s).
	PollInterval time.Duration
	// HeartbeatTTL is how long this daemon's heartbeat lasts in Store: Run
	// beats every third of it, and takes another daemon that has not beaten
	// for that long for dead; it converges every half of it (Converge).
	// Default 10s.
	HeartbeatTTL time.Duration
	// Recordings lists the recordings in progress, for Converge to settle
	// those a dead daemon left, and for each poll to mute or unmute the
	// sessions this daemon holds as the pause of their call's recording
	// stands in the store, a pause made through another daemon included
	// (mute.go); nil settles sessions only and follows this daemon's
	// pauses only.
	Recordings enforce.ActiveRecordingLister
	// Policy returns the snapshot to decide from now (the loader's, nil
	// when withheld). With it, each session is decided again when its
	// allow's validity ends (a timer), when it starts and when it
	// switches mode; without it, only Redecide decides again.
	Policy func() *enforce.Snapshot
	// Notice is how long a supervisor whose session a re-decision ends
	// hears the refusal sound before being hung up (default 500ms; the
	// end stays within a second of its cause).
	Notice time.Duration
	// Logger defaults to zap.NewNop(); Registerer, when set, receives the
	// callwarden_session* metrics.
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// Registry is a daemon's live monitor sessions: it writes each one to the
// shared store while it runs (StartMonitor, Switch, End), keeps a handle
// per session this process enforces so that an administrator can end it
// (End), and follows the ends other daemons ask for through the store
// (Run). It is safe for concurrent use; a nil *Registry registers nothing.
//
// A registry write that fails never stops a session the engine allowed
// and the audit recorded: the failure is logged, counted
// (callwarden_session_registry_errors_total) and said in the audit record
// of the session's start or switch; the session then may be missing from,
// or stale in, the list.
type Registry struct {
	o   RegistryOptions
	log *zap.Logger
	m   registryMetrics
	rm  redecideMetrics

	mu     sync.Mutex
	live   map[string]*handle
	claims []Claimant // the PBXs whose records Converge settles
	// pausedRecs holds, under mu, the pause each target's sessions were
	// last muted or unmuted for (mute.go).
	pausedRecs map[string]pauseMark
	muteMu     sync.Mutex // one mute or unmute of the sessions at a time
}

// handle is one session this process enforces.
type handle struct {
	rec  enforce.LiveSession
	done chan struct{} // closed when someone asks to end the session
	once sync.Once
	by   string // who asked, set before done is closed
	// mute mutes or unmutes the session's tap (Monitor.mute).
	mute func(ctx context.Context, on bool) error

	// What the session is decided again with (redecide.go), under
	// Registry.mu: the request at its start and its mode, whether its
	// adapter applies downgrades, the pending downgrade and its signal,
	// the validity timer, and the cause of an end a re-decision asked
	// for (set before done is closed).
	req        enforce.Request
	mode       Mode
	downgrades bool
	redo       chan struct{}
	pend       *pending
	timer      *time.Timer
	until      time.Time
	armed      uint64 // the timer's number, moved by each stop
	cause      string
	gone       bool
}

type registryMetrics struct {
	live     *prometheus.GaugeVec
	duration prometheus.Histogram
	ends     *prometheus.CounterVec
	errors   prometheus.Counter
	limits   *prometheus.CounterVec // recordings stopped or resumed by a grant's limit
}

// NewRegistry builds a Registry; it fails only when its metrics cannot be
// registered.
func NewRegistry(o RegistryOptions) (*Registry, error) {
	if o.Instance == "" {
		o.Instance = randomID("cw-")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.HeartbeatTTL <= 0 {
		o.HeartbeatTTL = 10 * time.Second
	}
	if o.Notice <= 0 {
		o.Notice = 500 * time.Millisecond
	}
	r := &Registry{o: o, log: o.Logger, live: make(map[string]*handle), rm: newRedecideMetrics(), m: registryMetrics{
		live: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "callwarden_sessions_live",
			Help: "Live monitor sessions this daemon enforces, by mode."}, []string{"mode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callwarden_session_duration_seconds",
			Help:    "Length of the monitor sessions that ended.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200}}),
		ends: NewCounterVec("callwarden_session_ends_total", "Monitor session ends, by cause.", "cause"),
		errors: NewCounter("callwarden_session_registry_errors_total",
			"Writes to the live session registry that failed (the session went on)."),
		limits: NewCounterVec("callwarden_recording_limit_actions_total",
			"Recordings a grant's limit acted on, by action (stop, resume), cause (max_duration, max_pause) and result (ok, failed).",
			"action", "cause", "result"),
	}}
	if err := Register(o.Registerer, r.m.live, r.m.duration, r.m.ends, r.m.errors, r.rm.vec, r.m.limits); err != nil {
		return nil, fmt.Errorf("register session metrics: %w", err)
	}
	return r, nil
}

// Instance is the id this daemon writes into its sessions' records (""
// for a nil registry).
func (r *Registry) Instance() string {
	if r == nil {
		return ""
	}
	return r.o.Instance
}

// countLimit counts a recording a limit acted on (Recordings.Limit); a
// nil registry counts nothing.
func (r *Registry) countLimit(op RecordOp, cause string, failed bool) {
	if r == nil {
		return
	}
	result := "ok"
	if failed {
		result = "failed"
	}
	r.m.limits.WithLabelValues(op.String(), cause, result).Inc()
}

func randomID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return prefix + hex.EncodeToString(b[:])
}

func (r *Registry) now() time.Time { return r.o.Now().UTC() }

func (r *Registry) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), r.o.Timeout)
}

// put writes rec to the store; the error is logged and counted here, and
// returned for the audit record to say.
func (r *Registry) put(ctx context.Context, rec enforce.LiveSession) error {
	if r.o.Store == nil {
		return nil
	}
	sctx, cancel := r.storeCtx(ctx)
	defer cancel()
	if err := r.o.Store.PutSession(sctx, rec); err != nil {
		r.m.errors.Inc()
		r.log.Warn("cannot write the live session; it goes on", zap.String("session", rec.ID), zap.Error(err))
		return fmt.Errorf("session registry: %w", err)
	}
	return nil
}

// add registers a session this process now enforces (mute mutes its tap)
// and, with a Policy, decides it again at once (a policy installed since
// its decision) and arms its validity timer.
func (r *Registry) add(ctx context.Context, rec enforce.LiveSession, downgrades bool, mute func(context.Context, bool) error) (*handle, error) {
	h := &handle{rec: rec, done: make(chan struct{}), mute: mute}
	h.watch(rec, downgrades)
	r.mu.Lock()
	r.live[rec.ID] = h
	if r.o.Policy != nil {
		r.redecideLocked(h, r.o.Policy(), r.now())
	}
	r.mu.Unlock()
	r.m.live.WithLabelValues(rec.Mode).Inc()
	return h, r.put(ctx, rec)
}

// switched records h's new mode, entered at.
func (r *Registry) switched(ctx context.Context, h *handle, m string, at time.Time) error {
	r.mu.Lock()
	old := h.rec.Mode
	h.rec.Mode, h.rec.UpdatedAt = m, at
	h.rec.Modes = append(h.rec.Modes, enforce.ModeChange{Mode: m, At: at})
	h.mode, _ = ParseMode(m)
	if r.o.Policy != nil {
		r.redecideLocked(h, r.o.Policy(), at) // the new mode's validity
	}
	rec := h.rec
	rec.Modes = append([]enforce.ModeChange(nil), rec.Modes...)
	r.mu.Unlock()
	r.m.live.WithLabelValues(old).Dec()
	r.m.live.WithLabelValues(m).Inc()
	return r.put(ctx, rec)
}

// remove forgets h, counts its end and returns its length.
func (r *Registry) remove(ctx context.Context, h *handle, cause string) time.Duration {
	r.mu.Lock()
	delete(r.live, h.rec.ID)
	h.gone = true
	r.stopTimer(h)
	mode := h.rec.Mode
	r.mu.Unlock()
	at := r.now()
	d := at.Sub(h.rec.StartedAt)
	r.m.live.WithLabelValues(mode).Dec()
	r.m.duration.Observe(d.Seconds())
	r.m.ends.WithLabelValues(cause).Inc()
	if r.o.Store != nil {
		sctx, cancel := r.storeCtx(ctx)
		defer cancel()
		if err := r.o.Store.EndSession(sctx, enforce.EndedSession{ID: h.rec.ID, Cause: cause, At: at}); err != nil {
			r.m.errors.Inc()
			r.log.Warn("cannot remove the ended session from the registry", zap.String("session", h.rec.ID), zap.Error(err))
		}
	}
	return d
}

// ask closes h's done channel once, naming who asked.
func (h *handle) ask(by string) {
	h.once.Do(func() {
		h.by = by
		close(h.done)
	})
}

// List returns every live session: the store's (every daemon's) when
// there is one, else this process's own. Errors: the store's
// (enforce.ErrUnavailable, enforce.ErrCorrupt); never an empty list in
// place of one it could not read.
func (r *Registry) List(ctx context.Context) ([]enforce.LiveSession, error) {
	if r.o.Store != nil {
		sctx, cancel := r.storeCtx(ctx)
		defer cancel()
		return r.o.Store.LiveSessions(sctx)
	}
	r.mu.Lock()
	out := make([]enforce.LiveSession, 0, len(r.live))
	for _, h := range r.live {
		out = append(out, h.rec)
	}
	r.mu.Unlock()
	enforce.SortSessions(out)
	return out, nil
}

// Get returns the live session id, as List would list it. Errors:
// enforce.ErrNotFound and the store's.
func (r *Registry) Get(ctx context.Context, id string) (enforce.LiveSession, error) {
	if r.o.Store != nil {
		sctx, cancel := r.storeCtx(ctx)
		defer cancel()
		return r.o.Store.Session(sctx, id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.live[id]; ok {
		return h.rec, nil
	}
	return enforce.LiveSession{}, fmt.Errorf("session %s: %w", id, enforce.ErrNotFound)
}

// Ends returns why the sessions ids ended, by id, as the store keeps it
// (enforce.SessionStore.SessionEnds); an id it does not know is left out.
// Without a store it knows none. Errors: the store's.
func (r *Registry) Ends(ctx context.Context, ids []string) (map[string]enforce.EndedSession, error) {
	if r.o.Store == nil || len(ids) == 0 {
		return map[string]enforce.EndedSession{}, nil
	}
	sctx, cancel := r.storeCtx(ctx)
	defer cancel()
	return r.o.Store.SessionEnds(sctx, ids)
}

// End asks for session id to end, by the user by: at once when this
// process enforces it (its adapter ends it with cause
// enforce.CauseAdministrator), else through the store, for the owner to
// see on its next poll (Run). Errors: enforce.ErrNotFound, the store's.
func (r *Registry) End(ctx context.Context, id, by string) error {
	r.mu.Lock()
	h, ok := r.live[id]
	r.mu.Unlock()
	if ok {
		h.ask(by)
		return nil
	}
	if r.o.Store == nil {
		return fmt.Errorf("session %s: %w", id, enforce.ErrNotFound)
	}
	sctx, cancel := r.storeCtx(ctx)
	defer cancel()
	return r.o.Store.RequestSessionEnd(sctx, id, by)
}

// Run, until ctx ends, follows every PollInterval the ends other daemons
// asked for (RequestSessionEnd) on this process's sessions, writes this
// daemon's heartbeat every third of HeartbeatTTL and converges the
// records dead daemons left (Converge) at once and every half of it.
// Without a store it only waits for ctx.
func (r *Registry) Run(ctx context.Context) {
	if r.o.Store == nil {
		<-ctx.Done()
		return
	}
	r.beat(ctx)
	r.converge(ctx)
	t := time.NewTicker(min(r.o.PollInterval, r.o.HeartbeatTTL/3))
	defer t.Stop()
	beaten, converged := time.Now(), time.Now()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case now := <-t.C:
			r.poll(ctx)
			if now.Sub(beaten) >= r.o.HeartbeatTTL/3 {
				r.beat(ctx)
				beaten = now
			}
			if now.Sub(converged) >= r.o.HeartbeatTTL/2 {
				r.converge(ctx)
				converged = now
			}
		}
	}
}

// converge runs Converge and logs its error.
func (r *Registry) converge(ctx context.Context) {
	if err := r.Converge(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("cannot converge the records dead daemons left", zap.Error(err))
	}
}

func (r *Registry) poll(ctx context.Context) {
	r.mu.Lock()
	n := len(r.live)
	r.mu.Unlock()
	if n == 0 {
		return
	}
	r.syncPauses(ctx)
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	all, err := r.o.Store.LiveSessions(sctx)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.log.Warn("cannot read the live session registry for end requests", zap.Error(err))
		}
		return
	}
	for _, s := range all {
		if s.EndRequestedBy == "" || s.Instance != r.o.Instance {
			continue
		}
		r.mu.Lock()
		h, ok := r.live[s.ID]
		r.mu.Unlock()
		if ok {
			h.ask(s.EndRequestedBy)
		}
	}
}
