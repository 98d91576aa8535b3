package storetest

import (
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// RunWatchdogStore runs the contract of an enforce.WatchdogStore on real
// time (leases of 150ms); newStore returns an empty store of its own for
// each subtest.
func RunWatchdogStore(t *testing.T, newStore func(t *testing.T) enforce.WatchdogStore) {
	const ttl = 150 * time.Millisecond
	acquire := func(t *testing.T, s enforce.WatchdogStore, holder string) bool {
		t.Helper()
		cur, err := s.AcquireLease(testContext(t), "watchdog:pbx1", holder, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s): %v", holder, err)
		}
		if cur == "" {
			t.Fatalf("AcquireLease(%s) names no holder", holder)
		}
		return cur == holder
	}

	t.Run("one holder at a time; the holder renews", func(t *testing.T) {
		s := newStore(t)
		if !acquire(t, s, "a") {
			t.Fatal("a did not take a free lease")
		}
		if acquire(t, s, "b") {
			t.Fatal("b took a's unexpired lease")
		}
		for range 4 { // 4 x 50ms > ttl: only the renewals keep it a's
			time.Sleep(ttl / 3)
			if !acquire(t, s, "a") {
				t.Fatal("a could not renew its own lease")
			}
			if acquire(t, s, "b") {
				t.Fatal("b took a renewed lease")
			}
		}
	})

	t.Run("a lease not renewed is taken over once it expires", func(t *testing.T) {
		s := newStore(t)
		acquire(t, s, "a")
		start := time.Now()
		for !acquire(t, s, "b") {
			if time.Since(start) > 5*ttl {
				t.Fatal("b never took the expired lease")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if waited := time.Since(start); waited < ttl-20*time.Millisecond {
			t.Fatalf("b took the lease after %v, before its ttl %v", waited, ttl)
		}
		if acquire(t, s, "a") {
			t.Fatal("a took back the lease b now holds")
		}
	})

	t.Run("a released lease is free at once, and only its holder releases it", func(t *testing.T) {
		s := newStore(t)
		acquire(t, s, "a")
		if err := s.ReleaseLease(testContext(t), "watchdog:pbx1", "b"); err != nil {
			t.Fatal(err)
		}
		if acquire(t, s, "b") {
			t.Fatal("b released a's lease")
		}
		if err := s.ReleaseLease(testContext(t), "watchdog:pbx1", "a"); err != nil {
			t.Fatal(err)
		}
		if !acquire(t, s, "b") {
			t.Fatal("b could not take a released lease")
		}
	})

	t.Run("an allowance lets its action through once, for its channel only", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		if err := s.PutAllowance(ctx, "chan-1", enforce.MonitorListen, time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			channel string
			action  enforce.Action
			want    bool
		}{
			{"chan-2", enforce.MonitorListen, false},
			{"chan-1", enforce.MonitorBarge, false},
			{"chan-1", enforce.MonitorListen, true},
			{"chan-1", enforce.MonitorListen, false},
		} {
			got, err := s.TakeAllowance(ctx, c.channel, c.action, time.Minute)
			if err != nil || got != c.want {
				t.Fatalf("TakeAllowance(%s, %v) = %v, %v; want %v", c.channel, c.action, got, err, c.want)
			}
		}
	})

	t.Run("two allowances let two runs through; an expired one none", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		for range 2 {
			if err := s.PutAllowance(ctx, "chan-1", enforce.RecordingStart, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutAllowance(ctx, "chan-9", enforce.RecordingStart, ttl); err != nil {
			t.Fatal(err)
		}
		for i, want := range []bool{true, true, false} {
			if got, err := s.TakeAllowance(ctx, "chan-1", enforce.RecordingStart, time.Minute); err != nil || got != want {
				t.Fatalf("take %d = %v, %v; want %v", i+1, got, err, want)
			}
		}
		time.Sleep(ttl + 50*time.Millisecond)
		if got, err := s.TakeAllowance(ctx, "chan-9", enforce.RecordingStart, time.Minute); err != nil || got {
			t.Fatalf("an expired allowance was taken: %v, %v", got, err)
		}
	})

	t.Run("a taken allowance is remembered as used for its keep, an untaken one not", func(t *testing.T) {
		s := newStore(t)
		ctx := testContext(t)
		for _, ch := range []string{"chan-1", "chan-2"} {
			if err := s.PutAllowance(ctx, ch, enforce.MonitorListen, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.TakeAllowance(ctx, "chan-1", enforce.MonitorListen, ttl); err != nil || !ok {
			t.Fatalf("TakeAllowance = %v, %v", ok, err)
		}
		used := func(ch string, action enforce.Action) bool {
			t.Helper()
			u, err := s.AllowanceUsed(ctx, ch, action)
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		if !used("chan-1", enforce.MonitorListen) || used("chan-1", enforce.MonitorBarge) || used("chan-2", enforce.MonitorListen) {
			t.Fatal("AllowanceUsed does not tell the taken allowance from the others")
		}
		time.Sleep(ttl + 50*time.Millisecond)
		if used("chan-1", enforce.MonitorListen) {
			t.Fatal("a use is remembered past its keep")
		}
	})
}
