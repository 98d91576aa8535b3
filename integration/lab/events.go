package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/callwarden/callwarden/pbx/asterisk/ariclient"
)

// maxEvents bounds the history an EventStream keeps; older events are dropped and
// counted (Dropped), never silently.
const maxEvents = 20000

// Event is an ARI event. The common fields are decoded; Raw keeps the whole message so
// a test can decode anything else, whatever the event type (Asterisk 22 sends types
// older clients do not know, such as ApplicationRegistered or ChannelToneDetected).
type Event struct {
	Type        string   `json:"type"`
	Application string   `json:"application"`
	Timestamp   string   `json:"timestamp"`
	Channel     *Channel `json:"channel,omitempty"`
	Peer        *Channel `json:"peer,omitempty"`
	Bridge      *Bridge  `json:"bridge,omitempty"`
	Args        []string `json:"args,omitempty"`
	Variable    string   `json:"variable,omitempty"`
	Value       string   `json:"value,omitempty"`
	Cause       int      `json:"cause,omitempty"`
	// DialplanApp and DialplanAppData are set on ChannelDialplan (the app now running).
	DialplanApp     string          `json:"dialplan_app,omitempty"`
	DialplanAppData string          `json:"dialplan_app_data,omitempty"`
	Raw             json.RawMessage `json:"-"`
}

// ChannelID is the id of the event's channel, or "".
func (e Event) ChannelID() string {
	if e.Channel == nil {
		return ""
	}
	return e.Channel.ID
}

// EventStream records the events of one ARI application from the moment it connects,
// so a test can act first and wait afterwards without missing anything (the subscription
// exists before the action, like ari's staged operations).
type EventStream struct {
	ws *ariclient.Conn

	mu      sync.Mutex
	events  []Event
	dropped int
	changed chan struct{} // closed and replaced on every new event or on failure
	err     error         // why the reader stopped
	done    chan struct{}
}

func newEventStream(ws *ariclient.Conn) *EventStream {
	s := &EventStream{ws: ws, changed: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	return s
}

func (s *EventStream) read() {
	defer close(s.done)
	for {
		op, msg, err := s.ws.ReadMessage()
		if err == nil && op != ariclient.OpText {
			err = fmt.Errorf("ari events: unexpected websocket opcode %#x", op)
		}
		var ev Event
		if err == nil {
			if uerr := json.Unmarshal(msg, &ev); uerr != nil {
				err = fmt.Errorf("ari events: decode %q: %w", truncate(string(msg), 200), uerr)
			}
			ev.Raw = msg
		}
		s.mu.Lock()
		if err != nil {
			s.err = err
		} else {
			if len(s.events) == maxEvents {
				s.events = append(s.events[:0], s.events[maxEvents/2:]...)
				s.dropped += maxEvents / 2
			}
			s.events = append(s.events, ev)
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Wait returns the first event, since the stream connected, that satisfies match. It
// fails when ctx ends (with the default deadline if ctx has none) or the stream breaks;
// the error names what was awaited and the last event types seen.
func (s *EventStream) Wait(ctx context.Context, what string, match func(Event) bool) (Event, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	next := 0
	for {
		s.mu.Lock()
		// Indexes shift when old events are dropped; rescanning is cheap and safe.
		if next > len(s.events) {
			next = 0
		}
		for ; next < len(s.events); next++ {
			if match(s.events[next]) {
				ev := s.events[next]
				s.mu.Unlock()
				return ev, nil
			}
		}
		changed, err := s.changed, s.err
		s.mu.Unlock()
		if err != nil {
			return Event{}, fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting for %s: %w (events seen: %s)", what, ctx.Err(), s.summary(10))
		}
	}
}

// Events returns a copy of every event recorded so far.
func (s *EventStream) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Dropped is how many old events were discarded to bound memory.
func (s *EventStream) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// summary lists the type and channel of the last n events, for error messages.
func (s *EventStream) summary(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := max(0, len(s.events)-n)
	parts := make([]string, 0, n)
	for _, ev := range s.events[start:] {
		parts = append(parts, ev.Type+"("+ev.ChannelID()+")")
	}
	return fmt.Sprintf("%d total, last: %s", len(s.events)+s.dropped, strings.Join(parts, " "))
}

// Close unregisters the application and waits for the reader to stop.
func (s *EventStream) Close() error {
	err := s.ws.Close()
	<-s.done
	if errors.Is(err, ariclient.ErrClosed) {
		return nil
	}
	return err
}

// Match helpers for Wait.

// OfType matches events of the given type.
func OfType(eventType string) func(Event) bool {
	return func(e Event) bool { return e.Type == eventType }
}

// OnChannel matches events of the given type about the channel id.
func OnChannel(eventType, channelID string) func(Event) bool {
	return func(e Event) bool { return e.Type == eventType && e.ChannelID() == channelID }
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
