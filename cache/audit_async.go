package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/callwarden/callwarden/enforce"
)

// ErrAuditDropped is returned by AsyncAuditor.Audit when a record cannot
// be queued (the queue is full, or the auditor is closed): it is counted
// in Dropped and never written.
var ErrAuditDropped = errors.New("audit record dropped")

// BatchAuditor is an Auditor that appends several records in one round
// trip, in order (Redis chains them in Go and appends them in one script
// call).
type BatchAuditor interface {
	enforce.Auditor
	// AuditBatch appends recs in order and returns how many were
	// appended: on error, recs[:n] are stored and recs[n:] are not.
	AuditBatch(ctx context.Context, recs []enforce.AuditRecord) (int, error)
}

// AsyncAuditOptions configure an AsyncAuditor; zero values take defaults.
type AsyncAuditOptions struct {
	// QueueSize bounds the records waiting to be written (default 8192).
	QueueSize int
	// BatchSize is the most records written per round trip (default 256).
	BatchSize int
	// CallTimeout bounds one batch write (default 2s).
	CallTimeout time.Duration
	// RetryFor is how long a batch that fails is retried (with backoff
	// from 50ms to 1s) before it is dropped (default 10s). Meanwhile new
	// records queue, and are dropped once the queue is full.
	RetryFor time.Duration
	// Logger receives write failures and, at most once per second, how
	// many records were dropped (default no-op).
	Logger *zap.Logger
}

// AsyncAuditor takes audit writes off the decision path: Audit queues the
// record and returns at once; one writer goroutine writes the queue in
// batches, in order, so the hash chain is extended by a single writer in
// the order records were queued. When the queue is full the record is
// dropped and counted (Dropped): an audit record is never worth delaying a
// decision for, and a dropped record changes no decision — a deny stays a
// deny, an allow was already decided. Close flushes what is queued within
// its context's deadline.
type AsyncAuditor struct {
	next  enforce.Auditor
	batch BatchAuditor // next, when it can batch
	opts  AsyncAuditOptions
	log   *zap.Logger

	// mu guards closed and sending on q: Audit holds it shared, Close
	// exclusively, so no record is queued after the writer's last drain.
	mu     sync.RWMutex
	closed bool
	q      chan enforce.AuditRecord

	dropped, written atomic.Uint64
	// ctx is cancelled when Close gives up waiting, aborting a write.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewAsyncAuditor starts the writer goroutine in front of next; Close
// stops it.
func NewAsyncAuditor(next enforce.Auditor, opts AsyncAuditOptions) *AsyncAuditor {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Second
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	a := &AsyncAuditor{next: next, opts: opts, log: opts.Logger.Named("audit"),
		q: make(chan enforce.AuditRecord, opts.QueueSize), done: make(chan struct{})}
	a.batch, _ = next.(BatchAuditor)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	go a.run()
	return a
}

// Audit implements enforce.Auditor: it queues r without waiting, or drops
// it (ErrAuditDropped) when the queue is full or the auditor closed.
func (a *AsyncAuditor) Audit(_ context.Context, r enforce.AuditRecord) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		select {
		case a.q <- r:
			return nil
		default:
		}
	}
	a.dropped.Add(1)
	if a.closed {
		return fmt.Errorf("%w: auditor closed", ErrAuditDropped)
	}
	return fmt.Errorf("%w: queue full (%d records)", ErrAuditDropped, cap(a.q))
}

// Dropped returns the number of records dropped since the start.
func (a *AsyncAuditor) Dropped() uint64 { return a.dropped.Load() }

// Written returns the number of records written since the start.
func (a *AsyncAuditor) Written() uint64 { return a.written.Load() }

// Queued returns the number of records waiting to be written.
func (a *AsyncAuditor) Queued() int { return len(a.q) }

// Close stops accepting records and waits until the queue is written or
// ctx ends; records still unwritten then are dropped and counted, and the
// error says how many. It is safe to call more than once.
func (a *AsyncAuditor) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.q)
	}
	a.mu.Unlock()
	before := a.dropped.Load()
	select {
	case <-a.done:
	case <-ctx.Done():
		a.cancel()
		<-a.done
	}
	a.cancel()
	if n := a.dropped.Load() - before; n > 0 {
		return fmt.Errorf("audit flush: %d records not written: %w", n, ErrAuditDropped)
	}
	return nil
}

// run is the single writer: it takes what is queued, up to BatchSize, and
// writes it, until the queue is closed and empty.
func (a *AsyncAuditor) run() {
	defer close(a.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var reported uint64
	buf := make([]enforce.AuditRecord, 0, a.opts.BatchSize)
	for {
		select {
		case r, ok := <-a.q:
			if !ok {
				a.report(&reported)
				return
			}
			buf = append(buf[:0], r)
		fill:
			for len(buf) < a.opts.BatchSize {
				select {
				case r, ok := <-a.q:
					if !ok {
						break fill
					}
					buf = append(buf, r)
				default:
					break fill
				}
			}
			a.write(buf)
		case <-tick.C:
			a.report(&reported)
		}
	}
}

// report logs the records dropped since the last report.
func (a *AsyncAuditor) report(reported *uint64) {
	if d := a.dropped.Load(); d != *reported {
		a.log.Warn("audit records dropped", zap.Uint64("dropped", d-*reported), zap.Uint64("dropped_total", d))
		*reported = d
	}
}

// write writes recs in order, retrying the unwritten rest with backoff for
// up to RetryFor, then drops it.
func (a *AsyncAuditor) write(recs []enforce.AuditRecord) {
	deadline := time.Now().Add(a.opts.RetryFor)
	backoff := 50 * time.Millisecond
	for len(recs) > 0 {
		n, err := a.writeOnce(recs)
		a.written.Add(uint64(n))
		recs = recs[n:]
		if err == nil {
			continue
		}
		if time.Now().After(deadline) || a.ctx.Err() != nil {
			a.dropped.Add(uint64(len(recs)))
			a.log.Error("audit write failed; records dropped", zap.Int("dropped", len(recs)), zap.Error(err))
			return
		}
		a.log.Warn("audit write failed; retrying", zap.Int("pending", len(recs)), zap.Duration("in", backoff), zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-a.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (a *AsyncAuditor) writeOnce(recs []enforce.AuditRecord) (int, error) {
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.CallTimeout)
	defer cancel()
	if a.batch != nil {
		return a.batch.AuditBatch(ctx, recs)
	}
	for i, r := range recs {
		if err := a.next.Audit(ctx, r); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}
