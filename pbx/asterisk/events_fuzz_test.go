package asterisk

import (
	"errors"
	"testing"
)

// FuzzDecodeEvent feeds arbitrary websocket messages to the event decoder:
// whatever Asterisk (or whoever reaches the ARI websocket) sends, decoding
// returns an event or an error and never panics, and an event type the
// library does not know is reported as unknown rather than handed to it
// (ari v5.3.1 panics on those).
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"StasisStart","application":"callwarden","args":["monitor","listen","2001"],"channel":{"id":"1","name":"PJSIP/1001-0001"}}`,
		`{"type":"ChannelDtmfReceived","digit":"5","channel":{"id":"1"}}`,
		`{"type":"ChannelTransfer"}`, `{"type":"RESTResponse"}`, `{"type":"CallBroadcast"}`,
		`{"type":"StasisStart","channel":null}`, `{"type":""}`, `{}`, `[]`, `null`, `{"type":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, typ, err := decodeEvent(msg)
		if err == nil && ev == nil {
			t.Fatalf("no event and no error for %q", msg)
		}
		if errors.Is(err, errUnknownEvent) {
			if _, known := knownEventTypes()[typ]; known {
				t.Fatalf("type %q is known to the library but reported unknown", typ)
			}
		}
	})
}
