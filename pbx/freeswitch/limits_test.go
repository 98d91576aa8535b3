package freeswitch

import (
	"strings"
	"testing"
	"time"

	"github.com/callwarden/callwarden/config"
	"github.com/callwarden/callwarden/enforce"
)

// The administrator's grant, limited to 100 ms: the session ends by itself,
// as on an administrator's end, with cause max_duration.
func TestMonitorEndsAtItsGrantsMaxDuration(t *testing.T) {
	p, err := config.LoadProfiles("../../deploy/examples/profiles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p.Profiles[0].Grants[0].MaxDuration = 100 * time.Millisecond // administrator
	snap, err := enforce.NewSnapshot(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	log := &auditLog{}
	a := MustAdapter(t, snap, log)
	began := time.Now()
	got := strings.Join(playMonitor(t, a.Addr().String(), monitorReply(t, "listen", "2001"), channelsJSON("PJSIP/2001-00000007"), holdOn), "|")
	if took := time.Since(began); took < 100*time.Millisecond || !strings.Contains(got, "api uuid_break "+uuid+" all") || !strings.Contains(got, "api uuid_kill "+uuid) {
		t.Errorf("after %v, commands %q: want the eavesdrop broken and the supervisor hung up after 100ms", took, got)
	}
	if end := waitRecords(t, log, 3)[2]; end.Outcome != enforce.OutcomeEnded || end.Cause != enforce.CauseMaxDuration || !strings.Contains(end.Detail, "max_duration 100ms reached") {
		t.Errorf("end record %+v", end)
	}
}
