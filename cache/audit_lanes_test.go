package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callwarden/callwarden/cache"
	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
)

// pbxRec is a record from the Asterisk adapter.
func pbxRec(i int) enforce.AuditRecord {
	r := rec(i)
	r.Source = "asterisk"
	return r
}

func TestAsyncAuditorLanes(t *testing.T) {
	t.Run("a flood of HTTP checks cannot take the capacity reserved for the PBX", func(t *testing.T) {
		core, logs := observer.New(zap.WarnLevel)
		g := &gatedAudit{AuditLog: memory.NewAuditLog(memory.AuditOptions{}), gate: make(chan struct{})}
		a := running(cache.NewAsyncAuditor(g, cache.AsyncAuditOptions{QueueSize: 8, PBXQueueSize: 4, BatchSize: 1,
			CallTimeout: time.Minute, Logger: zap.New(core)}))
		httpLane, pbxLane := a.Lane(cache.LaneHTTP), a.Lane(cache.LanePBX)
		ctx := context.Background()
		var httpDropped uint64
		for i := range 200 {
			if err := httpLane.Audit(ctx, rec(i)); errors.Is(err, cache.ErrAuditDropped) {
				httpDropped++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if httpDropped < 191 {
			t.Fatalf("%d HTTP records dropped; want the lane full (at least 191 of 200)", httpDropped)
		}
		// The PBX lane still takes its own 4 records: none becomes an
		// audit_unavailable deny in the adapter.
		for i := range 4 {
			if err := pbxLane.Audit(ctx, pbxRec(i)); err != nil {
				t.Fatalf("PBX record %d after an HTTP flood: %v; want it queued", i, err)
			}
		}
		if got := a.DroppedIn(cache.LaneHTTP); got != httpDropped {
			t.Errorf("HTTP lane counts %d drops, %d were returned", got, httpDropped)
		}
		if got := a.DroppedIn(cache.LanePBX); got != 0 {
			t.Errorf("PBX lane counts %d drops, want 0", got)
		}
		if err := a.Ready(); err != nil {
			t.Errorf("Ready = %v while only the HTTP lane drops; want nil", err)
		}
		waitFor(t, "the HTTP drops are logged", func() bool {
			for _, e := range logs.FilterMessage("audit records dropped").All() {
				if e.ContextMap()["lane"] == "http" {
					return true
				}
			}
			return false
		})

		// Past its own bound the PBX lane drops too, and the auditor says
		// it is not ready.
		var pbxDropped uint64
		for i := range 10 {
			if err := pbxLane.Audit(ctx, pbxRec(100+i)); errors.Is(err, cache.ErrAuditDropped) {
				pbxDropped++
			}
		}
		if pbxDropped < 9 || a.DroppedIn(cache.LanePBX) != pbxDropped {
			t.Fatalf("PBX lane: %d drops returned, %d counted; want at least 9, the same", pbxDropped, a.DroppedIn(cache.LanePBX))
		}
		if err := a.Ready(); !errors.Is(err, cache.ErrAuditDegraded) || !strings.Contains(err.Error(), "pbx") {
			t.Errorf("Ready = %v after PBX drops; want ErrAuditDegraded naming the pbx lane", err)
		}

		// Released, the writer drains the PBX lane first.
		close(g.gate)
		if err := a.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
		entries := g.Entries()
		if res := enforce.VerifyEntries(entries); !res.OK() {
			t.Fatalf("chain: %+v", res)
		}
		var httpBeforeLastPBX, pbx int
		for _, e := range entries {
			var r enforce.AuditRecord
			if err := json.Unmarshal(e.Raw, &r); err != nil {
				t.Fatal(err)
			}
			if r.Source == "asterisk" {
				pbx++
				continue
			}
			if pbx < 4 {
				httpBeforeLastPBX++
			}
		}
		if pbx < 4 || httpBeforeLastPBX > 1 {
			t.Errorf("%d PBX records written, %d HTTP records before them; want the PBX lane first (at most the one HTTP record the writer held)", pbx, httpBeforeLastPBX)
		}
	})
	t.Run("a store that cannot be written makes the auditor not ready until a write succeeds", func(t *testing.T) {
		g := &gatedAudit{AuditLog: memory.NewAuditLog(memory.AuditOptions{})}
		g.fails.Store(1 << 40)
		a := running(cache.NewAsyncAuditor(g, cache.AsyncAuditOptions{RetryFor: time.Minute}))
		if err := a.Ready(); err != nil {
			t.Fatalf("Ready = %v before any write", err)
		}
		if err := a.Lane(cache.LanePBX).Audit(context.Background(), rec(1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "Ready reports the failing writes", func() bool { return errors.Is(a.Ready(), cache.ErrAuditDegraded) })
		g.fails.Store(0)
		waitFor(t, "Ready recovers after a write succeeds", func() bool { return a.Ready() == nil })
		if err := a.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if len(g.Entries()) != 1 {
			t.Fatalf("%d records written, want 1", len(g.Entries()))
		}
	})
}
