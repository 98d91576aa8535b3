package asterisk

import (
	"reflect"
	"strings"
	"testing"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callwarden/callwarden/enforce"
)

func TestAsterisk22EventTypesAreDroppedCountedAndNeverCrash(t *testing.T) {
	f := newFakeARI(t)
	reg := prometheus.NewRegistry()
	a := startAdapter(t, f, func() *enforce.Snapshot { return nil }, reg, nil)
	conn := <-f.conn
	for _, typ := range asterisk22Events {
		f.send(conn, `{"type":"`+typ+`","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000",`+
			`"channel":{"id":"x","name":"PJSIP/2001-00000001","state":"Up"},"caller_presentation":0}`)
	}
	f.send(conn, `{"application":"callwarden"}`) // no type at all
	f.send(conn, `not json`)
	// The connection still works: a request after them is served (and,
	// with no snapshot, refused).
	f.send(conn, stasisStart("c1", "check", "monitor.listen", "2001"))
	waitFor(t, "the check to continue the dialplan", func() bool { return f.called("POST /channels/c1/continue") })
	if got := f.variable(varDecision); got != "deny" {
		t.Errorf("CALLWARDEN_DECISION = %q, want deny", got)
	}
	if got := f.variable(varReason); got != enforce.ReasonStoreUnavailable.String() {
		t.Errorf("CALLWARDEN_REASON = %q, want store_unavailable", got)
	}
	for _, typ := range asterisk22Only {
		if n := counterValue(a.m.unknown.WithLabelValues(typ)); n != 1 {
			t.Errorf("unknown events of type %s counted %v times, want 1", typ, n)
		}
	}
	if n := counterValue(a.m.unknown.WithLabelValues("ChannelCallerId")); n != 0 {
		t.Errorf("ChannelCallerId counted unknown %v times; the library decodes it", n)
	}
	if n := counterValue(a.m.dropped.WithLabelValues("malformed")); n != 2 {
		t.Errorf("malformed events counted %v, want 2", n)
	}
	if !a.Connected() {
		t.Error("adapter disconnected after unknown events")
	}
	if !f.called("PUT /applications/callwarden/eventFilter") {
		t.Error("the application's event filter was not set on connection")
	}
}

func TestDecodeEventKnowsEveryLibraryTypeButNoAsterisk22Addition(t *testing.T) {
	for _, typ := range asterisk22Only {
		if _, ok := knownEventTypes()[typ]; ok {
			t.Errorf("%s is in the known set: the library would be handed it", typ)
		}
	}
	for _, typ := range []string{"StasisStart", "StasisEnd", "ChannelDialplan", "ChannelCreated", "ChannelDtmfReceived", "PlaybackFinished", "RecordingFinished"} {
		if _, ok := knownEventTypes()[typ]; !ok {
			t.Errorf("%s missing from the known set", typ)
		}
	}
	ev, typ, err := decodeEvent([]byte(stasisStart("c9", "monitor", "listen", "2001")))
	if err != nil || typ != "StasisStart" || ev.GetType() != "StasisStart" {
		t.Fatalf("decode StasisStart: %v, %q, %v", ev, typ, err)
	}
}

func TestReconnectsAfterAsteriskDropsTheConnection(t *testing.T) {
	f := newFakeARI(t)
	a := startAdapter(t, f, func() *enforce.Snapshot { return nil }, nil, nil)
	<-f.conn
	f.dropConnections()
	conn := <-f.conn // the adapter dialled again
	waitFor(t, "reconnection", a.Connected)
	waitFor(t, "the reconnect to be counted", func() bool { return counterValue(a.m.reconnects) == 1 })
	f.send(conn, stasisStart("c2", "check", "monitor.listen"))
	waitFor(t, "the check after the reconnect", func() bool { return f.called("POST /channels/c2/continue") })
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	_, err := New(Options{URL: "ftp://x", Watchdog: "sometimes", App: "a/b"})
	if err == nil {
		t.Fatal("New accepted incomplete options")
	}
	for _, want := range []string{"User and Password", "Snapshot", "Auditor", "Recordings", "Watchdog", "App", "scheme"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// counterValue reads a counter or gauge.
func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func TestApplicationTakenOverByAnotherClientIsNotFoughtForAtOnce(t *testing.T) {
	f := newFakeARI(t)
	a := startAdapter(t, f, func() *enforce.Snapshot { return nil }, nil, nil)
	conn := <-f.conn
	f.send(conn, `{"type":"ApplicationReplaced","application":"callwarden","timestamp":"2026-11-23T10:00:00.000+0000"}`)
	waitFor(t, "the adapter to let go", func() bool { return !a.Connected() })
	<-f.conn // it comes back, after the maximum backoff
	waitFor(t, "the adapter to reconnect", a.Connected)
}

// wantedSample is an event of type typ carrying every field the wanted
// types have (a channel with channelvars, a bridge, a playback, a
// recording, a variable, a digit, arguments, a merge's two bridges).
func wantedSample(typ string) string {
	return `{"type":"` + typ + `","application":"callwarden","timestamp":"2026-11-29T10:00:00.000+0000",` +
		`"channel":{"id":"c1","name":"PJSIP/2001-00000001","state":"Up","caller":{"number":"5550100"},` +
		`"connected":{"number":"1001"},"channelvars":{"CALLWARDEN_QUEUE":"sales","QUEUENAME":""}},` +
		`"bridge":{"id":"b1","technology":"simple_bridge","channels":["c1","c2"]},"to":{"id":"b2"},"from":{"id":"b3","channels":["c3"]},` +
		`"playback":{"id":"p1","state":"done"},"recording":{"name":"r1","state":"done"},` +
		`"variable":"CALLWARDEN_QUEUE","value":"sales","digit":"5","duration_ms":100,"args":["monitor","listen","2001"],` +
		`"cause":16,"dialplan_app":"Stasis","dialplan_app_data":"callwarden"}`
}

func TestWantedEventTypesDecodeAsTheLibraryDoes(t *testing.T) {
	for _, typ := range wantedEvents {
		if _, ok := wantedEventTypes[typ]; !ok {
			t.Errorf("%s is asked of Asterisk but decoded through ari.DecodeEvent", typ)
			continue
		}
		msg := []byte(wantedSample(typ))
		got, gotType, err := decodeEvent(msg)
		if err != nil || gotType != typ {
			t.Fatalf("decodeEvent(%s): %v, %q", typ, err, gotType)
		}
		want, err := ari.DecodeEvent(msg)
		if err != nil {
			t.Fatalf("ari.DecodeEvent(%s): %v", typ, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded %#v, the library decodes %#v", typ, got, want)
		}
	}
	if len(wantedEventTypes) != len(wantedEvents) {
		t.Errorf("%d direct decoders for %d wanted types", len(wantedEventTypes), len(wantedEvents))
	}
}

// BenchmarkDecodeEvent is the reader's cost per event of the types a busy
// PBX sends most (every channel of the PBX is subscribed for the model).
func BenchmarkDecodeEvent(b *testing.B) {
	for _, typ := range []string{"ChannelVarset", "ChannelStateChange", "StasisStart"} {
		msg := []byte(wantedSample(typ))
		b.Run(typ, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := decodeEvent(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ+"/library", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ari.DecodeEvent(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
