package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
	"github.com/callwarden/callwarden/pbx/session"
)

// WatchdogMode says what the watchdog does with a bypass it catches.
type WatchdogMode string

// The watchdog modes.
const (
	// WatchdogEnforce hangs up the bypassing channel and audits it.
	WatchdogEnforce WatchdogMode = "enforce"
	// WatchdogReportOnly only audits (and counts) the bypass.
	WatchdogReportOnly WatchdogMode = "report-only"
	// WatchdogOff does not watch; the adapter then does not subscribe to
	// every channel of the PBX.
	WatchdogOff WatchdogMode = "off"
)

// Options configure an Adapter. URL, User, Password, App, Snapshot,
// Auditor and Recordings are required; every other field has a default.
type Options struct {
	// URL is the ARI REST base, e.g. http://127.0.0.1:8088/ari.
	URL string
	// WebsocketURL is the events websocket; derived from URL when empty
	// (http -> ws, https -> wss, plus /events).
	WebsocketURL string
	User         string
	Password     string // never logged
	// App is the Stasis application name (default "callwarden").
	App string
	// Timeout bounds every ARI REST call (default 2s).
	Timeout time.Duration

	// Snapshot returns the snapshot to decide from; nil fails closed
	// (store_unavailable).
	Snapshot   func() *enforce.Snapshot
	Auditor    enforce.Auditor
	Recordings enforce.RecordingStore
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger defaults to zap.NewNop(); Registerer, when set, receives the
	// callwarden_asterisk_* metrics.
	Logger     *zap.Logger
	Registerer prometheus.Registerer

	// Watchdog defaults to WatchdogEnforce.
	Watchdog WatchdogMode
	// RefusalSound is played to a refused requester (default
	// "sound:ss-noservice"); NotifySound to a monitored agent whose
	// supervisor's profile says notify_target, and to a requester whose
	// record operation was done (default "sound:beep").
	RefusalSound, NotifySound string
	// PBX names this Asterisk in audit records (default "asterisk").
	PBX string
	// RecordingFormat is the live recordings' format (default "wav").
	RecordingFormat string
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms
	// and 5s).
	MinBackoff, MaxBackoff time.Duration
}

// Adapter is the Stasis application: it keeps the ARI event connection up
// (reconnecting with backoff), handles each StasisStart in its own
// goroutine, and runs the watchdog. Build it with New, run it with Run.
type Adapter struct {
	o     Options
	rest  *rest
	log   *zap.Logger
	m     *metrics
	wsURL string

	connected atomic.Bool
	everUp    bool          // touched by Run's goroutine only
	up        chan struct{} // replaced on every (re)connection; closed when connected
	upMu      sync.Mutex

	audit      *session.Audit      // builds and writes every audit record
	allowances session.Allowances  // what a check allowed a channel (watchdog)
	recs       *session.Recordings // recording metadata and the live recordings

	mu      sync.Mutex
	subs    map[string][]*inbox // channel, playback or bridge id -> every handler following its events
	ours    map[string]struct{} // snoop channels and bridges this process created
	claimed map[string]struct{} // channels in Stasis that a handler of this process serves
	caught  map[string]struct{} // channels the watchdog already acted on

	// handlers counts the call handlers; closing (under mu) stops new ones
	// once Run is shutting down, so Wait never races an Add.
	handlers sync.WaitGroup
	closing  bool
}

// New checks opts and builds an Adapter; it does not connect (Run does).
func New(opts Options) (*Adapter, error) {
	o := opts
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("URL is required"))
	}
	if o.User == "" || o.Password == "" {
		errs = append(errs, errors.New("User and Password are required"))
	}
	if o.Snapshot == nil {
		errs = append(errs, errors.New("Snapshot is required"))
	}
	if o.Auditor == nil {
		errs = append(errs, errors.New("Auditor is required"))
	}
	if o.Recordings == nil {
		errs = append(errs, errors.New("Recordings is required"))
	}
	if o.App == "" {
		o.App = "callwarden"
	}
	if !validToken(o.App) || strings.ContainsAny(o.App, "/:") {
		errs = append(errs, fmt.Errorf("App %q is not a valid Stasis application name", o.App))
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	switch o.Watchdog {
	case "":
		o.Watchdog = WatchdogEnforce
	case WatchdogEnforce, WatchdogReportOnly, WatchdogOff:
	default:
		errs = append(errs, fmt.Errorf("Watchdog %q (want enforce, report-only or off)", o.Watchdog))
	}
	if o.RefusalSound == "" {
		o.RefusalSound = "sound:ss-noservice"
	}
	if o.NotifySound == "" {
		o.NotifySound = "sound:beep"
	}
	if o.PBX == "" {
		o.PBX = "asterisk"
	}
	if o.RecordingFormat == "" {
		o.RecordingFormat = "wav"
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	r := newREST(o.URL, o.User, o.Password, o.Timeout)
	wsURL, err := r.EventsURL(o.WebsocketURL, o.App)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("asterisk adapter: %w", errors.Join(errs...))
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	a := &Adapter{
		o:       o,
		rest:    r,
		log:     o.Logger.With(zap.String("app", o.App)),
		m:       m,
		wsURL:   wsURL,
		up:      make(chan struct{}),
		subs:    make(map[string][]*inbox),
		ours:    make(map[string]struct{}),
		claimed: make(map[string]struct{}),
		caught:  make(map[string]struct{}),
	}
	a.audit = &session.Audit{Log: o.Auditor, Source: "asterisk", PBX: o.PBX, Now: o.Now, Failed: m.auditFailures.Inc}
	a.recs = &session.Recordings{Store: o.Recordings, PBX: o.PBX, Now: o.Now}
	return a, nil
}

// Connected reports whether the ARI event connection is up and the Stasis
// application registered.
func (a *Adapter) Connected() bool { return a.connected.Load() }

// WaitConnected blocks until the application is registered in Asterisk
// (after a start or a reconnection) or ctx ends.
func (a *Adapter) WaitConnected(ctx context.Context) error {
	for {
		a.upMu.Lock()
		up := a.up
		a.upMu.Unlock()
		select {
		case <-up:
			if a.connected.Load() {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("asterisk: not connected: %w", ctx.Err())
		}
	}
}

func (a *Adapter) setConnected(on bool) {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.connected.Load() == on {
		return
	}
	a.connected.Store(on)
	if on {
		a.m.connected.Set(1)
		close(a.up)
	} else {
		a.m.connected.Set(0)
		a.up = make(chan struct{})
	}
}

// Run keeps the event connection up until ctx ends, reconnecting with
// exponential backoff (MinBackoff doubling to MaxBackoff) whenever it
// breaks, then waits for the call handlers to finish their cleanup. It
// returns nil once ctx ends.
func (a *Adapter) Run(ctx context.Context) error {
	defer a.rest.close()
	defer a.drainHandlers()
	backoff := a.o.MinBackoff
	for {
		wasUp, err := a.connectAndRead(ctx)
		a.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errReplaced):
			// Do not fight another instance for the application every
			// 100ms: each takeover costs Asterisk a session teardown.
			backoff = a.o.MaxBackoff
		case wasUp:
			backoff = a.o.MinBackoff
			a.log.Warn("ARI event connection lost; reconnecting", zap.Error(err))
		default:
			a.log.Warn("cannot connect to ARI; retrying", zap.Error(err), zap.Duration("backoff", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if !wasUp {
			backoff = min(2*backoff, a.o.MaxBackoff)
		}
	}
}

// connectAndRead dials the event websocket, waits until the application is
// registered, then reads and dispatches events until the connection or ctx
// ends. wasUp reports whether the connection got that far.
func (a *Adapter) connectAndRead(ctx context.Context) (wasUp bool, err error) {
	a.waitPreviousSession(ctx)
	dctx, cancel := context.WithTimeout(ctx, 2*a.o.Timeout)
	ws, err := a.rest.DialEvents(dctx, a.wsURL)
	cancel()
	if err != nil {
		return false, err
	}
	// On shutdown the call handlers clean up first (hang up snoops,
	// destroy bridges, release channels) while events still flow; only
	// then does the application leave Asterisk.
	readDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		a.drainHandlers()
		// Quiet the stream, then a clean close handshake: Asterisk 22 can
		// wedge a session closed while it writes events, and a new
		// connection of the same application then waits on it forever.
		qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.Timeout)
		if err := a.rest.SetEventFilter(qctx, a.o.App, quietEvents); err != nil {
			a.log.Debug("cannot quiet the event stream before leaving", zap.Error(err))
		}
		qcancel()
		ws.SendClose()
		_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
		select {
		case <-readDone:
		case <-time.After(closeGrace):
		}
		_ = ws.Close()
	})
	quit := make(chan struct{}) // tells the reader nobody reads msgs any more
	defer func() {
		close(quit)
		if !stop() {
			<-readDone
		}
		_ = ws.Close()
		<-readDone // the reader has stopped too
	}()
	msgs := make(chan []byte, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(readDone)
		defer close(msgs)
		for {
			op, msg, err := ws.ReadMessage()
			if err != nil {
				if errors.Is(err, ariclient.ErrClosed) {
					// Let Asterisk close the TCP connection first.
					_ = ws.SetReadDeadline(time.Now().Add(closeGrace))
					ws.Drain()
				}
				readErr <- err
				return
			}
			if op == ariclient.OpText {
				select {
				case msgs <- msg:
				case <-quit:
					readErr <- errors.New("event reader stopped")
					return
				}
			}
		}
	}()
	// Asterisk answers the upgrade before it registers the application:
	// wait until it exists, dispatching events meanwhile, so Connected
	// means a Stasis() in the dialplan reaches us.
	regCtx, regCancel := context.WithTimeout(ctx, 5*a.o.Timeout)
	registered := make(chan error, 1)
	go func() { registered <- a.waitApplication(regCtx) }()
	defer regCancel()
	// The sweep for orphans runs beside the event loop (it waits for
	// StasisStarts to be dispatched) and never outlives this connection.
	sweepCtx, sweepCancel := context.WithCancel(ctx)
	var swept chan error
	defer func() {
		sweepCancel()
		if swept != nil {
			<-swept
		}
	}()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return wasUp, <-readErr
			}
			if a.handleMessage(ctx, msg) {
				return wasUp, errReplaced
			}
		case err := <-registered:
			registered = nil
			if err != nil {
				return false, err
			}
			if a.o.Watchdog != WatchdogOff {
				// Without every channel's events the watchdog is blind:
				// treat it as a failed connection and try again.
				if err := a.rest.WatchAll(ctx, a.o.App); err != nil {
					return false, fmt.Errorf("subscribe to every channel for the watchdog: %w", err)
				}
			}
			if err := a.rest.SetEventFilter(ctx, a.o.App, wantedEvents); err != nil {
				a.log.Warn("cannot set the application's event filter; receiving every event", zap.Error(err))
			}
			// Before reporting itself connected, end what a previous
			// process (kill -9) or connection left behind: a supervisor
			// still bridged to a snoop would otherwise listen unsupervised.
			swept = make(chan error, 1)
			go func() { swept <- a.sweepOrphans(sweepCtx) }()
		case err := <-swept:
			swept = nil
			if err != nil {
				// Orphans could not be listed: not serving beats serving
				// beside a session nobody supervises. Try again.
				return false, fmt.Errorf("sweep for orphaned sessions: %w", err)
			}
			wasUp = true
			if a.everUp {
				a.m.reconnects.Inc()
			}
			a.everUp = true
			a.setConnected(true)
			a.log.Info("ARI connected", zap.String("url", redactURL(a.wsURL)))
		}
	}
}

func (a *Adapter) waitApplication(ctx context.Context) error {
	return a.rest.WaitApplication(ctx, a.o.App)
}

// previousSessionWait bounds how long a (re)connection waits for Asterisk
// to drop the application of a previous connection.
const previousSessionWait = 3 * time.Second

// waitPreviousSession waits, up to previousSessionWait, until Asterisk no
// longer knows the application. Asterisk 22 registers the application of
// a new websocket before the upgrade completes; if the previous session of
// the same application is still being torn down, the registration (which
// sends ApplicationReplaced to the old session under the application's
// lock) and the teardown (which unregisters under the session's lock) can
// deadlock, wedging ARI for good. An application Asterisk has destroyed
// cannot be replaced. One that keeps channels in Stasis is never destroyed
// on its own: after the bound the connection goes ahead.
func (a *Adapter) waitPreviousSession(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, previousSessionWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		known, err := a.rest.Application(ctx, a.o.App)
		if err != nil || !known {
			return // gone (404), or Asterisk unreachable: the dial reports it
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			a.log.Debug("application still known to Asterisk; connecting anyway")
			return
		}
	}
}

// closeGrace bounds the wait for Asterisk's answer to our close frame.
const closeGrace = 2 * time.Second

// redactURL drops credentials a websocket URL might carry.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	return u.String()
}

// newID returns a fresh id for a channel, bridge or playback callwarden
// creates, e.g. cw-callwarden-snoop-1a2b3c4d5e6f7a8b (see ownedID).
func (a *Adapter) newID(kind string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return a.ownedID(kind, hex.EncodeToString(b[:]))
}

// ownedID is the id of what callwarden creates in Asterisk:
// cw-<app>-<kind>-<suffix>. Naming the application makes everything an
// application created recognisable after a crash, by the next process of
// the same application (sweepOrphans), and by nobody else's.
func (a *Adapter) ownedID(kind, suffix string) string {
	return "cw-" + a.o.App + "-" + kind + "-" + suffix
}

// ownedKind parses an id made by ownedID for this application: kind and
// suffix, ok false for anyone else's id. The parse is strict (a known kind,
// then the exact suffix form), so that application "a" never claims the
// ids of application "a-b".
func (a *Adapter) ownedKind(id string) (kind, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(id, "cw-"+a.o.App+"-")
	if !ok {
		return "", "", false
	}
	kind, suffix, ok = strings.Cut(rest, "-")
	if !ok {
		return "", "", false
	}
	switch kind {
	case kindBridge, kindSnoop, kindNotify, kindPlay:
		return kind, suffix, isHex(suffix, 16)
	case kindRecSnoop:
		return kind, suffix, isDigits(suffix, 12)
	}
	return "", "", false
}

// The kinds of ids callwarden gives what it creates.
const (
	kindBridge   = "bridge"   // a monitor session's mixing bridge
	kindSnoop    = "snoop"    // a monitor session's snoop channel
	kindNotify   = "notify"   // the snoop that plays the notify tone to an agent
	kindRecSnoop = "recsnoop" // the snoop a live recording records; suffix: the recording id
	kindPlay     = "play"     // a playback
)

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// inbox is a call handler's queue of events, fed by the dispatcher.
type inbox struct {
	ch  chan ari.Event
	ids []string
}

// inboxSize bounds a handler's backlog; beyond it events are dropped and
// counted (callwarden_asterisk_dropped_events_total{reason="inbox_full"}).
const inboxSize = 100

// subscribe routes the events of ids (channels, bridges, playbacks) to a
// new inbox. Subscribe before acting, so no event is missed.
func (a *Adapter) subscribe(ids ...string) *inbox {
	in := &inbox{ch: make(chan ari.Event, inboxSize)}
	a.follow(in, ids...)
	return in
}

// follow adds ids to in. Several handlers may follow the same id (two
// supervisors monitoring one agent each follow the agent's channel): every
// one of them gets its events.
func (a *Adapter) follow(in *inbox, ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if slices.Contains(a.subs[id], in) {
			continue
		}
		a.subs[id] = append(a.subs[id], in)
		in.ids = append(in.ids, id)
	}
}

// unsubscribe stops routing to in.
func (a *Adapter) unsubscribe(in *inbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range in.ids {
		rest := slices.DeleteFunc(a.subs[id], func(x *inbox) bool { return x == in })
		if len(rest) == 0 {
			delete(a.subs, id)
		} else {
			a.subs[id] = rest
		}
	}
	in.ids = nil
}

// route hands ev to every inbox following one of its entities, once each;
// it reports whether any did.
func (a *Adapter) route(ev ari.Event) bool {
	keys := ev.Keys()
	var buf [4]*inbox
	targets := buf[:0]
	a.mu.Lock()
	for _, k := range keys {
		for _, in := range a.subs[k.ID] {
			if !slices.Contains(targets, in) {
				targets = append(targets, in)
			}
		}
	}
	a.mu.Unlock()
	for _, in := range targets {
		select {
		case in.ch <- ev:
		default:
			a.m.dropped.WithLabelValues("inbox_full").Inc()
			a.log.Warn("call handler inbox full; event dropped", zap.String("type", ev.GetType()))
		}
	}
	return len(targets) > 0
}

// markOurs records a snoop channel or bridge id this process is about to
// create, so the watchdog lets it be and sweepOrphans knows it is not an
// orphan.
func (a *Adapter) markOurs(id string) {
	a.mu.Lock()
	a.ours[id] = struct{}{}
	a.mu.Unlock()
}

// forget drops an id markOurs recorded, once it is destroyed.
func (a *Adapter) forget(id string) {
	a.mu.Lock()
	delete(a.ours, id)
	a.mu.Unlock()
}

func (a *Adapter) isOurs(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ours[id]
	return ok
}

// errReplaced means another ARI client registered the application.
var errReplaced = errors.New("another ARI client registered this application (ApplicationReplaced): run one callwarden per application name")

// handleMessage decodes one websocket message and dispatches it. It
// reports whether Asterisk said another client took the application over.
func (a *Adapter) handleMessage(ctx context.Context, msg []byte) (replaced bool) {
	ev, typ, err := decodeEvent(msg)
	switch {
	case errors.Is(err, errUnknownEvent):
		a.m.unknown.WithLabelValues(typ).Inc()
		a.log.Debug("ARI event type unknown to the ARI library; dropped", zap.String("type", typ))
		return false
	case err != nil:
		a.m.dropped.WithLabelValues("malformed").Inc()
		a.log.Warn("undecodable ARI event dropped", zap.String("type", typ), zap.Error(err))
		return false
	}
	if _, ok := ev.(*ari.ApplicationReplaced); ok {
		a.log.Error("ARI application taken over by another client; reconnecting after the maximum backoff")
		return true
	}
	a.dispatch(ctx, ev)
	return false
}

// dispatch acts on one event. It never blocks on the network: REST calls
// run in handler goroutines.
func (a *Adapter) dispatch(ctx context.Context, ev ari.Event) {
	switch e := ev.(type) {
	case *ari.StasisStart:
		if e.Application != a.o.App {
			return
		}
		if a.route(ev) {
			return
		}
		if a.isOurs(e.Channel.ID) {
			return // a snoop of ours whose handler already moved on
		}
		if isSnoop(e.Channel.Name) {
			a.watchSnoop(ctx, e.Channel, "entered Stasis "+a.o.App)
			return
		}
		// Claimed here, before the handler runs, so that a sweep for
		// orphans never takes a channel that has just entered Stasis.
		a.claim(e.Channel.ID)
		a.spawn(ctx, func(ctx context.Context) {
			defer a.unclaim(e.Channel.ID)
			a.handleStart(ctx, e)
		})
		return
	case *ari.ChannelCreated:
		if isSnoop(e.Channel.Name) && !a.isOurs(e.Channel.ID) {
			a.watchSnoop(ctx, e.Channel, "created by another ARI client")
		}
	case *ari.ChannelDialplan:
		a.watchDialplan(ctx, e)
	case *ari.ChannelDestroyed:
		a.allowances.Forget(e.Channel.ID)
		a.mu.Lock()
		delete(a.ours, e.Channel.ID)
		delete(a.caught, e.Channel.ID)
		delete(a.claimed, e.Channel.ID)
		a.mu.Unlock()
	case *ari.RecordingFinished:
		a.recordingEnded(ctx, e.Recording, "finished")
	case *ari.RecordingFailed:
		a.recordingEnded(ctx, e.Recording, "failed")
	}
	a.route(ev)
}

// spawn runs f in a handler goroutine that Run waits for; once Run is
// shutting down it starts nothing.
func (a *Adapter) spawn(ctx context.Context, f func(ctx context.Context)) {
	a.mu.Lock()
	if a.closing || ctx.Err() != nil {
		a.mu.Unlock()
		return
	}
	a.handlers.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.handlers.Done()
		f(ctx)
	}()
}

// drainHandlers stops new handlers and waits for the running ones.
func (a *Adapter) drainHandlers() {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.handlers.Wait()
}

func isSnoop(channelName string) bool { return strings.HasPrefix(channelName, "Snoop/") }

// cleanupCtx is the context for undoing what a handler set up (snoops,
// bridges) even after ctx ended (shutdown).
func (a *Adapter) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*a.o.Timeout)
}

// claim records that a handler of this process serves channel id.
func (a *Adapter) claim(id string) {
	a.mu.Lock()
	a.claimed[id] = struct{}{}
	a.mu.Unlock()
}

func (a *Adapter) unclaim(id string) {
	a.mu.Lock()
	delete(a.claimed, id)
	a.mu.Unlock()
}

// owns reports whether id is a snoop, bridge or Stasis channel this
// process created or serves.
func (a *Adapter) owns(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ours := a.ours[id]
	_, claimed := a.claimed[id]
	return ours || claimed
}
