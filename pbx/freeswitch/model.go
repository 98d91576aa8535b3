package freeswitch

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callwarden/callwarden/enforce"
)

// channelModel is FreeSWITCH's live channels as the inbound connection's
// CHANNEL_* events describe them, so that finding an agent's call is a map
// lookup instead of `show channels` and a `uuid_dump` per candidate on
// every request.
//
// It is only an answer while it is synced: the inbound connection is up
// and, after that connection's subscription, one listing (`show channels
// as json`) was merged into what the events said (resync). While it is
// not, and whenever it has no answer for an agent (the inbound stream
// lags the outbound socket by the reordering window, so a call answered a
// moment ago may not be in it yet), the caller asks FreeSWITCH instead.
//
// Every index key of a channel is one of the strings findCall resolves an
// identity from (its name, its name's prefix before the last '-', its
// presence id and that one's prefix): a user's channels are then found
// from the user's identities (enforce.User.Identities) and id, each
// candidate checked with snap.ResolveIdentity exactly as findCall checks a
// row, so the model never matches what FreeSWITCH's own listing would not.
type channelModel struct {
	now func() time.Time
	// tracked, if set, is told the number of channels after each change.
	tracked func(n int)

	mu     sync.RWMutex
	synced bool
	chans  map[string]*modelChannel
	keys   map[string]map[string]*modelChannel // index key → uuid → channel
	// gone holds the channels destroyed recently (tombstones): a listing
	// made while a channel was being destroyed, or an event delivered late,
	// must not bring it back.
	gone  map[string]time.Time
	swept time.Time // the last sweep of gone
	order uint64    // creation order of the channels, as `show channels` sorts its rows
}

// modelChannel is one live channel.
type modelChannel struct {
	uuid, name, presence, callState, caller string
	peer                                    string // the bridged channel (CHANNEL_BRIDGE), "" when none
	queue                                   string // callwarden_queue, else cc_queue
	agent                                   string // callwarden_agent
	// full is set once an event carrying the channel's variables was seen:
	// until then (a channel known from a listing, or from an event without
	// variables such as CHANNEL_CALLSTATE) queue and agent are unknown and
	// the channel is looked at with uuid_dump, as findCall always did.
	full bool
	// evented is set by any event: a channel only listed so far may be a
	// ghost of the listing (see merge).
	evented bool
	order   uint64
	keys    []string
}

// ModelChannel is a read-only copy of one channel of the model (tests and
// diagnostics compare it with FreeSWITCH's own listing).
type ModelChannel struct {
	UUID, Name, PresenceID, CallState, CallerNumber string
	Peer, Queue, Agent                              string
	// Variables is false while queue and agent are not known yet (a
	// channel only listed so far).
	Variables bool
}

// tombstoneTTL is how long a destroyed channel's uuid is remembered: much
// longer than a listing and the reordering window.
const tombstoneTTL = time.Minute

// maxTombstones is the size past which expired tombstones are swept.
const maxTombstones = 4096

func newChannelModel(now func() time.Time, tracked func(n int)) *channelModel {
	return &channelModel{now: now, tracked: tracked, chans: make(map[string]*modelChannel),
		keys: make(map[string]map[string]*modelChannel), gone: make(map[string]time.Time)}
}

// varEvents are the channel events that carry every channel variable
// (switch_channel_event_set_extended_data); CHANNEL_CALLSTATE does not.
var varEvents = map[string]bool{
	"CHANNEL_CREATE": true, "CHANNEL_ANSWER": true, "CHANNEL_BRIDGE": true, "CHANNEL_UNBRIDGE": true,
	"CHANNEL_HANGUP": true, "CHANNEL_EXECUTE": true, "CHANNEL_EXECUTE_COMPLETE": true,
	"CHANNEL_PROGRESS_MEDIA": true, "CHANNEL_ORIGINATE": true, "CHANNEL_PARK": true, "CHANNEL_UNPARK": true,
}

// modelEvents are the events the model needs besides the watchdog's:
// subscribed too (subscribedEvents).
var modelEvents = []string{"CHANNEL_CALLSTATE", "CHANNEL_DESTROY"}

// reset forgets every channel and marks the model not synced: called
// before each (re)connection, once the previous connection's events are
// all delivered, so that what it knew is never mistaken for what is.
func (m *channelModel) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced = false
	clear(m.chans)
	clear(m.keys)
	m.notify()
}

// down marks the model not synced (the inbound connection is down: no
// event tells it what changes).
func (m *channelModel) down() {
	m.mu.Lock()
	m.synced = false
	m.mu.Unlock()
}

// isSynced reports whether the model may answer.
func (m *channelModel) isSynced() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.synced
}

// apply updates the model with one inbound event (in Event-Sequence
// order, or late). It reports the channel's queue and true when the event
// carried the channel's variables and its queue is other than the model
// knew: the call moved queue (a transfer, the dialplan, mod_callcenter),
// or the model learns it for the first time (a channel known only from a
// listing, which a session may have been decided on with uuid_dump).
func (m *channelModel) apply(ev Event) (queue string, moved bool) {
	if !strings.HasPrefix(ev.Name, "CHANNEL_") {
		return "", false
	}
	id := ev.Get("Unique-ID")
	if id == "" {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Name {
	case "CHANNEL_DESTROY", "CHANNEL_HANGUP_COMPLETE":
		// HANGUP_COMPLETE too: a channel that far is never a live call,
		// and a DESTROY lost with a connection must not leave it behind.
		m.remove(id)
		return
	case "CHANNEL_UNBRIDGE":
		for _, leg := range []string{ev.Get("Bridge-A-Unique-ID"), ev.Get("Bridge-B-Unique-ID"), ev.Get("Other-Leg-Unique-ID")} {
			if c := m.chans[leg]; c != nil {
				c.peer = ""
			}
		}
	}
	c := m.upsert(id)
	if c == nil {
		return
	}
	c.evented = true
	known, was := c.full, c.queue
	m.update(c, ev)
	moved = c.full && (!known || c.queue != was)
	if ev.Name == "CHANNEL_BRIDGE" {
		a, b := ev.Get("Bridge-A-Unique-ID"), ev.Get("Bridge-B-Unique-ID")
		if a == "" || b == "" {
			a, b = id, ev.Get("Other-Leg-Unique-ID")
		}
		if ca := m.chans[a]; ca != nil {
			ca.peer = b
		}
		if cb := m.chans[b]; cb != nil {
			cb.peer = a
		}
	}
	if ev.Name == "CHANNEL_UNBRIDGE" {
		c.peer = ""
	}
	return c.queue, moved
}

// upsert returns channel id, made if new; nil for a destroyed one. m.mu
// must be held.
func (m *channelModel) upsert(id string) *modelChannel {
	if c := m.chans[id]; c != nil {
		return c
	}
	if _, dead := m.gone[id]; dead {
		return nil
	}
	m.order++
	c := &modelChannel{uuid: id, order: m.order}
	m.chans[id] = c
	m.notify()
	return c
}

// update copies what ev says of the channel into c and indexes it anew.
// m.mu must be held.
func (m *channelModel) update(c *modelChannel, ev Event) {
	if v := ev.Get("Channel-Call-State"); v != "" {
		keep(&c.callState, v)
	}
	if v := ev.Get("Caller-Caller-ID-Number"); v != "" {
		keep(&c.caller, v)
	}
	name, presence := c.name, c.presence
	if v := ev.Get("Channel-Name"); v != "" {
		name = v
	}
	if varEvents[ev.Name] {
		// Carrying the variables, the event is the whole truth: an unset
		// presence id is unset (FreeSWITCH's listing takes it so too).
		presence = ev.Get("Channel-Presence-ID")
		keep(&c.queue, queueOf(func(name string) string { return ev.Get("variable_" + name) }))
		keep(&c.agent, ev.Get("variable_"+varAgent))
		c.full = true
	} else if v := ev.Get("Channel-Presence-ID"); v != "" {
		presence = v
	}
	m.index(c, name, presence)
}

// keep sets *dst to a copy of v when it differs: a value read from an
// event shares its header line's memory, which the model must not hold
// for the channel's lifetime.
func keep(dst *string, v string) {
	if *dst != v {
		*dst = strings.Clone(v)
	}
}

// queueOf is a channel's queue: callwarden_queue set by the dialplan, else
// mod_callcenter's cc_queue; get reads a variable.
func queueOf(get func(name string) string) string {
	if q := strings.TrimSpace(get(varQueue)); q != "" {
		return q
	}
	return strings.TrimSpace(get(varCCQueue))
}

// identityKeys are the strings snap.ResolveIdentity may resolve a channel
// by: its name and presence id, and, for those with a '/', their prefix
// before the last '-'.
func identityKeys(name, presence string) []string {
	keys := make([]string, 0, 4)
	add := func(k string) {
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, id := range []string{name, presence} {
		add(id)
		if strings.IndexByte(id, '/') >= 0 {
			if i := strings.LastIndexByte(id, '-'); i > 0 {
				add(id[:i])
			}
		}
	}
	return keys
}

// index sets c's name and presence id and files it under their keys.
// m.mu must be held.
func (m *channelModel) index(c *modelChannel, name, presence string) {
	if name == c.name && presence == c.presence && c.keys != nil {
		return
	}
	m.unindex(c)
	keep(&c.name, name)
	keep(&c.presence, presence)
	c.keys = identityKeys(c.name, c.presence)
	for _, k := range c.keys {
		set := m.keys[k]
		if set == nil {
			set = make(map[string]*modelChannel, 1)
			m.keys[k] = set
		}
		set[c.uuid] = c
	}
}

// unindex removes c from the index. m.mu must be held.
func (m *channelModel) unindex(c *modelChannel) {
	for _, k := range c.keys {
		if set := m.keys[k]; set != nil {
			delete(set, c.uuid)
			if len(set) == 0 {
				delete(m.keys, k)
			}
		}
	}
	c.keys = nil
}

// remove forgets channel id and remembers it is gone. m.mu must be held.
func (m *channelModel) remove(id string) {
	now := m.now()
	// At most one sweep per tenth of the TTL: under a high call rate the
	// map holds more than maxTombstones young entries, and sweeping at
	// every destroy would walk it each time.
	if len(m.gone) >= maxTombstones && now.Sub(m.swept) >= tombstoneTTL/10 {
		m.swept = now
		for k, t := range m.gone {
			if now.Sub(t) >= tombstoneTTL {
				delete(m.gone, k)
			}
		}
	}
	m.gone[id] = now
	c := m.chans[id]
	if c == nil {
		return
	}
	m.unindex(c)
	delete(m.chans, id)
	if c.peer != "" {
		if p := m.chans[c.peer]; p != nil && p.peer == id {
			p.peer = ""
		}
	}
	m.notify()
}

// notify reports the number of channels. m.mu must be held.
func (m *channelModel) notify() {
	if m.tracked != nil {
		m.tracked(len(m.chans))
	}
}

// listedChannels is the part of `show channels as json` the model and
// findCall read; FreeSWITCH omits "rows" when there is none.
type listedChannels struct {
	Rows []listedChannel `json:"rows"`
}

type listedChannel struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	PresenceID string `json:"presence_id"`
	CallState  string `json:"callstate"`
	CIDNum     string `json:"cid_num"`
}

// parseListing reads `show channels as json`.
func parseListing(out string) ([]listedChannel, error) {
	var l listedChannels
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("freeswitch: show channels as json: %w", err)
	}
	return l.Rows, nil
}

// merge adds the listed channels the events did not tell of and marks the
// model synced. The events win: a channel they already made is kept as
// they left it, one they destroyed stays gone. A listed channel has no
// variables (full false) until an event brings them, and may be a ghost:
// FreeSWITCH writes its rows about a second late, so a listing made just
// after the subscription still shows a channel destroyed just before it
// (no event will tell) and lacks one made just before it. A lookup dumps a
// listed channel first; and again, a second listing (again), made once
// the rows caught up, drops the listed channels it no longer shows and no
// event has touched, and adds those it now shows.
func (m *channelModel) merge(rows []listedChannel, again bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if again {
		listed := make(map[string]bool, len(rows))
		for _, r := range rows {
			listed[r.UUID] = true
		}
		for id, c := range m.chans {
			if !c.evented && !listed[id] {
				m.remove(id)
			}
		}
	}
	for _, r := range rows {
		if r.UUID == "" || m.chans[r.UUID] != nil {
			continue
		}
		if _, dead := m.gone[r.UUID]; dead {
			continue
		}
		c := m.upsert(r.UUID)
		c.callState, c.caller = r.CallState, r.CIDNum
		m.index(c, r.Name, r.PresenceID)
	}
	m.synced = true
}

// candidate is a live answered channel of an agent, as findCall weighs
// them: partial ones are looked at with uuid_dump before their queue and
// agent count.
type candidate struct {
	liveCall
	agent   string // callwarden_agent
	partial bool
}

// lookup returns agent's live answered channels but self, oldest first
// (as `show channels` lists them), and whether the model could answer: it
// cannot while it is not synced, nor when the agent's own leg (its
// callwarden_agent names the agent) is ambiguous: one is not answered yet
// (a loopback call's legs answer one after the other: the customer's leg,
// answered first, would otherwise be taken for the agent's), or several
// are answered (which one is the agent's call is then FreeSWITCH's
// listing's to say, as before the model). No channel is an answer too;
// the caller decides whether to believe it.
func (m *channelModel) lookup(snap *enforce.Snapshot, agent, self string) ([]candidate, bool) {
	u, ok := snap.User(agent)
	if !ok {
		return nil, m.isSynced()
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.synced {
		return nil, false
	}
	var found []*modelChannel
	pending, preferred := false, 0
	add := func(k string) {
		for _, c := range m.keys[k] {
			if c.uuid == self || slices.Contains(found, c) || !matches(snap, agent, c.name, c.presence) {
				continue
			}
			names := false
			if a, ok := snap.ResolveIdentity(c.agent); ok && a == agent {
				names = true
			}
			switch c.callState {
			case "ACTIVE":
				found = append(found, c)
				if names {
					preferred++
				}
			case "HANGUP":
			default:
				pending = pending || names
			}
		}
	}
	// Not append(u.Identities, agent): that could write into the
	// snapshot's own array.
	for _, k := range u.Identities {
		add(k)
	}
	add(agent)
	if pending || preferred > 1 {
		return nil, false
	}
	slices.SortFunc(found, func(a, b *modelChannel) int { return cmp.Compare(a.order, b.order) })
	out := make([]candidate, 0, len(found))
	for _, c := range found {
		out = append(out, candidate{liveCall: liveCall{uuid: c.uuid, name: c.name, queue: c.queue, caller: c.caller},
			agent: c.agent, partial: !c.full})
	}
	return out, true
}

// matches reports whether a channel named name with presence id presence
// is one of agent's, as findCall has always matched `show channels` rows.
func matches(snap *enforce.Snapshot, agent, name, presence string) bool {
	for _, id := range []string{name, presence} {
		if u, ok := snap.ResolveIdentity(id); ok && u == agent {
			return true
		}
	}
	return false
}

// fill completes a channel known without its variables from a uuid_dump
// of it (a lookup just made one); an event that brought them first wins.
func (m *channelModel) fill(c candidate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mc := m.chans[c.uuid]; mc != nil && !mc.full {
		mc.queue, mc.agent, mc.caller, mc.full = c.queue, c.agent, c.caller, true
	}
}

// forget drops a channel a lookup found gone (uuid_dump: no such
// channel), a ghost of a listing.
func (m *channelModel) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mc := m.chans[id]; mc != nil && !mc.full {
		m.remove(id)
	}
}

// view copies the model's channels, sorted by uuid, and says whether it is
// synced.
func (m *channelModel) view() ([]ModelChannel, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]ModelChannel, 0, len(m.chans))
	for _, c := range m.chans {
		out = append(out, ModelChannel{UUID: c.uuid, Name: c.name, PresenceID: c.presence, CallState: c.callState,
			CallerNumber: c.caller, Peer: c.peer, Queue: c.queue, Agent: c.agent, Variables: c.full})
	}
	slices.SortFunc(out, func(a, b ModelChannel) int { return strings.Compare(a.UUID, b.UUID) })
	return out, m.synced
}
