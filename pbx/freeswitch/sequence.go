package freeswitch

import (
	"net/textproto"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Event is a FreeSWITCH event as the adapter sees it: its name, its
// Event-Sequence and its headers (percent-decoded, names in canonical MIME
// form, as eslgo stores them). It never leaves this package.
type Event struct {
	Name    string
	Seq     uint64 // 0 when the event carried no valid Event-Sequence
	Headers map[string]string
}

// Get is the value of header name ("" when absent), whatever its case.
func (e Event) Get(name string) string { return e.Headers[textproto.CanonicalMIMEHeaderKey(name)] }

// eventFromHeaders builds an Event out of decoded headers.
func eventFromHeaders(h map[string]string) Event {
	c := make(map[string]string, len(h))
	for k, v := range h {
		c[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	ev := Event{Headers: c}
	ev.Name = ev.Get("Event-Name")
	ev.Seq, _ = strconv.ParseUint(ev.Get("Event-Sequence"), 10, 64)
	return ev
}

// sequencer delivers events in Event-Sequence order. FreeSWITCH fires
// some events out of order (an API event after the events its command
// caused) and eslgo hands every event to a goroutine of its own, so the
// arrival order means nothing. Event-Sequence is global to FreeSWITCH, so
// a subscription sees gaps and a gap cannot be waited for: each event is
// held for window after its arrival, and the held events leave in
// sequence order. An event that comes later than window behind one that
// already left is delivered at once and counted late; an event without a
// sequence is delivered at once.
type sequencer struct {
	window  time.Duration
	deliver func(Event)
	late    func() // counts a late event; may be nil

	mu      sync.Mutex
	pending []heldEvent // sorted by Seq
	last    uint64      // highest sequence delivered
	// delivering counts the flushes whose events are being delivered
	// (outside the lock).
	delivering int
}

type heldEvent struct {
	ev      Event
	arrived time.Time
}

// add holds ev (arrived at now), or delivers it at once when it cannot be
// ordered. deliver runs outside the lock, in the caller's goroutine.
func (s *sequencer) add(ev Event, now time.Time) {
	s.mu.Lock()
	if ev.Seq == 0 || ev.Seq <= s.last {
		s.mu.Unlock()
		if ev.Seq != 0 && s.late != nil {
			s.late()
		}
		s.deliver(ev)
		return
	}
	i := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].ev.Seq >= ev.Seq })
	s.pending = append(s.pending, heldEvent{})
	copy(s.pending[i+1:], s.pending[i:])
	s.pending[i] = heldEvent{ev: ev, arrived: now}
	s.mu.Unlock()
}

// flush delivers, in sequence order, the held events whose window has
// passed at now; it stops at the first one still inside its window, so an
// earlier sequence that arrived late is never overtaken. It returns when
// the next event will be due (zero when none is held).
func (s *sequencer) flush(now time.Time) (next time.Time) {
	s.mu.Lock()
	var out []Event
	n := 0
	for _, h := range s.pending {
		if now.Sub(h.arrived) < s.window {
			break
		}
		out = append(out, h.ev)
		s.last = h.ev.Seq
		n++
	}
	s.pending = s.pending[n:]
	if len(s.pending) > 0 {
		next = s.pending[0].arrived.Add(s.window)
	}
	if len(out) > 0 {
		s.delivering++
	}
	s.mu.Unlock()
	for _, ev := range out {
		s.deliver(ev)
	}
	if len(out) > 0 {
		s.mu.Lock()
		s.delivering--
		s.mu.Unlock()
	}
	return next
}

// settled reports whether every event that arrived by t has been
// delivered (none is held, none is being delivered).
func (s *sequencer) settled(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delivering > 0 {
		return false
	}
	for _, h := range s.pending {
		if !h.arrived.After(t) {
			return false
		}
	}
	return true
}

// drain delivers every held event in sequence order, ready or not.
func (s *sequencer) drain() { s.flush(time.Now().Add(100 * 365 * 24 * time.Hour)) }

// reset forgets the last delivered sequence: after a reconnection
// FreeSWITCH may have restarted and counts from 1 again.
func (s *sequencer) reset() {
	s.drain()
	s.mu.Lock()
	s.last = 0
	s.mu.Unlock()
}
