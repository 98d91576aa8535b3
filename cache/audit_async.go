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

// ErrAuditDegraded is returned (wrapped) by AsyncAuditor.Ready while the
// audit trail is losing records the PBX needs, or cannot be written.
var ErrAuditDegraded = errors.New("audit trail degraded")

// AuditLane is one of the AsyncAuditor's queues. Each lane has its own
// bound, so records of one lane can never take the room of another; the
// single writer drains the PBX lane first.
type AuditLane int

// The lanes. LaneHTTP carries the decisions of the HTTP check API (and is
// what AsyncAuditor.Audit queues on); LanePBX carries the decisions the
// PBX adapters enforce in the call path, where a record that cannot be
// queued turns an allow into a deny.
const (
	LaneHTTP AuditLane = iota
	LanePBX
	numLanes
)

// Lanes lists every lane, for metrics.
var Lanes = [...]AuditLane{LaneHTTP, LanePBX}

// String returns the lane's name as used in metrics and logs.
func (l AuditLane) String() string {
	switch l {
	case LaneHTTP:
		return "http"
	case LanePBX:
		return "pbx"
	}
	return fmt.Sprintf("lane(%d)", int(l))
}

// AsyncAuditOptions configure an AsyncAuditor; zero values take defaults.
type AsyncAuditOptions struct {
	// QueueSize bounds the records waiting in the HTTP lane (default
	// 8192).
	QueueSize int
	// PBXQueueSize bounds the records waiting in the PBX lane (default
	// 2048). No number of HTTP records can use this room.
	PBXQueueSize int
	// DegradedFor is how long Ready keeps failing after a PBX-lane record
	// was dropped (default 30s), so a probe polling every few seconds
	// sees it.
	DegradedFor time.Duration
	// BatchSize is the most records written per round trip (default 256).
	BatchSize int
	// CallTimeout bounds one batch write (default 2s).
	CallTimeout time.Duration
	// RetryFor is how long a batch that fails is retried (with backoff
	// from 50ms to 1s) before it is dropped (default 10s). Meanwhile new
	// records queue, and are dropped once the queue is full.
	RetryFor time.Duration
	// Logger receives write failures and, at most once per second per
	// lane, how many records were dropped (default no-op).
	Logger *zap.Logger
}

// AsyncAuditor takes audit writes off the decision path: Audit queues the
// record and returns at once; one writer goroutine writes the queues in
// batches, so the hash chain is extended by a single writer in the order
// it takes records. Records wait in one of two lanes (AuditLane), each
// with its own bound: the PBX lane, drained first, and the HTTP lane. When
// a lane is full the record is dropped and counted per lane (DroppedIn):
// an audit record is never worth delaying a decision for. For the HTTP API
// a dropped record changes no decision; the PBX adapters refuse an allow
// they cannot audit, which is why a flood of HTTP checks must never fill
// the PBX lane. Within a lane records keep their order; across lanes the
// chain order is the order the writer took them (PBX first). Run writes;
// Close flushes what is queued within its context's deadline.
type AsyncAuditor struct {
	next  enforce.Auditor
	batch enforce.BatchAuditor // next, when it can batch
	opts  AsyncAuditOptions
	log   *zap.Logger

	// mu guards closed, started and sending on the lanes: Audit holds it
	// shared, Close exclusively, so no record is queued after the
	// writer's last drain.
	mu      sync.RWMutex
	closed  bool
	started bool
	q       [numLanes]chan enforce.AuditRecord

	dropped [numLanes]atomic.Uint64
	written atomic.Uint64
	// lastPBXDrop is when a PBX-lane record was last dropped (UnixNano),
	// 0 if never; failingSince is when the current run of failed writes
	// began (UnixNano), 0 while writes succeed. Ready reads both.
	lastPBXDrop, failingSince atomic.Int64
	// plain is the writer's buffer of the records of one batch, without
	// their lanes; only the writer goroutine touches it.
	plain []enforce.AuditRecord
	// ctx is cancelled when Close gives up waiting, aborting a write.
	ctx    context.Context
	cancel context.CancelFunc
	// writerDone is closed when the writer has stopped, done when the drop
	// reporter has too (after its last report).
	writerDone, done chan struct{}
}

// NewAsyncAuditor returns an auditor in front of next. It starts nothing:
// records queue until Run writes them; Close stops it.
func NewAsyncAuditor(next enforce.Auditor, opts AsyncAuditOptions) *AsyncAuditor {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.PBXQueueSize <= 0 {
		opts.PBXQueueSize = 2048
	}
	if opts.DegradedFor <= 0 {
		opts.DegradedFor = 30 * time.Second
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
		writerDone: make(chan struct{}), done: make(chan struct{})}
	a.q[LaneHTTP] = make(chan enforce.AuditRecord, opts.QueueSize)
	a.q[LanePBX] = make(chan enforce.AuditRecord, opts.PBXQueueSize)
	a.batch, _ = next.(enforce.BatchAuditor)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// Run writes the queued records, one batch at a time, and reports drops,
// until Close has been called and the queues are written (or Close gave
// up), then returns nil. When ctx is done first, it stops as a Close
// whose deadline has passed: it accepts no more records, aborts the write
// in progress and drops (and counts) what is still queued. A second call,
// or a call after Close, returns nil at once.
func (a *AsyncAuditor) Run(ctx context.Context) error {
	if !a.start() {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		a.stopAccepting()
		a.cancel()
	})
	defer stop()
	a.work()
	return nil
}

// start reports whether the caller is the first to start the writer.
func (a *AsyncAuditor) start() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	first := !a.started
	a.started = true
	return first
}

// work runs the writer and the drop reporter until both have stopped.
func (a *AsyncAuditor) work() {
	go a.reportDrops()
	a.run()
	<-a.done
}

// stopAccepting closes the lanes, once: the writer drains them and stops.
func (a *AsyncAuditor) stopAccepting() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		for _, q := range a.q {
			close(q)
		}
	}
}

// Audit implements enforce.Auditor on the HTTP lane: it queues r without
// waiting, or drops it (ErrAuditDropped) when the lane is full or the
// auditor closed.
func (a *AsyncAuditor) Audit(_ context.Context, r enforce.AuditRecord) error {
	return a.enqueue(LaneHTTP, r)
}

// Lane returns an enforce.Auditor that queues on lane l.
func (a *AsyncAuditor) Lane(l AuditLane) enforce.Auditor {
	if l < 0 || l >= numLanes {
		l = LaneHTTP
	}
	return laneAuditor{a: a, lane: l}
}

// laneAuditor queues on one lane of an AsyncAuditor.
type laneAuditor struct {
	a    *AsyncAuditor
	lane AuditLane
}

// Audit implements enforce.Auditor.
func (l laneAuditor) Audit(_ context.Context, r enforce.AuditRecord) error {
	return l.a.enqueue(l.lane, r)
}

func (a *AsyncAuditor) enqueue(l AuditLane, r enforce.AuditRecord) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		select {
		case a.q[l] <- r:
			return nil
		default:
		}
	}
	a.dropped[l].Add(1)
	if l == LanePBX {
		a.lastPBXDrop.Store(time.Now().UnixNano())
	}
	if a.closed {
		return fmt.Errorf("%w: auditor closed", ErrAuditDropped)
	}
	return fmt.Errorf("%w: %s lane full (%d records)", ErrAuditDropped, l, cap(a.q[l]))
}

// Dropped returns the number of records dropped since the start, in every
// lane.
func (a *AsyncAuditor) Dropped() uint64 {
	var n uint64
	for l := range numLanes {
		n += a.dropped[l].Load()
	}
	return n
}

// DroppedIn returns the number of records of lane l dropped since the
// start. Records lost by a failed write are counted in the lane they came
// from.
func (a *AsyncAuditor) DroppedIn(l AuditLane) uint64 {
	if l < 0 || l >= numLanes {
		return 0
	}
	return a.dropped[l].Load()
}

// Written returns the number of records written since the start.
func (a *AsyncAuditor) Written() uint64 { return a.written.Load() }

// Queued returns the number of records waiting to be written, in every
// lane.
func (a *AsyncAuditor) Queued() int { return len(a.q[LaneHTTP]) + len(a.q[LanePBX]) }

// QueuedIn returns the number of records of lane l waiting to be written.
func (a *AsyncAuditor) QueuedIn(l AuditLane) int {
	if l < 0 || l >= numLanes {
		return 0
	}
	return len(a.q[l])
}

// Ready returns an error wrapping ErrAuditDegraded while the audit trail
// cannot serve the PBX: a PBX-lane record was dropped less than
// DegradedFor ago (the adapters are refusing allows they cannot audit), or
// the last write to the store failed and no write has succeeded since.
// HTTP-lane drops alone leave it ready: they lose evidence of answers
// already given, but change no enforcement, and a flood of checks must not
// take the daemon out of service.
func (a *AsyncAuditor) Ready() error {
	if since := a.failingSince.Load(); since != 0 {
		return fmt.Errorf("%w: audit writes failing for %s", ErrAuditDegraded, time.Since(time.Unix(0, since)).Round(time.Millisecond))
	}
	if last := a.lastPBXDrop.Load(); last != 0 {
		if ago := time.Since(time.Unix(0, last)); ago < a.opts.DegradedFor {
			return fmt.Errorf("%w: pbx lane dropped a record %s ago (%d in all)", ErrAuditDegraded, ago.Round(time.Millisecond), a.dropped[LanePBX].Load())
		}
	}
	return nil
}

// Close stops accepting records and waits until the queue is written (by
// Run, or by Close itself when Run was never called) or ctx ends; records
// still unwritten then are dropped and counted, and the error says how
// many. It is safe to call more than once.
func (a *AsyncAuditor) Close(ctx context.Context) error {
	if a.start() {
		go a.work()
	}
	a.stopAccepting()
	before := a.Dropped()
	select {
	case <-a.done:
	case <-ctx.Done():
		a.cancel()
		<-a.done
	}
	a.cancel()
	if n := a.Dropped() - before; n > 0 {
		return fmt.Errorf("audit flush: %d records not written: %w", n, ErrAuditDropped)
	}
	return nil
}

// lanedRecord is a record and the lane it came from, so a record lost by a
// failed write is counted in its own lane.
type lanedRecord struct {
	lane AuditLane
	rec  enforce.AuditRecord
}

// run is the single writer: it takes what is queued, PBX lane first, up to
// BatchSize, and writes it, until every lane is closed and empty.
func (a *AsyncAuditor) run() {
	defer close(a.writerDone)
	// open holds the lanes not yet closed and drained; a nil channel is
	// never selected.
	open := a.q
	buf := make([]lanedRecord, 0, a.opts.BatchSize)
	for {
		buf = a.take(buf[:0], &open)
		if len(buf) == 0 {
			if open[LanePBX] == nil && open[LaneHTTP] == nil {
				return
			}
			if buf = wait(buf, &open); len(buf) == 0 {
				continue // a lane closed
			}
			buf = a.take(buf, &open)
		}
		a.write(buf)
	}
}

// reportDrops logs the drops of each lane at most once a second, until
// the writer has stopped; then it reports the last ones and closes done.
// It is apart from the writer so drops are reported while the writer is
// stuck on a slow store, which is when they happen.
func (a *AsyncAuditor) reportDrops() {
	defer close(a.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var reported [numLanes]uint64
	for {
		select {
		case <-tick.C:
			a.report(&reported)
		case <-a.writerDone:
			a.report(&reported)
			return
		}
	}
}

// take appends to buf, up to BatchSize, what is queued without waiting:
// the PBX lane first, then the HTTP lane. A lane found closed and empty
// is set to nil in open.
func (a *AsyncAuditor) take(buf []lanedRecord, open *[numLanes]chan enforce.AuditRecord) []lanedRecord {
	for _, l := range [...]AuditLane{LanePBX, LaneHTTP} {
		for len(buf) < a.opts.BatchSize && open[l] != nil {
			select {
			case r, ok := <-open[l]:
				if more := received(buf, open, l, r, ok); len(more) > len(buf) {
					buf = more
					continue
				}
			default:
			}
			break
		}
	}
	return buf
}

// wait blocks until either open lane has a record or closes, and files
// what it got with received.
func wait(buf []lanedRecord, open *[numLanes]chan enforce.AuditRecord) []lanedRecord {
	var (
		l  AuditLane
		r  enforce.AuditRecord
		ok bool
	)
	select {
	case r, ok = <-open[LanePBX]:
		l = LanePBX
	case r, ok = <-open[LaneHTTP]:
		l = LaneHTTP
	}
	return received(buf, open, l, r, ok)
}

// received files one receive from lane l: the record appended to buf, or,
// when the lane is closed and drained, the lane set to nil in open.
func received(buf []lanedRecord, open *[numLanes]chan enforce.AuditRecord, l AuditLane, r enforce.AuditRecord, ok bool) []lanedRecord {
	if !ok {
		open[l] = nil
		return buf
	}
	return append(buf, lanedRecord{l, r})
}

// report logs, per lane, the records dropped since the last report.
func (a *AsyncAuditor) report(reported *[numLanes]uint64) {
	for l := range numLanes {
		if d := a.dropped[l].Load(); d != reported[l] {
			a.log.Warn("audit records dropped", zap.Stringer("lane", l), zap.Uint64("dropped", d-reported[l]), zap.Uint64("dropped_total", d))
			reported[l] = d
		}
	}
}

// write writes recs in order, retrying the unwritten rest with backoff for
// up to RetryFor, then drops it.
func (a *AsyncAuditor) write(recs []lanedRecord) {
	deadline := time.Now().Add(a.opts.RetryFor)
	backoff := 50 * time.Millisecond
	for len(recs) > 0 {
		n, err := a.writeOnce(recs)
		a.written.Add(uint64(n))
		recs = recs[n:]
		if err == nil {
			a.failingSince.Store(0)
			continue
		}
		a.failingSince.CompareAndSwap(0, time.Now().UnixNano())
		if time.Now().After(deadline) || a.ctx.Err() != nil {
			for _, r := range recs {
				a.dropped[r.lane].Add(1)
				if r.lane == LanePBX {
					a.lastPBXDrop.Store(time.Now().UnixNano())
				}
			}
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

func (a *AsyncAuditor) writeOnce(recs []lanedRecord) (int, error) {
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.CallTimeout)
	defer cancel()
	if a.batch != nil {
		a.plain = a.plain[:0]
		for _, r := range recs {
			a.plain = append(a.plain, r.rec)
		}
		return a.batch.AuditBatch(ctx, a.plain)
	}
	for i, r := range recs {
		if err := a.next.Audit(ctx, r.rec); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}
