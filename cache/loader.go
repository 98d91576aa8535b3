package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/cache/internal/wire"
	"github.com/callwarden/callwarden/enforce"
)

// ErrNoSnapshot is wrapped by Loader.Ready before the first snapshot is
// loaded: the daemon must not decide yet.
var ErrNoSnapshot = errors.New("no snapshot loaded yet")

// ErrStale is wrapped by Loader.Ready when the store has not been reached
// for longer than the staleness bound: the daemon fails closed.
var ErrStale = errors.New("snapshot is stale")

// ErrUnloadable is wrapped by Loader.Ready and by load errors when the
// store answers but its current generation cannot be turned into a
// snapshot: an entry that does not decode (enforce.ErrCorrupt), a schema this
// version does not know, or a policy that does not validate (a user on a
// missing profile). The snapshot kept is no longer the store's, so it ages
// toward the staleness bound exactly as if the store were unreachable.
var ErrUnloadable = errors.New("store generation cannot be loaded")

// errInvalidStored marks a stored policy that decodes but does not
// validate (enforce.NewSnapshot or Snapshot.Patch refused it).
var errInvalidStored = errors.New("invalid policy")

// UnloadableError says which store generation could not be loaded and
// why. It matches ErrUnloadable and unwraps to the cause (enforce.ErrCorrupt,
// enforce.ErrSchemaVersion, a validation error).
type UnloadableError struct {
	// Gen is the store's generation that failed to load (0: not known).
	Gen uint64
	Err error
}

func (e *UnloadableError) Error() string {
	if e.Gen == 0 {
		return fmt.Sprintf("the store's current generation cannot be loaded: %v", e.Err)
	}
	return fmt.Sprintf("store generation %d cannot be loaded: %v", e.Gen, e.Err)
}

// Unwrap returns the cause.
func (e *UnloadableError) Unwrap() error { return e.Err }

// Is makes an UnloadableError match ErrUnloadable.
func (e *UnloadableError) Is(target error) bool { return target == ErrUnloadable }

// Load failure causes reported by LoadFailureCause, for metrics.
const (
	CauseUnavailable = "unavailable" // the store did not answer
	CauseSchema      = "schema"      // a key schema this version does not know
	CauseCorrupt     = "corrupt"     // an entry that does not decode (unknown scope, hand edit)
	CauseInvalid     = "invalid"     // a policy that decodes but does not validate (missing profile)
	CauseOther       = "other"
)

// LoadFailureCause classifies an error of Loader.Reload (or passed to
// LoaderOptions.OnReload) into one of the Cause* values, for a metric
// label; "" for nil.
func LoadFailureCause(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, enforce.ErrSchemaVersion):
		return CauseSchema
	case errors.Is(err, enforce.ErrCorrupt):
		return CauseCorrupt
	case errors.Is(err, errInvalidStored):
		return CauseInvalid
	case !errors.Is(err, ErrUnloadable):
		return CauseUnavailable
	default:
		return CauseOther
	}
}

// LoaderOptions configure a Loader. Store is required; the rest is
// optional.
type LoaderOptions struct {
	// Store is where the policy is read from.
	Store enforce.PolicyStore
	// Watch subscribes to change notifications, each carrying the new
	// generation (Redis pub/sub, Memory.Watch). The channel closes when
	// ctx is done or the subscription is lost; the Loader subscribes
	// again. Nil: rely on polling only.
	Watch func(ctx context.Context) (<-chan uint64, error)
	// Incremental, when set, lets the Loader follow changes by patching
	// its snapshot with what the store's change log says changed
	// (enforce.ChangeSource.Changes), instead of reading and compiling the
	// whole policy: a one-user change then costs what it touches. It
	// falls back to a full load when the log has a gap, the store's epoch
	// changed or its generation went backwards, or the patch does not
	// apply. Full loads use its PolicyVersion rather than Store.Policy.
	Incremental enforce.ChangeSource
	// Generation returns the store's current generation, cheaply. It is
	// called every PollInterval to catch missed notifications and to prove
	// the store is reachable. Nil: the Loader polls with Store.Policy.
	Generation func(ctx context.Context) (uint64, error)
	// PollInterval is the period of the generation check (default 1s).
	PollInterval time.Duration
	// Staleness is how long the Loader keeps serving its snapshot after
	// the last successful contact with the store; past it, Snapshot
	// returns nil (fail closed). Zero or negative disables the bound (a
	// profiles file). When set it must exceed PollInterval.
	Staleness time.Duration
	// RetryMin and RetryMax bound the exponential backoff between failed
	// loads and subscriptions (defaults 100ms and 5s).
	RetryMin, RetryMax time.Duration
	// CallTimeout bounds each store call the Loader makes when ctx has no
	// deadline (default 10s: a 100k-user load takes a few hundred ms).
	CallTimeout time.Duration
	// Now is the clock staleness is measured with (default time.Now).
	Now func() time.Time
	// Logger receives reload and connectivity events (default no-op).
	Logger *zap.Logger
	// OnReload, when set, is called after each load attempt with the
	// generation loaded, how long it took and the error (metrics).
	OnReload func(gen uint64, took time.Duration, err error)
	// OnInstall, when set, is called with every snapshot the Loader
	// installs (a load or a patch), in the order they are installed and
	// before the next can be: the live sessions are decided again against
	// it (session.Registry.Redecide). It must be quick and must not call
	// back into the Loader's Reload.
	OnInstall func(*enforce.Snapshot)
}

// Loader owns the snapshot a daemon decides from: it loads the policy at
// start, swaps in a new snapshot atomically when the store's generation
// changes (notification or periodic check), and withholds the snapshot
// when the store has been unreachable for longer than the staleness bound,
// so the engine denies with store_unavailable rather than deciding from
// rules it can no longer check. It never serves a snapshot before the first
// successful load.
type Loader struct {
	opts   LoaderOptions
	log    *zap.Logger
	holder enforce.Holder
	// epoch is opts.Now() when the Loader was made. With the default clock
	// it carries Go's monotonic reading, so contact times measured from it
	// are immune to wall-clock steps (NTP), which could otherwise make a
	// stale snapshot look fresh again.
	epoch time.Time
	// contact is when the snapshot was last verified to be the store's
	// current generation, in ns since epoch (0: never): the send time of a
	// generation read that matched the snapshot, or of the read a
	// successful load or patch was made from. A read that merely succeeds
	// proves nothing about the snapshot: a store holding a generation this
	// daemon cannot load answers every read, yet the snapshot is no longer
	// the store's. The send time is the freshness a reply proves; stamping
	// its arrival would credit a slow reply with freshness the data does
	// not have. It only moves forward.
	contact atomic.Int64
	lastErr atomic.Pointer[error]
	// storeGen is the last generation the store reported, for errors
	// about a generation that cannot be loaded.
	storeGen atomic.Uint64
	// logMu guards lastLogged, the text of the last load failure logged
	// at warning level: a store that stays unloadable is retried every
	// poll, and logged again only when the failure changes.
	logMu      sync.Mutex
	lastLogged string
	// reloadMu serialises loads so snapshots only move forward in the
	// order they were read; it guards version.
	reloadMu sync.Mutex
	// version is the store version of the snapshot in holder (with
	// Incremental).
	version enforce.Version
}

// NewLoader checks opts and returns a Loader; call Run to start it.
func NewLoader(opts LoaderOptions) (*Loader, error) {
	if opts.Store == nil {
		return nil, errors.New("loader: Store is required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Staleness > 0 && opts.Staleness <= opts.PollInterval {
		return nil, fmt.Errorf("loader: staleness %s must exceed the poll interval %s", opts.Staleness, opts.PollInterval)
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(5*time.Second, opts.RetryMin)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Loader{opts: opts, log: opts.Logger.Named("loader"), epoch: opts.Now()}, nil
}

// Snapshot returns the snapshot to decide from, or nil (decide with
// enforce.Decide, which denies store_unavailable on nil) before the first
// load and when the store has been unreachable for longer than Staleness.
// It is cheap and safe for concurrent use.
func (l *Loader) Snapshot() *enforce.Snapshot {
	s := l.holder.Load()
	if s == nil || l.stale() > 0 {
		return nil
	}
	return s
}

// stale returns how far past the staleness bound the last contact is, or 0.
func (l *Loader) stale() time.Duration {
	if l.opts.Staleness <= 0 {
		return 0
	}
	return max(l.sinceContact()-l.opts.Staleness, 0)
}

// sinceContact is the time elapsed since the last successful contact was
// issued; very large before the first one.
func (l *Loader) sinceContact() time.Duration {
	c := l.contact.Load()
	if c == 0 {
		return time.Duration(1<<63 - 1)
	}
	return l.opts.Now().Sub(l.epoch) - time.Duration(c)
}

// Ready returns nil when Snapshot would return a snapshot, and otherwise
// an error saying why: wrapping ErrNoSnapshot before the first load, or
// ErrStale, either with ErrUnloadable when the store answers but its
// current generation cannot be loaded ("store generation 8 cannot be
// loaded: ...") or as "store unreachable for 45s (staleness 30s)", with
// the last store error. It backs the readiness probe.
func (l *Loader) Ready() error {
	var last error
	if p := l.lastErr.Load(); p != nil {
		last = *p
	}
	if l.holder.Load() == nil {
		if last != nil {
			return fmt.Errorf("%w: %w", ErrNoSnapshot, last)
		}
		return ErrNoSnapshot
	}
	if l.stale() > 0 {
		age := l.sinceContact().Round(time.Second)
		if errors.Is(last, ErrUnloadable) {
			return fmt.Errorf("%w: %w (serving generation %d, last verified current %s ago, staleness %s)",
				ErrStale, last, l.Generation(), age, l.opts.Staleness)
		}
		err := fmt.Errorf("%w: store unreachable for %s (staleness %s)", ErrStale, age, l.opts.Staleness)
		if last != nil {
			err = fmt.Errorf("%w: %w", err, last)
		}
		return err
	}
	return nil
}

// Generation returns the generation of the loaded snapshot (0 before the
// first load), stale or not.
func (l *Loader) Generation() uint64 {
	if s := l.holder.Load(); s != nil {
		return s.Generation()
	}
	return 0
}

// LastContact returns when the snapshot was last verified to be the
// store's current generation (zero before): the send time of that read.
func (l *Loader) LastContact() time.Time {
	if c := l.contact.Load(); c != 0 {
		return l.epoch.Add(time.Duration(c))
	}
	return time.Time{}
}

// Run loads the first snapshot, retrying with backoff, then follows
// notifications and checks the generation every PollInterval,
// resubscribing when a subscription is lost, until ctx is done. It returns
// nil when ctx is done and never otherwise.
func (l *Loader) Run(ctx context.Context) error {
	bo := l.backoff()
	for l.holder.Load() == nil {
		if err := l.Reload(ctx); err == nil {
			break
		}
		if !sleep(ctx, bo()) {
			return nil
		}
	}
	notes := make(chan uint64, 1)
	checkNow := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	if l.opts.Watch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.watch(ctx, notes, checkNow)
		}()
	}
	tick := time.NewTicker(l.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case gen := <-notes:
			if gen > l.Generation() {
				_ = l.update(ctx)
			}
		case <-checkNow:
			l.check(ctx)
		case <-tick.C:
			l.check(ctx)
		}
	}
}

// watch keeps a subscription open, forwarding generations to notes and
// asking for a check after each (re)subscription, which may have missed
// notifications.
func (l *Loader) watch(ctx context.Context, notes chan uint64, checkNow chan struct{}) {
	bo := l.backoff()
	for ctx.Err() == nil {
		ch, err := l.opts.Watch(ctx)
		if err != nil {
			l.log.Warn("subscribe to change notifications", zap.Error(err))
			if !sleep(ctx, bo()) {
				return
			}
			continue
		}
		bo = l.backoff()
		select {
		case checkNow <- struct{}{}:
		default:
		}
		for gen := range ch {
			wire.Notify(notes, gen)
		}
		if ctx.Err() == nil {
			l.log.Warn("change notifications lost; resubscribing")
			if !sleep(ctx, bo()) {
				return
			}
		}
	}
}

// check asks the store for its generation and reloads when it differs
// from the snapshot's (a missed notification, or a store that was reset).
func (l *Loader) check(ctx context.Context) {
	if l.opts.Generation == nil {
		_ = l.Reload(ctx)
		return
	}
	sent := l.opts.Now()
	cctx, cancel := l.callContext(ctx)
	gen, err := l.opts.Generation(cctx)
	cancel()
	if err != nil {
		l.fail(err)
		l.log.Warn("generation check failed", zap.Error(err), zap.Duration("since_contact", l.sinceContact()))
		return
	}
	l.storeGen.Store(gen)
	switch cur := l.Generation(); {
	case gen == cur:
		// The snapshot is the store's current generation, as of sent.
		l.verified(sent)
	case gen > cur:
		// A missed notification (or one not handled yet): the change log
		// brings the snapshot forward, or update falls back to a full load.
		_ = l.update(ctx)
	case gen < cur:
		// The store went backwards (reset, restored): reload it whole.
		_ = l.Reload(ctx)
	}
}

// update brings the snapshot to the store's generation: by patching it
// with the store's change log when the Loader has an enforce.ChangeSource,
// otherwise (or when the log cannot) by a full Reload.
func (l *Loader) update(ctx context.Context) error {
	if l.opts.Incremental == nil {
		return l.Reload(ctx)
	}
	l.reloadMu.Lock()
	cur := l.holder.Load()
	if cur == nil {
		l.reloadMu.Unlock()
		return l.Reload(ctx)
	}
	start := time.Now()
	sent := l.opts.Now()
	cctx, cancel := l.callContext(ctx)
	patch, v, err := l.opts.Incremental.Changes(cctx, l.version)
	cancel()
	if err != nil && !errors.Is(err, enforce.ErrChangelogGap) {
		l.reloadMu.Unlock()
		return l.reloaded(l.storeGen.Load(), start, l.loadError(l.storeGen.Load(), fmt.Errorf("read changes: %w", err)))
	}
	if errors.Is(err, enforce.ErrChangelogGap) {
		l.reloadMu.Unlock()
		l.log.Info("change log cannot bring the snapshot forward; loading the whole policy", zap.Error(err))
		return l.Reload(ctx)
	}
	l.storeGen.Store(v.Gen)
	if v == l.version {
		l.reloadMu.Unlock()
		l.verified(sent)
		return nil
	}
	next, err := cur.Patch(patch, v.Gen)
	if err != nil {
		l.reloadMu.Unlock()
		l.log.Info("change log patch does not apply; loading the whole policy", zap.Uint64("generation", v.Gen), zap.Error(err))
		return l.Reload(ctx)
	}
	l.holder.Store(next)
	l.version = v
	l.installed(next)
	l.reloadMu.Unlock()
	took := time.Since(start)
	l.verified(sent)
	l.log.Info("snapshot patched", zap.Uint64("generation", v.Gen), zap.Int("entries", patch.Size()), zap.Duration("took", took))
	if l.opts.OnReload != nil {
		l.opts.OnReload(v.Gen, took, nil)
	}
	return nil
}

// Reload reads the whole policy now and swaps in a new snapshot when the
// generation changed (SIGHUP, or right after a local apply). On error the
// current snapshot stays, its age growing toward the staleness bound; an
// invalid stored policy is refused the same way.
func (l *Loader) Reload(ctx context.Context) error {
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	start := time.Now()
	sent := l.opts.Now()
	cctx, cancel := l.callContext(ctx)
	var (
		p   enforce.Policy
		v   enforce.Version
		err error
	)
	if l.opts.Incremental != nil {
		p, v, err = l.opts.Incremental.PolicyVersion(cctx)
	} else {
		p, v.Gen, err = l.opts.Store.Policy(cctx)
	}
	cancel()
	gen := v.Gen
	if err != nil {
		gen = l.storeGen.Load()
		return l.reloaded(gen, start, l.loadError(gen, fmt.Errorf("load policy: %w", err)))
	}
	l.storeGen.Store(gen)
	if cur := l.holder.Load(); cur != nil && v == l.version {
		l.verified(sent)
		return nil
	}
	s, err := enforce.NewSnapshot(p, gen)
	if err != nil {
		return l.reloaded(gen, start, &UnloadableError{Gen: gen, Err: fmt.Errorf("%w: %w", errInvalidStored, err)})
	}
	next := s.WithOrigin(v.Epoch)
	l.holder.Store(next)
	l.version = v
	l.verified(sent)
	l.installed(next)
	return l.reloaded(gen, start, nil)
}

// installed tells OnInstall about s, just installed; reloadMu is held.
func (l *Loader) installed(s *enforce.Snapshot) {
	if l.opts.OnInstall != nil {
		l.opts.OnInstall(s)
	}
}

// loadError classifies a failed read of generation gen once: the store
// not answering (enforce.ErrUnavailable, a deadline) stays as is; a store
// that answered with something this daemon cannot load becomes an
// *UnloadableError.
func (l *Loader) loadError(gen uint64, err error) error {
	if errors.Is(err, enforce.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return &UnloadableError{Gen: gen, Err: err}
}

func (l *Loader) reloaded(gen uint64, start time.Time, err error) error {
	took := time.Since(start)
	if err != nil {
		l.fail(err)
		l.logFailure(err)
	} else {
		l.logMu.Lock()
		l.lastLogged = ""
		l.logMu.Unlock()
		l.log.Info("snapshot loaded", zap.Uint64("generation", gen), zap.Duration("took", took))
	}
	if l.opts.OnReload != nil {
		l.opts.OnReload(gen, took, err)
	}
	return err
}

// logFailure logs a failed load at warning level the first time it
// happens, and at debug level while it repeats unchanged (the loader
// retries every poll).
func (l *Loader) logFailure(err error) {
	msg := err.Error()
	l.logMu.Lock()
	repeat := msg == l.lastLogged
	l.lastLogged = msg
	l.logMu.Unlock()
	lvl := zap.WarnLevel
	if repeat {
		lvl = zap.DebugLevel
	}
	what := "policy load failed: store unreachable; serving the current snapshot until the staleness bound"
	if errors.Is(err, ErrUnloadable) {
		what = "policy load failed: the store's current generation cannot be loaded; serving the current snapshot until the staleness bound, then failing closed"
	}
	l.log.Log(lvl, what, zap.Error(err), zap.String("cause", LoadFailureCause(err)),
		zap.Uint64("current_generation", l.Generation()), zap.Uint64("store_generation", l.storeGen.Load()),
		zap.Duration("since_verified", l.sinceContact()), zap.Duration("staleness", l.opts.Staleness))
}

// verified records that the snapshot was the store's current generation
// as of sent, and clears the last error.
func (l *Loader) verified(sent time.Time) {
	l.touch(sent)
	l.lastErr.Store(nil)
}

// touch records that the snapshot was verified current by a store call
// issued at sent. Calls overlap (a Reload from SIGHUP beside the periodic
// check), so the contact only moves forward.
func (l *Loader) touch(sent time.Time) {
	c := int64(max(sent.Sub(l.epoch), 1))
	for {
		cur := l.contact.Load()
		if c <= cur || l.contact.CompareAndSwap(cur, c) {
			return
		}
	}
}

func (l *Loader) fail(err error) {
	l.lastErr.Store(&err)
}

func (l *Loader) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, l.opts.CallTimeout)
}

// backoff returns a fresh exponential backoff sequence.
func (l *Loader) backoff() func() time.Duration {
	d := l.opts.RetryMin
	return func() time.Duration {
		cur := d
		d = min(2*d, l.opts.RetryMax)
		return cur
	}
}

// sleep waits d or until ctx is done, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
