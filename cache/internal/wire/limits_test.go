package wire

import (
	"testing"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

func TestGrantLimitsRoundTrip(t *testing.T) {
	p := enforce.Policy{Profiles: []enforce.Profile{{Name: "sup", Grants: []enforce.Grant{
		{Actions: enforce.NewActionSet(enforce.MonitorListen, enforce.RecordingStart, enforce.RecordingPause),
			MaxDuration: 30 * time.Minute, MaxPause: 90 * time.Second},
	}}}}
	enc, err := EncodePolicy(p)
	if err != nil {
		t.Fatalf("EncodePolicy: %v", err)
	}
	got, _, err := DecodePolicy(enc.Profiles, enc.Users, enc.Protected)
	if err != nil {
		t.Fatalf("DecodePolicy: %v", err)
	}
	if g := got.Profiles[0].Grants[0]; g.MaxDuration != 30*time.Minute || g.MaxPause != 90*time.Second {
		t.Errorf("limits after a round trip: max_duration %v, max_pause %v", g.MaxDuration, g.MaxPause)
	}
	t.Run("an unparseable stored limit refuses the load", func(t *testing.T) {
		profiles := map[string]string{"sup": `{"name":"sup","grants":[{"actions":["monitor.listen"],"max_duration":"soon"}]}`}
		if _, _, err := DecodePolicy(profiles, nil, ""); err == nil {
			t.Error("a max_duration of \"soon\" decoded")
		}
	})
}
