package freeswitch

import (
	"context"
	"errors"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwarden/callwarden/cache/memory"
	"github.com/callwarden/callwarden/enforce"
	"github.com/callwarden/callwarden/pbx/session"
)

// sharedWatchdog is a test watchdog of one of several daemons sharing
// store; acting says whether it holds the lease.
func sharedWatchdog(t *testing.T, store enforce.WatchdogStore, acting *bool) *testWatchdog {
	t.Helper()
	tw := newTestWatchdog(t, session.WatchdogEnforce)
	tw.shared = session.SharedAllowances{Store: store, Timeout: time.Second}
	tw.acting = func() bool { tw.mu.Lock(); defer tw.mu.Unlock(); return *acting }
	return tw
}

// eavesdropBy is the transcript's eavesdrop, run by channel spy.
func eavesdropBy(ev Event, spy string) Event {
	h := map[string]string{}
	for k, v := range ev.Headers {
		h[k] = v
	}
	h[textproto.CanonicalMIMEHeaderKey("Unique-ID")] = spy
	return eventFromHeaders(h)
}

func TestSharedWatchdogHonoursEveryDaemonsAllowances(t *testing.T) {
	execEv, _, recEv, _ := watchdogEvents(t)
	store := memory.NewWatchdog()
	holds, passive := true, false
	holder := sharedWatchdog(t, store, &holds)
	other := sharedWatchdog(t, store, &passive)

	// The other daemon answered a check for the spy leg, and started a
	// recording of the target itself: both allowances are in the store.
	other.allow(spyUUID, enforce.MonitorListen)
	other.allow(targetUUID, enforce.RecordingStart)
	// Its own watchdog is passive: it judges nothing.
	if got := other.feed(execEv, recEv); got != "" {
		t.Fatalf("a passive watchdog sent %q", got)
	}
	// The holder sees them: another daemon's allowances let them through.
	if got := holder.feed(execEv, recEv); got != "" {
		t.Fatalf("the holder stopped what another daemon allowed: %q", got)
	}
	if recs := holder.log.All(); len(recs) != 0 {
		t.Fatalf("records %+v, want none", recs)
	}
	// Each allowance let one application through: the next eavesdrop of
	// that leg is a bypass.
	if got := holder.feed(eavesdropBy(execEv, spyUUID)); got != "uuid_kill "+spyUUID {
		t.Fatalf("commands %q, want the second eavesdrop hung up", got)
	}

	t.Run("its own allowance is taken from the store too", func(t *testing.T) {
		holder.allow("own-spy", enforce.MonitorWhisper)
		holder.feed(eavesdropBy(execEv, "own-spy"))
		if ok, err := store.TakeAllowance(context.Background(), "own-spy", enforce.MonitorWhisper, time.Minute); err != nil || ok {
			t.Errorf("TakeAllowance after the holder used its own = %v, %v; want none left for another holder", ok, err)
		}
	})
}

// failingStore is a watchdog store that cannot be reached.
type failingStore struct{ enforce.WatchdogStore }

var errStoreDown = errors.New("store down")

func (failingStore) TakeAllowance(context.Context, string, enforce.Action, time.Duration) (bool, error) {
	return false, errStoreDown
}

func (failingStore) PutAllowance(context.Context, string, enforce.Action, time.Duration) error {
	return errStoreDown
}

func TestSharedWatchdogFailsClosedWhenTheStoreIsDown(t *testing.T) {
	execEv, _, _, _ := watchdogEvents(t)
	holds := true
	tw := sharedWatchdog(t, failingStore{}, &holds)
	if got := tw.feed(execEv); got != "uuid_kill "+spyUUID {
		t.Fatalf("commands %q, want the eavesdrop hung up: an allowance that cannot be read is none", got)
	}
	// Its own allowance still counts: it is kept locally as well.
	tw.allow("own-spy", enforce.MonitorListen)
	if got := tw.feed(eavesdropBy(execEv, "own-spy")); strings.Contains(got, "own-spy") {
		t.Fatalf("commands %q: the daemon's own allowance was not honoured", got)
	}
}

func TestTakingTheLeaseOverJudgesWhatStartedMeanwhile(t *testing.T) {
	execEv, _, recEv, _ := watchdogEvents(t)
	store := memory.NewWatchdog()
	ctx := context.Background()
	acting := false
	tw := sharedWatchdog(t, store, &acting)
	// While another daemon held the lease: four eavesdrops start. One was
	// allowed by a check and let through by the previous holder, one
	// allowed and not seen by it, one allowed by nobody, and one allowed
	// by nobody ends before the take-over.
	for _, ch := range []string{"spy-used", "spy-unused"} {
		if err := store.PutAllowance(ctx, ch, enforce.MonitorBarge, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := store.TakeAllowance(ctx, "spy-used", enforce.MonitorBarge, time.Minute); err != nil || !ok {
		t.Fatalf("TakeAllowance = %v, %v", ok, err)
	}
	ended := eavesdropBy(execEv, "spy-ended")
	done := chanEvent("CHANNEL_EXECUTE_COMPLETE", "spy-ended", "Application: eavesdrop")
	if got := tw.feed(eavesdropBy(execEv, "spy-used"), eavesdropBy(execEv, "spy-unused"), eavesdropBy(execEv, "spy-rogue"), ended, done, recEv); got != "" {
		t.Fatalf("a passive watchdog sent %q", got)
	}
	// This daemon takes the lease over.
	tw.mu.Lock()
	acting = true
	tw.mu.Unlock()
	tw.sweep()
	tw.settle()
	got := tw.commands()
	for _, want := range []string{"uuid_kill spy-rogue", "uuid_record " + targetUUID + " stop " + recPath} {
		if !strings.Contains(got, want) {
			t.Errorf("commands %q, want %q", got, want)
		}
	}
	for _, not := range []string{"spy-used", "spy-unused", "spy-ended"} {
		if strings.Contains(got, not) {
			t.Errorf("commands %q: %s was allowed or had ended", got, not)
		}
	}
	// A second sweep judges nothing again.
	tw.sweep()
	tw.settle()
	if again := tw.commands(); again != got {
		t.Errorf("a second sweep sent %q", strings.TrimPrefix(again, got))
	}
}

func TestOneOfTwoDaemonsWatchesAndTheOtherTakesOver(t *testing.T) {
	store := memory.NewWatchdog()
	snap := mustExampleSnapshot(t)
	cutA := &cuttable{WatchdogStore: store}
	a := MustAdapter(t, snap, &auditLog{}, func(o *Options) {
		o.Shared, o.Instance, o.LeaseTTL, o.LeaseRenew, o.Now = cutA, "a", 300*time.Millisecond, 100*time.Millisecond, time.Now
	})
	if !eventually(2*time.Second, a.WatchdogActive) {
		t.Fatal("the first daemon never took the lease")
	}
	logB := &auditLog{}
	fake := newFakeESL(t, func(_ int, cmd string) (string, time.Duration) {
		if cmd == "show channels as json" {
			return noChannels, 0
		}
		return "+OK", 0
	})
	bctx, stopB := context.WithCancel(context.Background())
	b, err := New(Options{ESLAddress: fake.addr(), ESLPassword: "ClueCon", OutboundListen: "127.0.0.1:0", PBX: "fs1",
		Timeout: time.Second, Snapshot: func() *enforce.Snapshot { return snap }, Auditor: logB,
		Shared: store, Instance: "b", LeaseTTL: 300 * time.Millisecond, LeaseRenew: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bdone := make(chan struct{})
	go func() { defer close(bdone); _ = b.Run(bctx) }()
	t.Cleanup(func() { stopB(); <-bdone })
	time.Sleep(400 * time.Millisecond) // more than a TTL: b has tried several times
	if b.WatchdogActive() || !a.WatchdogActive() {
		t.Fatalf("active: a %v, b %v; want a alone", a.WatchdogActive(), b.WatchdogActive())
	}
	// a stops renewing (its store calls fail as if it were cut off):
	// b takes the lease within a TTL and a renewal, and audits it.
	cur, err := store.AcquireLease(context.Background(), "watchdog:freeswitch:fs1", "a", time.Millisecond)
	if err != nil || cur != "a" {
		t.Fatalf("AcquireLease = %q, %v", cur, err)
	}
	cutA.cut.Store(true)
	if !eventually(2*time.Second, b.WatchdogActive) {
		t.Fatal("b never took the lease over")
	}
	if !eventually(2*time.Second, func() bool {
		for _, r := range logB.All() {
			if r.Reason == session.ReasonWatchdogLease && strings.Contains(r.Detail, "taken by b") {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no take-over record: %+v", logB.All())
	}
}

// cuttable is a store whose lease calls fail once cut.
type cuttable struct {
	enforce.WatchdogStore
	cut atomic.Bool
}

func (c *cuttable) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (string, error) {
	if c.cut.Load() {
		return "", errStoreDown
	}
	return c.WatchdogStore.AcquireLease(ctx, name, holder, ttl)
}

func TestATakeOverDoesNotJudgeAgainWhatThePreviousHolderAlreadyHungUp(t *testing.T) {
	execEv, _, _, _ := watchdogEvents(t)
	store := memory.NewWatchdog()
	acting := false
	tw := sharedWatchdog(t, store, &acting)
	// Two eavesdrops nobody allowed start while another daemon holds the
	// lease; that daemon hangs the first up and dies before this one sees
	// the hang-up (its events held for reordering).
	if got := tw.feed(eavesdropBy(execEv, "spy-killed"), eavesdropBy(execEv, "spy-running")); got != "" {
		t.Fatalf("a passive watchdog sent %q", got)
	}
	tw.act = func(_ context.Context, cmd string, args ...string) (string, error) {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		tw.cmds = append(tw.cmds, strings.Join(append([]string{cmd}, args...), " "))
		if cmd == "uuid_exists" {
			return strconv.FormatBool(args[0] != "spy-killed"), nil
		}
		return "+OK", nil
	}
	tw.mu.Lock()
	acting = true
	tw.mu.Unlock()
	tw.sweep()
	tw.settle()
	got := tw.commands()
	if strings.Contains(got, "uuid_kill spy-killed") || !strings.Contains(got, "uuid_kill spy-running") {
		t.Errorf("commands %q, want spy-running hung up and spy-killed (gone) left", got)
	}
	recs := tw.records(t, 1)
	wantWatchdogRecord(t, recs[0], "monitor.listen", "spy-running", "eavesdrop")
}
