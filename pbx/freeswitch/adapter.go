package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// Options configure an Adapter. ESLAddress, ESLPassword, Snapshot and
// Auditor are required; every other field has a default.
type Options struct {
	// ESLAddress is FreeSWITCH's event socket, e.g. 127.0.0.1:8021.
	ESLAddress  string
	ESLPassword string // never logged
	// OutboundListen is where the dialplan's socket application connects
	// (default 127.0.0.1:8084); ":0" picks a port (see Addr).
	OutboundListen string
	// PBX names this FreeSWITCH in audit records (default "freeswitch").
	PBX string
	// Timeout bounds every ESL command, the dial and the auth (default 2s).
	Timeout time.Duration
	// ConnTimeout bounds one whole outbound connection (default 30s).
	ConnTimeout time.Duration
	// ShutdownTimeout bounds the wait for outbound connections when Run
	// stops (default 5s).
	ShutdownTimeout time.Duration
	// EventWindow is how long an event is held to restore Event-Sequence
	// order (default 50ms; FreeSWITCH's own disorder is about 20ms).
	EventWindow time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms
	// and 5s); KeepAlive is the probe interval of the inbound connection
	// (default 1s): the channel model decides from its events, so a
	// connection that died silently must be noticed within KeepAlive plus
	// Timeout, not left to answer from what it said last.
	MinBackoff, MaxBackoff, KeepAlive time.Duration

	// RefusalTone is played to a refused monitor requester before it is
	// hung up, and to a supervisor whose mode switch is refused (default
	// a 480+620 Hz busy tone, three times).
	RefusalTone string

	// Recordings keeps the metadata of the recordings the record verb
	// starts and the playback verb plays; nil refuses both
	// (store_unavailable).
	Recordings enforce.RecordingStore
	// Sessions is the daemon's registry of live monitor sessions; nil
	// registers nothing (sessions run, listed and endable nowhere).
	Sessions *session.Registry
	// RecordingsDir is the directory, on the FreeSWITCH host, of the
	// recordings callwarden starts (default the lab image's
	// $${recordings_dir}, /usr/local/freeswitch/recordings). uuid_record
	// splits its arguments on spaces, so it holds none.
	RecordingsDir string
	// ConfirmTone is played to a requester whose recording operation was
	// done (default a short 800 Hz beep).
	ConfirmTone string

	// Snapshot returns the snapshot to decide from; nil fails closed
	// (store_unavailable).
	Snapshot func() *enforce.Snapshot
	Auditor  enforce.Auditor
	// Watchdog is what happens to an eavesdrop or a recording started
	// without an allowing decision (default session.WatchdogEnforce).
	Watchdog WatchdogMode
	// Shared, when set, is the store the daemons of one FreeSWITCH share
	// (Redis; cmd sets it with freeswitch.watchdog_lease): every allowance
	// is written there too, and the watchdog acts only while this daemon
	// holds the PBX's watchdog lease, honouring any daemon's allowances.
	// Nil: this daemon's watchdog always acts, on its own allowances.
	Shared enforce.WatchdogStore
	// Instance names this daemon as the lease's holder (default: the
	// session registry's instance, else "freeswitch-" and a random suffix).
	Instance string
	// LeaseTTL is the watchdog lease's life (default 1.5s); the holder
	// renews it every LeaseRenew (default 500ms), and a passive daemon
	// tries twice as often.
	LeaseTTL, LeaseRenew time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger defaults to zap.NewNop(); Registerer, when set, receives the
	// callwarden_freeswitch_* metrics.
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// Adapter serves the dialplan's socket requests and keeps the inbound ESL
// connection up. Build it with New (which binds the outbound listener),
// run it with Run.
type Adapter struct {
	o     Options
	log   *zap.Logger
	m     *metrics
	audit *session.Audit
	in    *inbound
	srv   *outboundServer
	wd    *watchdog
	model *channelModel
	recs  *session.Recordings // nil without Options.Recordings
	// active is set while the watchdog acts: always without Shared, else
	// while this daemon holds the watchdog lease (runLease).
	active atomic.Bool
	// stopping holds the names of the recordings a user is stopping: their
	// RECORD_STOP is not FreeSWITCH ending them.
	stopping sync.Map
	bg       sync.WaitGroup // recording-end updates in flight

	runOnce sync.Once
}

// New checks opts, applies the defaults and binds the outbound listener;
// it does not connect to FreeSWITCH (Run does).
func New(opts Options) (*Adapter, error) {
	o := opts
	var errs []error
	if o.ESLAddress == "" {
		errs = append(errs, errors.New("ESLAddress is required"))
	}
	if o.ESLPassword == "" {
		errs = append(errs, errors.New("ESLPassword is required"))
	} else if err := checkValue("ESLPassword", o.ESLPassword); err != nil {
		errs = append(errs, err)
	}
	if o.Snapshot == nil {
		errs = append(errs, errors.New("Snapshot is required"))
	}
	if o.Auditor == nil {
		errs = append(errs, errors.New("Auditor is required"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("freeswitch: %w", errors.Join(errs...))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 2*time.Second)
	def(&o.ConnTimeout, 30*time.Second)
	def(&o.ShutdownTimeout, 5*time.Second)
	def(&o.EventWindow, 50*time.Millisecond)
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
	def(&o.KeepAlive, time.Second)
	if o.OutboundListen == "" {
		o.OutboundListen = "127.0.0.1:8084"
	}
	if o.RefusalTone == "" {
		o.RefusalTone = "tone_stream://%(500,500,480,620);loops=3"
	}
	if err := checkValue("RefusalTone", o.RefusalTone); err != nil {
		return nil, fmt.Errorf("freeswitch: %w", err)
	}
	if err := recordingDefaults(&o); err != nil {
		return nil, fmt.Errorf("freeswitch: %w", err)
	}
	if o.PBX == "" {
		o.PBX = "freeswitch"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.Watchdog {
	case "":
		o.Watchdog = session.WatchdogEnforce
	case session.WatchdogEnforce, session.WatchdogReportOnly, session.WatchdogOff:
	default:
		return nil, fmt.Errorf("freeswitch: unknown Watchdog mode %q (want enforce, report-only or off)", o.Watchdog)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if err := leaseDefaults(&o); err != nil {
		return nil, fmt.Errorf("freeswitch: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	a := &Adapter{o: o, log: o.Logger, m: m}
	if o.Recordings != nil {
		a.recs = &session.Recordings{Store: o.Recordings, PBX: o.PBX, Format: "wav", Now: o.Now, Instance: o.Sessions.Instance(), Sessions: o.Sessions}
	}
	var everUp bool // only touched by OnUp, which the inbound loop calls in turn
	a.audit = &session.Audit{Log: o.Auditor, Source: "freeswitch", PBX: o.PBX, Now: o.Now, Timeout: o.Timeout,
		Failed: m.auditFailures.Inc}
	if a.recs != nil {
		a.recs.Audit = a.audit
	}
	a.claimPBX()
	a.setActive(o.Shared == nil)
	a.wd = newWatchdog(&watchdog{mode: o.Watchdog, now: o.Now, act: a.api, audit: a.audit, snap: o.Snapshot,
		log: o.Logger, count: func(kind string, mode WatchdogMode) { m.watchdog.WithLabelValues(kind, string(mode)).Inc() },
		shared: session.SharedAllowances{Store: o.Shared, Timeout: o.Timeout}, acting: a.active.Load})
	a.wd.allowances.Now = o.Now
	a.model = newChannelModel(time.Now, func(n int) { m.tracked.Set(float64(n)) })
	a.in = newInbound(inboundOptions{
		Address: o.ESLAddress, Password: o.ESLPassword, Timeout: o.Timeout,
		MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff, Window: o.EventWindow, KeepAlive: o.KeepAlive,
		Logger: o.Logger, OnEvent: a.onEvent,
		OnDropped: func(reason string) { m.drops.WithLabelValues(reason).Inc() },
		OnIgnored: func(kind string, n int) { m.ignored.WithLabelValues(kind).Add(float64(n)) },
		OnLate:    m.late.Inc,
		OnUp: func(up bool) {
			if up {
				if everUp {
					m.reconnects.Inc()
				}
				everUp = true
				m.connected.Set(1)
			} else {
				a.model.down()
				m.connected.Set(0)
			}
		},
		OnReset: a.model.reset,
		Resync: func(listing string, again bool) error {
			rows, err := parseListing(listing)
			if err != nil {
				return err
			}
			a.model.merge(rows, again)
			m.resyncs.Inc()
			return nil
		},
	})
	ln, err := net.Listen("tcp", o.OutboundListen)
	if err != nil {
		return nil, fmt.Errorf("freeswitch: outbound socket: %w", err)
	}
	a.srv = newOutboundServer(ln, o.Timeout, o.ConnTimeout, a.handleOutbound)
	return a, nil
}

// Addr is the outbound listener's address (the port chosen for ":0").
func (a *Adapter) Addr() net.Addr { return a.srv.ln.Addr() }

// Run serves the outbound socket and keeps the inbound connection up
// until ctx ends; then it stops accepting, waits up to ShutdownTimeout for
// the outbound connections and returns. It runs once.
func (a *Adapter) Run(ctx context.Context) error {
	err := errors.New("freeswitch: Run called twice")
	a.runOnce.Do(func() { err = a.run(ctx) })
	return err
}

func (a *Adapter) run(ctx context.Context) error {
	a.log.Info("FreeSWITCH outbound socket listening", zap.String("address", a.Addr().String()))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.in.run(ctx) }()
	go func() { defer wg.Done(); a.runLease(ctx) }()
	serveErr := make(chan error, 1)
	go func() { defer wg.Done(); serveErr <- a.srv.serve() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.ShutdownTimeout)
	defer cancel()
	cerr := a.srv.close(sctx)
	wg.Wait()
	a.wd.stop()
	a.bg.Wait()
	if err != nil {
		return err
	}
	return cerr
}

// Close releases the listener of an adapter whose Run was never called.
func (a *Adapter) Close() {
	a.runOnce.Do(func() { _ = a.srv.close(context.Background()); a.wd.stop() })
}

// onEvent receives the inbound events in Event-Sequence order: it counts
// them, keeps the channel model, hands them to the watchdog and ends the
// recordings FreeSWITCH ended.
func (a *Adapter) onEvent(ev Event) {
	if !knownEvent(ev.Name) {
		a.m.ignored.WithLabelValues("event").Inc()
		return
	}
	a.m.events.WithLabelValues(ev.Name).Inc()
	if queue, moved := a.model.apply(ev); moved {
		a.callMoved(ev.Get("Unique-ID"), queue)
	}
	a.wd.onEvent(ev)
	if ev.Name == "RECORD_STOP" {
		a.recordingEnded(ev)
	}
}

// callMoved tells the session registry that the call on channel uuid is
// now in queue, as an event carrying its variables showed: every session
// eavesdropping on that channel is decided again with it, and one the
// new queue no longer allows drops to a lesser mode or ends (cause
// queue_moved), as on Asterisk. It runs in the event loop, so that two
// moves are applied in their order; only a session on that channel makes
// it write to the store, within Timeout.
func (a *Adapter) callMoved(uuid, queue string) {
	if a.o.Sessions == nil {
		return
	}
	a.log.Debug("call moved queue", zap.String("channel", uuid), zap.String("queue", queue))
	ctx, cancel := context.WithTimeout(context.Background(), a.o.Timeout)
	defer cancel()
	a.o.Sessions.TargetMoved(ctx, uuid, queue)
}

// Channels is a read-only copy of the channel model (its channels, by
// uuid) and whether it is synced, for tests and diagnostics.
func (a *Adapter) Channels() ([]ModelChannel, bool) {
	chs, synced := a.model.view()
	return chs, synced && a.in.live()
}

// api sends one api command on the inbound connection.
func (a *Adapter) api(ctx context.Context, cmd string, args ...string) (string, error) {
	return a.in.api(ctx, cmd, args...)
}

// allow lets channel's next eavesdrop (action monitor.listen, whisper or
// barge) or recording (recording.start) through the watchdog, once,
// within session.AllowanceTTL. Call it before starting the application:
// whatever callwarden starts itself must never be stopped by its own
// watchdog.
func (a *Adapter) allow(channel string, action enforce.Action) { a.wd.allow(channel, action) }
