package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

// gatedAudit is a memory.AuditLog whose writes can be held, or failed.
type gatedAudit struct {
	*memory.AuditLog
	gate  chan struct{} // writes wait for it while it is open (non-nil)
	fails atomic.Int64  // the next n writes fail
}

func (g *gatedAudit) Audit(ctx context.Context, r enforce.AuditRecord) error {
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.fails.Add(-1) >= 0 {
		return fmt.Errorf("dial: %w", enforce.ErrUnavailable)
	}
	return g.AuditLog.Audit(ctx, r)
}

func rec(i int) enforce.AuditRecord {
	return enforce.AuditRecord{Time: time.Unix(int64(i), 0), Source: "http", User: "alice", Action: "monitor.listen",
		Decision: "deny", Reason: "out_of_scope", Detail: strconv.Itoa(i)}
}

func TestAsyncAuditor(t *testing.T) {
	t.Run("records are written in order into one intact chain", func(t *testing.T) {
		mem := memory.NewAuditLog(memory.AuditOptions{})
		a := running(cache.NewAsyncAuditor(mem, cache.AsyncAuditOptions{BatchSize: 7}))
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 250 {
					if err := a.Audit(context.Background(), rec(w*1000+i)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if err := a.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if res := enforce.VerifyEntries(mem.Entries()); !res.OK() || res.Checked != 1000 {
			t.Fatalf("chain after flush: %+v", res)
		}
		if a.Written() != 1000 || a.Dropped() != 0 {
			t.Fatalf("written %d dropped %d", a.Written(), a.Dropped())
		}
	})
	t.Run("a full queue drops and counts, without waiting", func(t *testing.T) {
		g := &gatedAudit{AuditLog: memory.NewAuditLog(memory.AuditOptions{}), gate: make(chan struct{})}
		a := running(cache.NewAsyncAuditor(g, cache.AsyncAuditOptions{QueueSize: 4, BatchSize: 1}))
		var dropped int
		start := time.Now()
		for i := range 20 {
			if err := a.Audit(context.Background(), rec(i)); errors.Is(err, cache.ErrAuditDropped) {
				dropped++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Audit waited %s on a held store", took)
		}
		// One record is held by the writer, four queue: the rest drop.
		if dropped < 15 || a.Dropped() != uint64(dropped) {
			t.Fatalf("%d drops returned, %d counted; want at least 15, the same", dropped, a.Dropped())
		}
		close(g.gate)
		if err := a.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if got := len(g.Entries()); got != 20-dropped {
			t.Fatalf("%d records written, want %d", got, 20-dropped)
		}
	})
	t.Run("a transient store failure is retried", func(t *testing.T) {
		g := &gatedAudit{AuditLog: memory.NewAuditLog(memory.AuditOptions{})}
		g.fails.Store(3)
		a := running(cache.NewAsyncAuditor(g, cache.AsyncAuditOptions{}))
		for i := range 10 {
			if err := a.Audit(context.Background(), rec(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if res := enforce.VerifyEntries(g.Entries()); !res.OK() || res.Checked != 10 || a.Dropped() != 0 {
			t.Fatalf("after retries: %+v, dropped %d", res, a.Dropped())
		}
	})
	t.Run("a store down for longer than RetryFor loses the batch, counted", func(t *testing.T) {
		g := &gatedAudit{AuditLog: memory.NewAuditLog(memory.AuditOptions{})}
		g.fails.Store(1 << 40)
		a := running(cache.NewAsyncAuditor(g, cache.AsyncAuditOptions{RetryFor: 100 * time.Millisecond}))
		for i := range 5 {
			_ = a.Audit(context.Background(), rec(i))
		}
		// The batch may be given up before or during Close.
		if err := a.Close(testContext(t)); err != nil && !errors.Is(err, cache.ErrAuditDropped) {
			t.Fatalf("Close = %v", err)
		}
		if a.Dropped() != 5 || len(g.Entries()) != 0 {
			t.Fatalf("dropped %d, written %d", a.Dropped(), len(g.Entries()))
		}
	})
	t.Run("close gives up at its deadline and says what it dropped", func(t *testing.T) {
		g := &gatedAudit{AuditLog: memory.NewAuditLog(memory.AuditOptions{}), gate: make(chan struct{})}
		a := running(cache.NewAsyncAuditor(g, cache.AsyncAuditOptions{BatchSize: 1}))
		for i := range 3 {
			if err := a.Audit(context.Background(), rec(i)); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := a.Close(ctx)
		if !errors.Is(err, cache.ErrAuditDropped) || a.Dropped() != 3 {
			t.Fatalf("Close = %v, dropped %d; want ErrAuditDropped, 3", err, a.Dropped())
		}
		if err := a.Audit(context.Background(), rec(9)); !errors.Is(err, cache.ErrAuditDropped) {
			t.Fatalf("Audit after Close = %v, want ErrAuditDropped", err)
		}
	})
}
