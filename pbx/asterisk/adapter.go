package asterisk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
	"github.com/callwarden/callwarden/pbx/session"
)

// WatchdogMode says what the watchdog does with a bypass it catches.
type WatchdogMode = session.WatchdogMode

// The watchdog modes.
const (
	// WatchdogEnforce hangs up the bypassing channel and audits it.
	WatchdogEnforce = session.WatchdogEnforce
	// WatchdogReportOnly only audits (and counts) the bypass.
	WatchdogReportOnly = session.WatchdogReportOnly
	// WatchdogOff does not watch; the adapter still subscribes to every
	// channel and bridge, for its model of the PBX.
	WatchdogOff = session.WatchdogOff
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
	// Sessions is the daemon's registry of live monitor sessions; nil
	// registers nothing (sessions run, listed and endable nowhere).
	Sessions *session.Registry
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger defaults to zap.NewNop(); Registerer, when set, receives the
	// callwarden_asterisk_* metrics.
	Logger     *zap.Logger
	Registerer prometheus.Registerer

	// Watchdog defaults to WatchdogEnforce.
	Watchdog WatchdogMode
	// Siblings are the other callwarden applications of this deployment
	// on this Asterisk (callwarden-b beside callwarden-a): the snoops
	// their ids name (cw-<sibling>-...) are not bypasses.
	Siblings []string
	// Shared, when set, is the store the daemons of the deployment share
	// (Redis; cmd sets it when Siblings are configured): the watchdog acts only while this daemon holds the lease
	// "watchdog:asterisk:<PBX>", and every check's allowance is written
	// there too, so the holder honours the allows of every daemon. Nil
	// (one daemon, a profiles file): the watchdog always acts.
	Shared enforce.WatchdogStore
	// Instance names this daemon as the lease's holder (default: the
	// session registry's instance, else App and a random suffix).
	Instance string
	// LeaseTTL is the watchdog lease's life (default 1.5s); the holder
	// renews it every LeaseRenew (default 500ms), and a passive daemon
	// tries to take it twice as often.
	LeaseTTL, LeaseRenew time.Duration
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

	// model is the PBX's live channels and bridges, kept from the events.
	model *pbxModel
	// events is the live event websocket, for DropEventConnection.
	events atomic.Pointer[ariclient.Conn]

	mu      sync.Mutex
	subs    map[string][]*inbox   // channel, playback or bridge id -> every handler following its events
	ours    map[string]struct{}   // snoop channels and bridges this process created
	claimed map[string]struct{}   // channels in Stasis that a handler of this process serves
	caught  map[string]struct{}   // channels the watchdog already acted on
	pending map[string]pendingApp // guarded applications seen while passive, by channel
	// strandWatch are the channels in a sibling's application being watched
	// (rescueStranded), or moved here from it.
	strandWatch map[string]struct{}

	// active says the watchdog acts (it holds the lease, or needs none).
	active atomic.Bool

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
	if o.Instance == "" {
		o.Instance = defaultInstance(o)
	}
	if err := session.LeaseDefaults(&o.LeaseTTL, &o.LeaseRenew); err != nil {
		errs = append(errs, err)
	}
	for _, app := range o.Siblings {
		if app == o.App || !validToken(app) || strings.ContainsAny(app, "/:") {
			errs = append(errs, fmt.Errorf("sibling application %q is not another valid Stasis application name", app))
		}
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
		pending: make(map[string]pendingApp),

		strandWatch: make(map[string]struct{}),
	}
	a.model = newPBXModel(func(n int) { m.tracked.Set(float64(n)) })
	// Without a shared store this daemon is the only watchdog.
	a.setActive(o.Shared == nil)
	a.audit = &session.Audit{Log: o.Auditor, Source: "asterisk", PBX: o.PBX, Now: o.Now, Failed: m.auditFailures.Inc}
	a.recs = &session.Recordings{Store: o.Recordings, PBX: o.PBX, Format: o.RecordingFormat, Now: o.Now, Audit: a.audit, Instance: o.Sessions.Instance(), Sessions: o.Sessions}
	a.claimPBX()
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
