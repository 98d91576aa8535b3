package wire

import (
	"errors"
	"testing"

	"github.com/callwarden/callwarden/enforce"
)

// The stored wire form is outside input: another callwarden version, or a
// hand edit, may have written it. These tests pin what an older daemon
// does with what it does not know: an unknown action can only be asked of
// a newer daemon, so dropping it narrows nothing and the rest loads; but
// anything else it does not know may restrict a grant, so it refuses the
// load (enforce.ErrCorrupt) rather than widen access.
func TestDecodePolicyFromANewerOrHandEditedStore(t *testing.T) {
	user := map[string]string{"alice": `{"id":"alice","profile":"sup","queues":["sales"]}`}
	t.Run("an unknown action is dropped and the rest of the grant loads", func(t *testing.T) {
		profiles := map[string]string{"sup": `{"name":"sup","grants":[` +
			`{"actions":["monitor.listen","monitor.teleport"],"scopes":{"queues":{"kind":"assigned"}}},` +
			`{"actions":["recording.playback"]}]}`}
		p, ignored, err := DecodePolicy(profiles, user, "")
		if err != nil {
			t.Fatalf("DecodePolicy: %v", err)
		}
		g := p.Profiles[0].Grants
		if len(g) != 2 || g[0].Actions != enforce.NewActionSet(enforce.MonitorListen) || g[1].Actions != enforce.NewActionSet(enforce.RecordingPlayback) {
			t.Fatalf("grants = %+v, want listen then playback", g)
		}
		if want := []IgnoredAction{{Profile: "sup", Grant: 0, Action: "monitor.teleport"}}; len(ignored) != 1 || ignored[0] != want[0] {
			t.Fatalf("ignored = %+v, want %+v", ignored, want)
		}
		if _, err := enforce.NewSnapshot(p, 1); err != nil {
			t.Fatalf("the decoded policy does not validate: %v", err)
		}
	})
	t.Run("a grant of unknown actions only grants nothing", func(t *testing.T) {
		profiles := map[string]string{"sup": `{"name":"sup","grants":[` +
			`{"actions":["monitor.teleport"],"profiles":["sup"],"scopes":{"queues":{"kind":"all"}}},` +
			`{"actions":["recording.playback"]}]}`}
		p, ignored, err := DecodePolicy(profiles, user, "")
		if err != nil {
			t.Fatalf("DecodePolicy: %v", err)
		}
		if g := p.Profiles[0].Grants; len(g) != 1 || g[0].Actions != enforce.NewActionSet(enforce.RecordingPlayback) {
			t.Fatalf("grants = %+v, want playback only", g)
		}
		if len(ignored) != 1 || ignored[0].Action != "monitor.teleport" {
			t.Fatalf("ignored = %+v", ignored)
		}
		if _, err := enforce.NewSnapshot(p, 1); err != nil {
			t.Fatalf("the decoded policy does not validate: %v", err)
		}
	})
	t.Run("profiles of a delegation whose profile.assign is unknown are dropped with it", func(t *testing.T) {
		profiles := map[string]string{"sup": `{"name":"sup","grants":[{"actions":["profile.revoke","monitor.listen"],"profiles":["sup"]}]}`}
		p, _, err := DecodePolicy(profiles, user, "")
		if err != nil {
			t.Fatalf("DecodePolicy: %v", err)
		}
		if _, err := enforce.NewSnapshot(p, 1); err != nil {
			t.Fatalf("the decoded policy does not validate: %v", err)
		}
	})
	for name, tt := range map[string]struct{ profile, user string }{
		"an unknown scope dimension":    {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"],"scopes":{"regions":{"kind":"list","values":["eu"]}}}]}`},
		"an unknown scope kind":         {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"],"scopes":{"queues":{"kind":"supervised"}}}]}`},
		"an unknown day":                {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"],"hours":{"days":["holiday"],"from":0,"to":60}}]}`},
		"an unknown field in a grant":   {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"],"callers_within":["+33"]}]}`},
		"an unknown field in a scope":   {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"],"scopes":{"queues":{"kind":"all","except":["vip"]}}}]}`},
		"an unknown field in hours":     {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"],"hours":{"days":["mon"],"from":0,"to":60,"holidays":"fr"}}]}`},
		"an unknown field in a profile": {profile: `{"name":"sup","max_duration":"5m","grants":[{"actions":["monitor.listen"]}]}`},
		"an unknown field in a user":    {profile: `{"name":"sup","grants":[{"actions":["monitor.listen"]}]}`, user: `{"id":"alice","profile":"sup","suspended":true}`},
	} {
		t.Run(name+" refuses the load", func(t *testing.T) {
			users := user
			if tt.user != "" {
				users = map[string]string{"alice": tt.user}
			}
			_, _, err := DecodePolicy(map[string]string{"sup": tt.profile}, users, "")
			if !errors.Is(err, enforce.ErrCorrupt) {
				t.Fatalf("DecodePolicy = %v, want enforce.ErrCorrupt", err)
			}
		})
	}
	t.Run("an unknown field in the protected entry refuses the load", func(t *testing.T) {
		_, _, err := DecodePolicy(nil, nil, `{"users":["ceo"],"teams":["board"]}`)
		if !errors.Is(err, enforce.ErrCorrupt) {
			t.Fatalf("DecodePolicy = %v, want enforce.ErrCorrupt", err)
		}
	})
}

// FuzzDecodePolicy: whatever a store holds, decoding returns a policy or
// an error, never panics; an error is classified enforce.ErrCorrupt; a policy
// round-trips through the wire form; an ignored action is one this
// version does not know.
func FuzzDecodePolicy(f *testing.F) {
	f.Add(`{"name":"sup","grants":[{"actions":["monitor.listen","x.y"],"scopes":{"queues":{"kind":"assigned"}}}]}`,
		`{"id":"alice","profile":"sup"}`, `{"users":["ceo"]}`)
	f.Add(`{"name":"sup","grants":[{"actions":["profile.assign"],"profiles":["sup"],"hours":{"days":["mon"],"from":60,"to":120,"tz":"Europe/Paris"},"recorded_within":"1h"}]}`,
		`{"id":"alice"}`, ``)
	f.Add(`{"name":"sup","grants":[{"actions":[]}]}`, `{"id":"alice","valid_from":"2026-01-01T00:00:00Z"}`, `null`)
	f.Fuzz(func(t *testing.T, profile, user, protected string) {
		p, ignored, err := DecodePolicy(map[string]string{"sup": profile}, map[string]string{"alice": user}, protected)
		if err != nil {
			if !errors.Is(err, enforce.ErrCorrupt) {
				t.Fatalf("error not classified enforce.ErrCorrupt: %v", err)
			}
			return
		}
		for _, ig := range ignored {
			if _, err := enforce.ParseAction(ig.Action); err == nil {
				t.Fatalf("known action %q ignored", ig.Action)
			}
		}
		if _, err := enforce.NewSnapshot(p, 1); err != nil {
			return // decodes but does not validate: the loader refuses it
		}
		e, err := EncodePolicy(p)
		if err != nil {
			return // e.g. a time zone the wire form refuses
		}
		again, ignoredAgain, err := DecodePolicy(e.Profiles, e.Users, e.Protected)
		if err != nil || len(ignoredAgain) != 0 {
			t.Fatalf("re-decoding an encoded policy: ignored %v, err %v", ignoredAgain, err)
		}
		if d := enforce.DiffPolicies(p, again); !d.Empty() {
			t.Fatalf("round trip changed the policy: %+v", d)
		}
	})
}
