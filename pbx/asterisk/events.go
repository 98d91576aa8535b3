package asterisk

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"

	"github.com/CyCoreSystems/ari/v5"
)

// errUnknownEvent marks an event type the ARI library cannot decode
// (Asterisk 22's ApplicationRegistered, ChannelToneDetected, ...). The
// library's own websocket reader hands a nil event to its bus for those and
// the process panics; callwarden drops and counts them instead.
var errUnknownEvent = errors.New("event type unknown to the ARI library")

// knownEventTypes is the set of event types ari.DecodeEvent decodes, read
// from the library's own list so an upgrade widens it automatically.
var knownEventTypes = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{})
	v := reflect.ValueOf(ari.Events)
	for i := 0; i < v.NumField(); i++ {
		if s, ok := v.Field(i).Interface().(string); ok && s != "" && s != ari.Events.All {
			m[s] = struct{}{}
		}
	}
	return m
})

// decodeEvent peeks at the message's type and decodes it with the ARI
// library only when the library knows it. It returns the type it saw, an
// error wrapping errUnknownEvent for unknown types, or a decode error.
func decodeEvent(msg []byte) (ari.Event, string, error) {
	var peek struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &peek); err != nil {
		return nil, "", err
	}
	if peek.Type == "" {
		return nil, "", errors.New("event without a type")
	}
	if _, ok := knownEventTypes()[peek.Type]; !ok {
		return nil, peek.Type, errUnknownEvent
	}
	if newEvent, ok := wantedEventTypes[peek.Type]; ok {
		ev := newEvent()
		if err := json.Unmarshal(msg, ev); err != nil {
			return nil, peek.Type, err
		}
		return ev, peek.Type, nil
	}
	ev, err := ari.DecodeEvent(msg)
	if err != nil {
		return nil, peek.Type, err
	}
	if ev == nil {
		return nil, peek.Type, errors.New("ARI library decoded no event")
	}
	return ev, peek.Type, nil
}

// wantedEvents are the event types the adapter acts on or keeps its model
// of the PBX with. Asterisk is asked to send only these (PUT
// /applications/{app}/eventFilter) as soon as the application is
// registered: with subscribe-all a PBX emits a flood of events callwarden
// does not need, and Asterisk 22 then also stops sending the types the ARI
// library cannot decode. The reader filters unknown types anyway, for the
// window before the filter is set and for an Asterisk that does not
// support filters. ChannelVarset is wanted for the dialplan-contract
// variables alone (the model keeps them; a monitored call that moves queue
// is decided again); a filter goes by type only, so the dispatcher drops
// every other variable's event before routing it. The model needs every
// event that changes a channel's state, connected line or bridge, and
// BridgeMerged, which moves channels without entering or leaving events.
// ChannelCallerId stays out, like every type Asterisk 22 added (the ARI
// library's own reader panics on them; the integration suite checks the
// filter): a caller id change reaches the model with the channel's next
// snapshot (its state, dialplan or bridge events).
var wantedEvents = []string{
	"StasisStart", "StasisEnd", "ChannelCreated", "ChannelDestroyed", "ChannelHangupRequest",
	"ChannelDialplan", "ChannelDtmfReceived", "ChannelEnteredBridge", "ChannelLeftBridge", "ChannelVarset",
	"ChannelStateChange", "ChannelConnectedLine",
	"BridgeCreated", "BridgeDestroyed", "BridgeMerged",
	"PlaybackStarted", "PlaybackFinished", "RecordingStarted", "RecordingFinished", "RecordingFailed",
	"ApplicationReplaced",
}

// wantedEventTypes decodes the types of wantedEvents straight into their
// ARI library type: ari.DecodeEvent reads a message's type once more
// before reading it whole, and with every channel of the PBX subscribed
// (the model) decoding is most of the adapter's CPU on a busy PBX. Every
// event is so read twice (its type, then itself), not three times;
// TestWantedEventTypesDecodeAsTheLibraryDoes holds the two ways equal.
var wantedEventTypes = map[string]func() ari.Event{
	ari.Events.StasisStart:          func() ari.Event { return new(ari.StasisStart) },
	ari.Events.StasisEnd:            func() ari.Event { return new(ari.StasisEnd) },
	ari.Events.ChannelCreated:       func() ari.Event { return new(ari.ChannelCreated) },
	ari.Events.ChannelDestroyed:     func() ari.Event { return new(ari.ChannelDestroyed) },
	ari.Events.ChannelHangupRequest: func() ari.Event { return new(ari.ChannelHangupRequest) },
	ari.Events.ChannelDialplan:      func() ari.Event { return new(ari.ChannelDialplan) },
	ari.Events.ChannelDtmfReceived:  func() ari.Event { return new(ari.ChannelDtmfReceived) },
	ari.Events.ChannelEnteredBridge: func() ari.Event { return new(ari.ChannelEnteredBridge) },
	ari.Events.ChannelLeftBridge:    func() ari.Event { return new(ari.ChannelLeftBridge) },
	ari.Events.ChannelVarset:        func() ari.Event { return new(ari.ChannelVarset) },
	ari.Events.ChannelStateChange:   func() ari.Event { return new(ari.ChannelStateChange) },
	ari.Events.ChannelConnectedLine: func() ari.Event { return new(ari.ChannelConnectedLine) },
	ari.Events.BridgeCreated:        func() ari.Event { return new(ari.BridgeCreated) },
	ari.Events.BridgeDestroyed:      func() ari.Event { return new(ari.BridgeDestroyed) },
	ari.Events.BridgeMerged:         func() ari.Event { return new(ari.BridgeMerged) },
	ari.Events.PlaybackStarted:      func() ari.Event { return new(ari.PlaybackStarted) },
	ari.Events.PlaybackFinished:     func() ari.Event { return new(ari.PlaybackFinished) },
	ari.Events.RecordingStarted:     func() ari.Event { return new(ari.RecordingStarted) },
	ari.Events.RecordingFinished:    func() ari.Event { return new(ari.RecordingFinished) },
	ari.Events.RecordingFailed:      func() ari.Event { return new(ari.RecordingFailed) },
	ari.Events.ApplicationReplaced:  func() ari.Event { return new(ari.ApplicationReplaced) },
}

// quietEvents is the filter set just before callwarden leaves: Asterisk 22
// can wedge a websocket session that is closed while it is writing events,
// and a new connection of the same application then waits on it forever.
var quietEvents = []string{"ApplicationReplaced"}
