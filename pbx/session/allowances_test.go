package session

import (
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestWatchdogLetsAChanSpyRunAfterAnAllowingCheckOnce(t *testing.T) {
	var a Allowances
	a.Allow("c1", enforce.MonitorListen)
	if a.Consume("c1", enforce.MonitorBarge) {
		t.Fatal("a listen check allowed a barging ChanSpy")
	}
	if !a.Consume("c1", enforce.MonitorListen) {
		t.Fatal("the allowed ChanSpy was not let through")
	}
	if a.Consume("c1", enforce.MonitorListen) {
		t.Fatal("one check let two ChanSpys through")
	}
}

func TestAllowanceExpiresAndEndsWithItsChannel(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a := Allowances{Now: func() time.Time { return now }}
	a.Allow("c1", enforce.RecordingStart)
	now = now.Add(AllowanceTTL)
	if a.Consume("c1", enforce.RecordingStart) {
		t.Error("an allowance was used a minute after its check")
	}
	a.Allow("c2", enforce.RecordingStart)
	a.Forget("c2")
	if a.Consume("c2", enforce.RecordingStart) {
		t.Error("an allowance outlived its channel")
	}
}
